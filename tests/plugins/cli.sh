#!/usr/bin/env bash
# This file implements the tests of `quantkit plugins`: the table and the
# --json array list the built-in plugins; broken plugins are reported on
# stderr, one line each naming the file, without stopping the listing; a
# copy of the binary outside the build tree (as if installed) never searches
# the build tree, and fails when no plugin folder can be searched.
# Runs from the build tree (make check): the test plugins are under
# tests/plugins/*/.libs.
set -u
qk=${QUANTKIT:?QUANTKIT must point at the quantkit binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() {   # NAME CONDITION-EXIT-STATUS
    if [ "$2" -eq 0 ]; then pass=$((pass + 1)); echo "ok   $1"; else fail=$((fail + 1)); echo "FAIL $1"; fi
}

"$qk" plugins >"$tmp/out" 2>"$tmp/err"; rc=$?
check "table: exit 0" $rc
check "table: header" "$(head -n1 "$tmp/out" | grep -qE '^KIND +NAME +VERSION +FILE +DESCRIPTION$'; echo $?)"
check "table: minmax" "$(grep -qE '^observer +minmax +1\.0\.0 +/.*/plugins/observers/\.libs/observer-minmax\.so +smallest' "$tmp/out"; echo $?)"
check "table: round" "$(grep -qE '^fakequant +round +1\.0\.0 +/.*/plugins/fakequant/\.libs/fakequant-round\.so +round' "$tmp/out"; echo $?)"
check "table: nothing on stderr" "$([ ! -s "$tmp/err" ]; echo $?)"

"$qk" plugins --json >"$tmp/json" 2>"$tmp/err"; rc=$?
check "json: exit 0" $rc
check "json: minmax" "$(grep -qF '{"kind":"observer","name":"minmax","version":"1.0.0","file":"' "$tmp/json"; echo $?)"
if command -v python3 >/dev/null; then
    check "json: parses, one object per plugin" "$(python3 -c '
import json, sys
a = json.load(open(sys.argv[1]))
assert isinstance(a, list) and len(a) >= 2, a
assert all(set(p) >= {"kind", "name", "version", "file", "description"} for p in a), a
assert {("observer", "minmax"), ("fakequant", "round")} <= {(p["kind"], p["name"]) for p in a}, a
' "$tmp/json"; echo $?)"
fi

broken=tests/plugins/broken/.libs
"$qk" plugins --plugin-path "$broken" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "broken: exit 0" $rc
check "broken: good backend still listed" "$(grep -qE '^backend +good ' "$tmp/out"; echo $?)"
check "broken: built-ins still listed" "$(grep -qE '^observer +minmax .*observer-minmax\.so' "$tmp/out"; echo $?)"
n_broken=$(ls "$broken"/*.so | grep -vc backend-good.so)
check "broken: one stderr line per broken plugin ($n_broken)" "$([ "$(wc -l <"$tmp/err")" -eq "$n_broken" ]; echo $?)"
for so in "$broken"/*.so; do
    case $so in *backend-good.so) continue ;; esac
    check "broken: $(basename "$so") named" "$(grep -qF "plugin $so: " "$tmp/err"; echo $?)"
done

"$qk" plugins --plugin-path tests/plugins/path_a/.libs >"$tmp/out" 2>"$tmp/err"
check "duplicate: path_a wins" "$(grep -qE '^observer +minmax +0\.0\.1 +tests/plugins/path_a' "$tmp/out"; echo $?)"
check "duplicate: warning names both files" \
    "$(grep -qE "^quantkit: warning: observer 'minmax' is defined twice: using tests/plugins/path_a/.libs/observer-minmax.so, ignoring /.*/plugins/observers/.libs/observer-minmax.so" "$tmp/err"; echo $?)"

# A copy outside the build tree behaves as installed: only QUANTKIT_PLUGIN_PATH,
# --plugin-path and the installed folder are searched.
cp "$qk" "$tmp/quantkit"
QUANTKIT_PLUGIN_PATH=$PWD/tests/plugins/path_b/.libs "$tmp/quantkit" plugins >"$tmp/out" 2>"$tmp/err"
check "installed: no build tree" "$(! grep -q 'plugins/observers/.libs\|fakequant-round' "$tmp/out"; echo $?)"
check "installed: QUANTKIT_PLUGIN_PATH" "$(grep -qE '^observer +minmax +0\.0\.1 .*path_b' "$tmp/out"; echo $?)"
installed=$("$tmp/quantkit" plugins 2>&1 >/dev/null | sed -n 's/.*searched: \(.*\) (installed)$/\1/p')
if [ -n "$installed" ] && [ ! -d "$installed" ]; then
    "$tmp/quantkit" plugins >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "installed, nothing to search: exit 1, one line" \
        "$([ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q 'no plugin directory could be searched' "$tmp/err"; echo $?)"
fi

"$qk" plugins --bogus >/dev/null 2>"$tmp/err"; rc=$?
check "bad option: exit 1, one line" "$([ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ]; echo $?)"

echo "plugins CLI: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
