#!/bin/sh
# Runs every fuzz target briefly, as CI does: a smoke test that the targets build and that the
# decoders survive a few seconds of libFuzzer each. Long runs are by hand (README.md here).
#
#   tests/fuzz/ci.sh [SECONDS]     (default 10 per target)
#
# Needs the nightly toolchain (sanitizers); installs cargo-fuzz if it is missing.
set -eu
cd "$(dirname "$0")/../.."
secs=${1:-10}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz --version 0.13.2
cargo +nightly fuzz build --fuzz-dir tests/fuzz
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in $(cargo +nightly fuzz list --fuzz-dir tests/fuzz); do
    echo "== fuzz $target (${secs} s)"
    # A crash exits non-zero and leaves its input in tests/fuzz/artifacts/<target>/.
    if ! cargo +nightly fuzz run "$target" --fuzz-dir tests/fuzz -- -max_total_time="$secs" >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz target $target failed" >&2
        exit 1
    fi
    grep -E '^Done [0-9]+ runs' "$log" || tail -n 3 "$log"
done
