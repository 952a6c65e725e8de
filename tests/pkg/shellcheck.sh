#!/bin/sh
# Runs `shellcheck -s sh` on every shell script of the packaging: cross/, openwrt/, tests/pkg/,
# tests/fuzz/, tests/tools.sh and tests/netns/syscalls.sh (all are POSIX sh: OpenWrt's is
# busybox ash).
#
#   tests/pkg/shellcheck.sh
set -eu
cd "$(dirname "$0")/../.."
# shellcheck disable=SC1091 # checked below like the others
. tests/pkg/lib.sh

for f in $(git ls-files cross openwrt tests/pkg tests/fuzz tests/tools.sh tests/netns/syscalls.sh); do
    case "$f" in
    *.sh) ;;
    *) head -n 1 "$f" | grep -q '^#!/bin/sh' || continue ;;
    esac
    check "shellcheck -s sh $f" shellcheck -s sh "$f"
done
finish
