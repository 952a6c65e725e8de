# Shared by the tests in tests/pkg/: sourced, not run.
# Counts checks and ends with the plain closing line "N passed, N failed".

passed=0
failed=0

pass() {
    passed=$((passed + 1))
    echo "ok: $1"
}

fail() {
    failed=$((failed + 1))
    echo "FAILED: $1"
}

# check DESCRIPTION COMMAND...: passes if the command succeeds.
check() {
    what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

# not COMMAND...: succeeds if the command fails.
not() {
    ! "$@"
}

# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
    if [ "$2" = "$3" ]; then
        pass "$1"
    else
        fail "$1"
        printf '  expected: %s\n  actual:   %s\n' "$2" "$3"
    fi
}

# check_file DESCRIPTION EXPECTED_FILE ACTUAL_FILE: the files are identical (diff shown).
# UPDATE_GOLDEN=1 rewrites the expected file instead.
check_file() {
    if [ "${UPDATE_GOLDEN:-0}" = 1 ]; then
        cp "$3" "$2"
        pass "$1 (golden file rewritten)"
    elif diff -u "$2" "$3"; then
        pass "$1"
    else
        fail "$1"
    fi
}

# check_same DESCRIPTION EXPECTED_FILE ACTUAL_FILE: identical files (diff shown).
check_same() {
    if diff -u "$2" "$3"; then pass "$1"; else fail "$1"; fi
}

# The closing line, and the exit status.
finish() {
    echo
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

# The mlvpn binary to test with: $MLVPN_BIN, or a release build of this tree for this host.
host_mlvpn() {
    if [ -n "${MLVPN_BIN:-}" ]; then
        echo "$MLVPN_BIN"
    else
        cargo build -q --release --locked >&2 && echo "$PWD/target/release/mlvpn"
    fi
}
