#!/usr/bin/env bash
# Self-signed TLS certificate and key for ferrumx's ssl:// and wss:// services
# (SSL_CERTFILE / SSL_KEYFILE).
#
#   deploy/make-cert.sh [-d DIR] [-u USER] [-n DAYS] [-f] HOST [HOST...]
#
#   HOST     the name(s) or IP address(es) clients connect to; the first one is also
#            the certificate's CN. All go into subjectAltName.
#   -d DIR   where to write server.crt and server.key
#            (default /etc/ferrumx when run as root, else the current directory)
#   -u USER  give the files to USER (e.g. ferrumx), so the service can read the key
#   -n DAYS  validity (default 3650)
#   -f       overwrite existing files
#
# Electrum clients pin a self-signed certificate the first time they connect and then
# refuse a different one, so make it long-lived and do not replace it casually.
set -euo pipefail

usage() {
    sed -n '5,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}
die() {
    echo "make-cert.sh: $*" >&2
    exit 1
}

if [[ $EUID -eq 0 ]]; then dir=/etc/ferrumx; else dir=.; fi
owner='' days=3650 force=''
while getopts 'd:u:n:fh' opt; do
    case $opt in
    d) dir=$OPTARG ;;
    u) owner=$OPTARG ;;
    n) days=$OPTARG ;;
    f) force=1 ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
(($# >= 1)) || usage
[[ $days =~ ^[1-9][0-9]*$ ]] || die "-n wants a number of days, not '$days'"
command -v openssl >/dev/null || die "openssl is not installed (apt-get install openssl)"
if [[ -n $owner ]]; then
    id "$owner" >/dev/null 2>&1 || die "no such user: $owner"
fi

# IP addresses go into the SAN as IP:, everything else as DNS:.
san=''
for host in "$@"; do
    if [[ $host =~ ^[0-9]+(\.[0-9]+){3}$ || $host == *:* ]]; then
        entry="IP:$host"
    elif [[ $host =~ ^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
        entry="DNS:$host"
    else
        die "'$host' is not a host name or IP address"
    fi
    san+=${san:+,}$entry
done

cert=$dir/server.crt
key=$dir/server.key
if [[ -z $force ]]; then
    for f in "$cert" "$key"; do
        [[ ! -e $f ]] || die "$f exists; clients that pinned it would reject a new one (use -f to replace it anyway)"
    done
fi
mkdir -p -- "$dir"

# The key is created unreadable to others from the first byte.
umask 077
openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days "$days" \
    -subj "/CN=$1" -addext "subjectAltName=$san" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
    -addext "extendedKeyUsage=serverAuth" \
    -keyout "$key" -out "$cert" 2>/dev/null ||
    die "openssl failed to create the certificate"
chmod 600 -- "$key"
chmod 644 -- "$cert"
if [[ -n $owner ]]; then
    chown -- "$owner" "$key" "$cert"
fi

echo "Wrote $cert (valid $days days, subjectAltName $san)"
echo "  and $key (mode 600${owner:+, owner $owner})"
echo "SHA-256 fingerprint (for clients to check): $(openssl x509 -in "$cert" -noout -fingerprint -sha256 | cut -d= -f2)"
if [[ -z $owner ]] && id ferrumx >/dev/null 2>&1; then
    echo "The ferrumx service runs as user ferrumx: chown ferrumx $key (or rerun with -u ferrumx)."
fi
echo
echo "In ferrumx.env:"
echo "SSL_CERTFILE=$(cd "$dir" && pwd)/server.crt"
echo "SSL_KEYFILE=$(cd "$dir" && pwd)/server.key"
