#!/usr/bin/env bash
# This file implements the CLI's bad-input tests: each case must exit
# non-zero with exactly one line on stderr naming what went wrong, leave no
# output file behind, and leave its input files unmodified.
set -u
qk=${QUANTKIT:?QUANTKIT must point at the quantkit binary}
data=${TEST_DATA_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

# expect_error NAME NEEDLE CMD...: non-zero exit, one stderr line containing NEEDLE
expect_error() {
    local name=$1 needle=$2; shift 2
    local out="$tmp/out.npy"
    rm -f "$out"
    "$@" 2>"$tmp/err" >/dev/null
    local rc=$? lines
    lines=$(wc -l <"$tmp/err")
    if [ $rc -ne 0 ] && [ "$lines" -eq 1 ] && grep -qF -- "$needle" "$tmp/err" && [ ! -e "$out" ] &&
       [ -z "$(ls "$tmp" | grep '\.tmp')" ]; then
        pass=$((pass + 1)); echo "ok   $name: $(cat "$tmp/err")"
    else
        fail=$((fail + 1)); echo "FAIL $name (exit $rc, $lines lines, wanted '$needle'): $(cat "$tmp/err")"
    fi
}

head -c 1000 "$data/digits_cnn.onnx" >"$tmp/truncated.onnx"
: >"$tmp/empty.onnx"
echo "hello" >"$tmp/text.onnx"
sums_before=$(md5sum "$data"/*.onnx "$data"/*.npy)

x="$data/digits_test_x.npy"
expect_error truncated-model "not an ONNX model" "$qk" run "$tmp/truncated.onnx" --input "$x" --output "$tmp/out.npy"
expect_error empty-model "empty file" "$qk" run "$tmp/empty.onnx" --input "$x" --output "$tmp/out.npy"
expect_error text-model "not an ONNX model" "$qk" run "$tmp/text.onnx" --input "$x" --output "$tmp/out.npy"
expect_error missing-model "cannot open" "$qk" run "$tmp/nope.onnx" --input "$x" --output "$tmp/out.npy"
expect_error unknown-op "FancyNewOp" "$qk" run "$data/unsupported_op.onnx" --input "$x" --output "$tmp/out.npy"
expect_error unknown-op-node "mystery_node" "$qk" run "$data/unsupported_op.onnx" --input "$x" --output "$tmp/out.npy"
expect_error wrong-shape "input 'X': expected shape [?,3]" "$qk" run "$data/fields.onnx" --input "$x" --output "$tmp/out.npy"
expect_error unknown-input-name "no input named 'nope'" "$qk" run "$data/fields.onnx" --input "nope=$data/fields_x.npy" --output "$tmp/out.npy"
expect_error bad-npy "$tmp/empty.onnx" "$qk" run "$data/fields.onnx" --input "$tmp/empty.onnx" --output "$tmp/out.npy"
expect_error bad-batch "--batch" "$qk" run "$data/fields.onnx" --input "$data/fields_x.npy" --output "$tmp/out.npy" --batch -3
expect_error unwritable-output "cannot create" "$qk" run "$data/fields.onnx" --input "$data/fields_x.npy" --output "$tmp/no/such/dir/out.npy"
expect_error missing-args "usage" "$qk" run "$data/fields.onnx"
expect_error unknown-command "unknown command" "$qk" frobnicate
expect_error quantize-usage "usage: quantkit quantize" "$qk" quantize "$data/fields.onnx"

# A good run writes the file, and a second one replaces it whole.
if "$qk" run "$data/fields.onnx" --input "$data/fields_x.npy" --output "$tmp/good.npy" 2>"$tmp/err" && [ -s "$tmp/good.npy" ]; then
    pass=$((pass + 1)); echo "ok   good-run"
else
    fail=$((fail + 1)); echo "FAIL good-run: $(cat "$tmp/err")"
fi

if [ "$sums_before" = "$(md5sum "$data"/*.onnx "$data"/*.npy)" ]; then
    pass=$((pass + 1)); echo "ok   inputs-unmodified"
else
    fail=$((fail + 1)); echo "FAIL inputs-unmodified"
fi
echo "cli errors: $pass passed, $fail failed"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
