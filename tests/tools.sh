#!/bin/sh
# Installs what the end-to-end tests, the benchmarks and the demo need and this machine lacks,
# from Debian's (or Ubuntu's) packages. Idempotent: with everything present it installs nothing.
#
#   tests/tools.sh           install what is missing (as root)
#   tests/tools.sh --check   only say what is missing; exit 1 if anything is
#
# The test lab (tests/netns/lab.rs) runs it by itself the first time a tool is missing, so
# `cargo test` as root on a fresh machine needs nothing installed by hand; .ci/run runs it too.
# Python checks use Debian's /usr/bin/python3, where Debian's python3-* packages install: a
# pyenv or venv python3 earlier in PATH would not see them.
set -eu

PYTHON=/usr/bin/python3
missing=""
need() { # need PACKAGE: remember a package to install (once)
    case " $missing " in
    *" $1 "*) ;;
    *) missing="$missing $1" ;;
    esac
}
have() { # have COMMAND: on PATH or in the system directories root's PATH may lack
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

have ip || need iproute2
have tc || need iproute2
have nft || need nftables
have iperf3 || need iperf3
[ -x "$PYTHON" ] || need python3
# The control-socket tests read the metrics back with the reference Prometheus parser.
"$PYTHON" -c 'import prometheus_client' 2>/dev/null || need python3-prometheus-client

if [ -z "$missing" ]; then
    exit 0
fi
if [ "${1:-}" = "--check" ]; then
    echo "missing test tools (Debian packages):$missing"
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "tests/tools.sh: must run as root to install:$missing" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/tools.sh: no apt-get here; install the equivalents of:$missing" >&2
    exit 1
fi
echo "tests/tools.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086 # one word per package
apt-get install -y -q --no-install-recommends $missing
