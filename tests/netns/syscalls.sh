#!/bin/sh
# The system calls the network process makes, as the seccomp allow-list (src/sys/seccomp.rs)
# must know them: runs netns tests with every daemon under `strace -f` and `--no-sandbox` (so
# that a call missing from the list shows instead of killing), then counts, over every network
# process, the calls made after PR_SET_NO_NEW_PRIVS (the end of its privilege drop; the filter
# comes next).
#
#   tests/netns/syscalls.sh [TEST...]    (as root; default: netns_ops netns_sites netns_hostile)
#
# Prints "COUNT CALL" lines, most frequent first. Tests may fail under strace's slowdown: the
# count is what this is for. Needs strace (Debian: strace).
set -eu
cd "$(dirname "$0")/../.."
command -v strace >/dev/null || { echo "syscalls.sh: strace not found" >&2; exit 1; }
[ $# -gt 0 ] || set -- netns_ops netns_sites netns_hostile

cargo build --quiet
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/mlvpn" <<WRAP
#!/bin/sh
case "\${1:-}" in
status | check-config | genkey) exec "$PWD/target/debug/mlvpn" "\$@" ;;
esac
exec strace -f -ff -qq -o "$dir/trace" "$PWD/target/debug/mlvpn" "\$@" --no-sandbox
WRAP
chmod +x "$dir/mlvpn"

tests=
for t in "$@"; do tests="$tests --test $t"; done
# shellcheck disable=SC2086 # a list of words
MLVPN_BIN="$dir/mlvpn" cargo test --quiet --no-fail-fast $tests >"$dir/tests.log" 2>&1 ||
    echo "syscalls.sh: some tests failed under strace (see the count all the same)" >&2

for f in "$dir"/trace.*; do
    grep -q PR_SET_NO_NEW_PRIVS "$f" || continue
    awk '/PR_SET_NO_NEW_PRIVS/ { on = 1; next } on' "$f" | grep -oE '^[a-z_0-9]+\('
done | tr -d '(' | sort | uniq -c | sort -rn
