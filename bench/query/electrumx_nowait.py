"""Runs electrumx_server with its reply hold-back turned off, and nothing else changed.

ElectrumX 2.0 writes client replies through PaddedRSTransport, which pads them against
traffic analysis and holds a reply smaller than 1 KiB for up to
WAIT_FOR_BUFFER_GROWTH_SECONDS (1 s) in case more follow. A benchmark would then measure
that deliberate delay rather than the server, so it is set to 0: every reply leaves at
once (still padded). Run with the virtual environment's python; the environment
variables configure the server as usual.
"""

from electrumx.server.transport import PaddedRSTransport

PaddedRSTransport.WAIT_FOR_BUFFER_GROWTH_SECONDS = 0

from electrumx.cli.electrumx_server import main  # noqa: E402 (after the patch, on purpose)

main()
