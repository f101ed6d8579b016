#!/bin/sh
# This file implements the real-network test: every tests/data/nets/NAME.onnx
# (small torchvision/transformer networks made by tools/export_networks.py)
# is run by `quantkit run` and by ONNX Runtime (tools/ort_run.js, npm
# onnxruntime-node, graph optimizations disabled) on NAME_input.npy, and the
# outputs must agree within a relative error max|a-b|/max|ref| <= 1e-4
# (tools/npy_compare.js).  One line per network, then "N passed, M failed".
#
# Environment (set by `make check`): QUANTKIT (the built binary),
# TEST_DATA_DIR (tests/data), TOOLS_DIR (tools).  onnxruntime-node is looked
# up in $TOOLS_DIR/node_modules, then in $QK_NODE_PATH (a node_modules folder,
# for builds whose tools/ folder has none, e.g. make distcheck).  Without node
# or onnxruntime-node the test is skipped (exit 77) -- unless CI=true, where
# a missing reference is an error.  RTOL overrides the tolerance.
set -u

here=$(cd "$(dirname "$0")" && pwd)
TEST_DATA_DIR=${TEST_DATA_DIR:-$here/data}
TOOLS_DIR=${TOOLS_DIR:-$here/../tools}
QUANTKIT=${QUANTKIT:-$here/../quantkit}
RTOL=${RTOL:-1e-4}

unavailable() {
    if [ "${CI:-}" = true ]; then
        echo "real networks: ERROR: $1 (CI=true: the ONNX Runtime reference is required)" >&2
        exit 1
    fi
    echo "real networks: SKIP: $1"
    exit 77
}

command -v node >/dev/null 2>&1 ||
    unavailable "node not found (apt-get install nodejs)"
NODE_PATH="$TOOLS_DIR/node_modules${QK_NODE_PATH:+:$QK_NODE_PATH}${NODE_PATH:+:$NODE_PATH}"
export NODE_PATH
if ! why=$(node -e "require('onnxruntime-node')" 2>&1); then
    why=$(printf '%s\n' "$why" | grep -m1 -E 'Error|error' || printf '%s\n' "$why" | head -n 1)
    unavailable "onnxruntime-node not usable from $TOOLS_DIR/node_modules: $why (install: cd tools && npm install --ignore-scripts)"
fi
if [ ! -x "$QUANTKIT" ]; then
    echo "real networks: ERROR: quantkit binary '$QUANTKIT' not found or not executable" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qk_real_networks.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
result() {   # PASS|FAIL NAME DETAIL
    echo "real networks: $1 $2: $3"
    if [ "$1" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}
first_line() { grep -m1 . "$1" 2>/dev/null || echo "(no message)"; }

for model in "$TEST_DATA_DIR"/nets/*.onnx; do
    [ -e "$model" ] || break
    name=$(basename "$model" .onnx)
    input="$TEST_DATA_DIR/nets/${name}_input.npy"
    if [ ! -f "$input" ]; then
        result FAIL "$name" "missing input file $input"
        continue
    fi
    if ! "$QUANTKIT" run "$model" --input "$input" --output "$tmp/$name.qk.npy" \
            >"$tmp/$name.qk.log" 2>&1; then
        result FAIL "$name" "quantkit run failed: $(first_line "$tmp/$name.qk.log")"
        continue
    fi
    if ! node "$TOOLS_DIR/ort_run.js" "$model" "$input" "$tmp/$name.ort.npy" --opt disabled \
            >"$tmp/$name.ort.log" 2>&1; then
        result FAIL "$name" "ONNX Runtime failed: $(first_line "$tmp/$name.ort.log")"
        continue
    fi
    if cmp=$(node "$TOOLS_DIR/npy_compare.js" "$tmp/$name.qk.npy" "$tmp/$name.ort.npy" \
            --rtol "$RTOL" 2>&1); then
        result PASS "$name" "${cmp#PASS }"
    else
        result FAIL "$name" "${cmp#FAIL }"
    fi
done

if [ $((passed + failed)) -eq 0 ]; then
    echo "real networks: ERROR: no networks in $TEST_DATA_DIR/nets (run tools/export_networks.py)" >&2
    exit 1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
