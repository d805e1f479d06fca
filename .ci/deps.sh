#!/bin/sh
# Install the Debian 12 packages taskq needs to build and test, if missing.
# As root: apt-get, non-interactive. Otherwise: say exactly what is missing.
set -eu
PKGS="build-essential pkg-config libhiredis-dev libevent-dev libjansson-dev libyajl-dev libcmocka-dev \
libssl-dev redis-server redis-tools clang valgrind cppcheck clang-format"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "taskq: missing Debian packages:$missing" >&2
    echo "taskq: install them as root: apt-get install -y$missing" >&2
    exit 1
fi
echo "taskq: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends $missing >/dev/null
