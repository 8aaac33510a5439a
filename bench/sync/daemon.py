"""A regtest litecoind on loopback and a small JSON-RPC client for it.

Shared by the chain generator and the sync runner so that both start the daemon the
same way: its own data directory, a free RPC port on 127.0.0.1, a random password (so a
call can never land on somebody else's daemon), no P2P, and no wallet unless asked.
"""

import base64
import http.client
import json
import os
import secrets
import socket
import subprocess
import time
from pathlib import Path

LITECOIND = os.environ.get("LITECOIND", "/usr/bin/litecoind")


class RpcError(Exception):
    """The daemon answered a call with an error object."""

    def __init__(self, method: str, code: int, message: str):
        super().__init__(f"litecoind {method}: error {code}: {message}")
        self.code = code


class DaemonError(Exception):
    """The daemon could not be started or stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Rpc:
    """JSON-RPC over one kept-alive HTTP connection; batches go in one request."""

    def __init__(self, port: int, user: str, password: str, timeout: float = 600):
        self.port = port
        self.timeout = timeout
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self.conn = None

    def _post(self, body):
        data = json.dumps(body).encode()
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request("POST", "/", data, self.headers)
                resp = self.conn.getresponse()
                payload = resp.read()
            except (ConnectionError, http.client.HTTPException):
                # The daemon closes idle keep-alive connections; one fresh retry is enough.
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            if resp.status == 401:
                raise DaemonError(f"RPC port {self.port} refused our credentials (not our daemon?)")
            try:
                return json.loads(payload)
            except ValueError as err:
                raise DaemonError(f"RPC answered HTTP {resp.status} with non-JSON: {payload[:200]!r}") from err
        raise AssertionError("unreachable")

    def call(self, method: str, *params):
        reply = self._post({"jsonrpc": "1.0", "id": 0, "method": method, "params": list(params)})
        if reply.get("error"):
            raise RpcError(method, reply["error"]["code"], reply["error"]["message"])
        return reply["result"]

    def batch(self, method: str, params_list: list) -> list:
        """Calls `method` once per parameter list, all in one HTTP request."""
        if not params_list:
            return []
        body = [{"jsonrpc": "1.0", "id": i, "method": method, "params": list(p)} for i, p in enumerate(params_list)]
        replies = sorted(self._post(body), key=lambda r: r["id"])
        for reply in replies:
            if reply.get("error"):
                raise RpcError(f"{method} #{reply['id']}", reply["error"]["code"], reply["error"]["message"])
        return [r["result"] for r in replies]


class Daemon:
    """One litecoind process in regtest on `datadir`."""

    def __init__(self, datadir: Path, extra_args: tuple = (), wallet: bool = False):
        self.datadir = Path(datadir)
        self.extra_args = list(extra_args)
        self.wallet = wallet
        self.port = 0
        self.user = "bench"
        self.password = ""
        self.proc = None
        self.rpc = None

    @property
    def url(self) -> str:
        return f"http://{self.user}:{self.password}@127.0.0.1:{self.port}/"

    def start(self, timeout: float = 180):
        self.datadir.mkdir(parents=True, exist_ok=True)
        # An empty config in the data directory keeps ~/.litecoin/litecoin.conf out of it.
        (self.datadir / "litecoin.conf").touch()
        self.port = free_port()
        self.password = secrets.token_hex(16)
        args = [
            LITECOIND,
            "-regtest",
            f"-datadir={self.datadir}",
            f"-rpcport={self.port}",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
            f"-rpcuser={self.user}",
            f"-rpcpassword={self.password}",
            "-server=1",
            "-listen=0",
            "-connect=0",
            "-dnsseed=0",
            "-discover=0",
            "-upnp=0",
            "-listenonion=0",
            f"-disablewallet={0 if self.wallet else 1}",
            "-persistmempool=0",
            # ferrumx downloads blocks over REST when it is on; ElectrumX ignores it.
            "-rest=1",
            "-printtoconsole=0",
            *self.extra_args,
        ]
        log = open(self.datadir / "litecoind.out", "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.rpc = Rpc(self.port, self.user, self.password)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise DaemonError(f"litecoind exited with {self.proc.returncode} while starting:\n{self.log_tail()}")
            try:
                self.rpc.call("getblockchaininfo")
                return
            except RpcError as err:
                if err.code != -28:  # -28: still loading the block index
                    raise
            except (ConnectionError, OSError):
                self.rpc.conn = None
            if time.monotonic() > deadline:
                self.kill()
                raise DaemonError(f"litecoind RPC did not answer within {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self, timeout: float = 120):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.rpc.call("stop")
        except (RpcError, DaemonError, ConnectionError, OSError):
            self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise DaemonError(f"litecoind did not stop within {timeout:.0f}s; killed it")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def log_tail(self, lines: int = 20) -> str:
        path = self.datadir / "regtest" / "debug.log"
        if not path.exists():
            path = self.datadir / "litecoind.out"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
