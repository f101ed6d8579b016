#!/usr/bin/env bash
# This file implements the README's main command: set up a fresh Debian
# machine, build quantkit, quantize the bundled digits CNN (W8A8, configs/
# w8a8.yaml) on its bundled calibration set, and print float vs quantized
# top-1 and SQNR on the bundled test set, with the report files' paths.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/setup-debian.sh"
"$top/tools/build.sh" "$top/build-plain"
qk="$top/build-plain/quantkit"
data="$top/tests/data"
out="$top/build-plain/demo"
mkdir -p "$out"
echo "demo: quantizing tests/data/digits_cnn.onnx with configs/w8a8.yaml"
"$qk" quantize "$data/digits_cnn.onnx" -c "$top/configs/w8a8.yaml" --calib "$data/digits_calib.npy" \
    -o "$out/digits_w8a8.onnx" --record "$out/digits_w8a8.record.yaml" \
    --report "$out/digits_w8a8.report.json" --html "$out/digits_w8a8.report.html"
float=$("$qk" eval "$data/digits_cnn.onnx" --data "$data/digits_test_x.npy" --labels "$data/digits_test_y.npy")
quant=$("$qk" eval "$out/digits_w8a8.onnx" --data "$data/digits_test_x.npy" --labels "$data/digits_test_y.npy" \
    --reference "$data/digits_cnn.onnx")
echo "demo: float     $float"
echo "demo: quantized $quant"
echo "demo: model, record and report in build-plain/demo/ (open digits_w8a8.report.html in a browser)"
