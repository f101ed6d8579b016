#!/usr/bin/env bash
# This file implements the README's test command: set up a fresh Debian
# machine, then build and pass the whole test suite twice -- plainly and with
# -fsanitize=address,undefined -- and check the release tarball with
# `make distcheck`.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/setup-debian.sh"
export QK_NODE_PATH="$top/tools/node_modules"

run_check() {   # DIR [configure args]
    local dir=$1; shift
    "$top/tools/build.sh" "$dir" "$@"
    if ! make -C "$dir" -j"$(nproc)" check >"$dir/check.out" 2>&1; then
        cat "$dir/check.out"
        for f in "$dir"/tests/*.log; do echo "== $f"; tail -n 60 "$f"; done
        echo "test: make check failed in $dir"
        exit 1
    fi
    grep -E "^(PASS|FAIL|SKIP|XFAIL|ERROR|# )" "$dir/check.out" || true
    grep -h -E "^(conformance|real networks|[0-9]+%: Checks)" "$dir"/tests/*.log || true
}

echo "== plain build"
run_check "$top/build-plain"
echo "== sanitized build (-fsanitize=address,undefined)"
ASAN_OPTIONS=detect_leaks=1 run_check "$top/build-san" --enable-sanitizers
echo "== make distcheck"
make -C "$top/build-plain" distcheck >"$top/build-plain/distcheck.out" 2>&1 || {
    tail -n 80 "$top/build-plain/distcheck.out"; echo "test: make distcheck failed"; exit 1; }
grep -E "archives ready|\.tar\.gz" "$top/build-plain/distcheck.out" | head -3
echo "test: all passed"
