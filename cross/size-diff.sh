#!/bin/sh
# Where the mipsel router binary's bytes went between two commits: builds both with
# cross/build.sh (symbols kept for the count, the binary still stripped for the budget) and
# sums the change in symbol sizes by the module they belong to. The budget notes in
# cross/build.sh (bytes per feature) come from it.
#
#   cross/size-diff.sh [--same-flags] BASE [NEW]   (NEW: HEAD by default; needs cross/setup.sh)
#
# --same-flags builds BASE with NEW's build flags (cross/build.sh and Cargo.toml's router
# profiles), so that the table shows what the code costs, not what a change of flags saved.
set -eu
same_flags=
if [ "${1:-}" = --same-flags ]; then
    same_flags=1
    shift
fi
base=${1:?usage: cross/size-diff.sh [--same-flags] BASE [NEW]}
new=${2:-HEAD}
t=mipsel-unknown-linux-musl
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" 2>/dev/null; git worktree remove --force "$work/new" 2>/dev/null; rm -rf "$work"' EXIT
nm=$(find "$(rustc +nightly --print sysroot)" -name llvm-nm -type f | head -n 1)
for side in base new; do
    if [ "$side" = base ]; then rev=$base; else rev=$new; fi
    git worktree add -f --detach "$work/$side" "$rev" >/dev/null
    if [ "$side" = base ] && [ -n "$same_flags" ]; then
        git show "$new:cross/build.sh" >"$work/base/cross/build.sh"
        git show "$new:Cargo.toml" >"$work/new.toml"
        python3 - "$work/base/Cargo.toml" "$work/new.toml" <<'PY'
import re, sys
def profiles(text):
    return re.findall(r"^\[profile\.router[^\n]*\n(?:[^\[\n][^\n]*\n|\n)*", text, re.M)
base, new = open(sys.argv[1]).read(), open(sys.argv[2]).read()
for p in profiles(base):
    base = base.replace(p, "")
open(sys.argv[1], "w").write(base.rstrip("\n") + "\n\n" + "".join(profiles(new)))
PY
    fi
    # Over its own commit's budget is no reason to stop counting.
    if ! (cd "$work/$side" && CARGO_PROFILE_ROUTER_STRIP=false cross/build.sh "$t" >/dev/null 2>&1); then
        echo "note: $rev's build reported an error (its budget?)" >&2
    fi
    echo "$side ($rev): $(wc -c <"$work/$side/target/cross/$t/mlvpn") bytes stripped"
    "$nm" -S --size-sort -C --defined-only "$work/$side/target/cross-build/default/$t/router/mlvpn" >"$work/$side.syms"
done
python3 - "$work/base.syms" "$work/new.syms" <<'PY'
import collections, re, sys
def load(path):
    sizes = collections.Counter()
    for line in open(path):
        parts = line.rstrip("\n").split(" ", 3)
        if len(parts) == 4:
            sizes[parts[3]] += int(parts[1], 16)
    return sizes
old, new = load(sys.argv[1]), load(sys.argv[2])
groups = collections.Counter()
for name in set(old) | set(new):
    m = re.search(r"mlvpn::(\w+(?:::\w+)?)", name)
    key = m.group(1) if m else ("constants" if name.startswith("$anon") else "std and crates")
    groups[key] += new.get(name, 0) - old.get(name, 0)
for key, delta in sorted(groups.items(), key=lambda kv: -abs(kv[1])):
    if delta:
        print(f"{delta:+8d}  {key}")
print(f"{sum(groups.values()):+8d}  all symbols")
PY
