#!/usr/bin/env bash
# This file implements the README's main command: set up a fresh Debian
# machine, build quantkit, and run the bundled digits CNN over its bundled
# test set, printing its accuracy.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/setup-debian.sh"
"$top/tools/build.sh" "$top/build-plain"
qk="$top/build-plain/quantkit"
data="$top/tests/data"
echo "demo: float digits CNN on $(basename "$data")/digits_test_x.npy"
"$qk" eval "$data/digits_cnn.onnx" --data "$data/digits_test_x.npy" --labels "$data/digits_test_y.npy"
"$qk" run "$data/digits_cnn.onnx" --input "$data/digits_test_x.npy" --output "$top/build-plain/digits_logits.npy"
echo "demo: logits written to build-plain/digits_logits.npy"
