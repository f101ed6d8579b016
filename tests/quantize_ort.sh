#!/usr/bin/env bash
# This file implements the ONNX Runtime agreement test of quantized models:
# quantkit quantizes the digits CNN (W8A8 and W4A8 per-channel) and three
# small real networks, then runs each exported model itself (`quantkit run`)
# and under ONNX Runtime (npm onnxruntime-node, tools/ort_run.js):
#   - with graph optimizations disabled (ORT's exact QDQ semantics) the
#     outputs agree within one quantization step of the output tensor and the
#     top-1 on the digits test set is the same;
#   - with all optimizations (ORT fuses Q/DQ into integer kernels, as
#     deployed) the digits top-1 stays within 0.5 point of quantkit's.
# Skipped (77) without node / onnxruntime-node, unless CI=true.
set -u
here=$(cd "$(dirname "$0")" && pwd)
qk=${QUANTKIT:?QUANTKIT must point at the quantkit binary}
data=${TEST_DATA_DIR:-$here/data}
TOOLS_DIR=${TOOLS_DIR:-$here/../tools}

unavailable() {
    if [ "${CI:-}" = true ]; then
        echo "quantize vs ORT: ERROR: $1 (CI=true: the ONNX Runtime reference is required)" >&2
        exit 1
    fi
    echo "quantize vs ORT: SKIP: $1"
    exit 77
}
command -v node >/dev/null 2>&1 || unavailable "node not found (apt-get install nodejs)"
NODE_PATH="$TOOLS_DIR/node_modules${QK_NODE_PATH:+:$QK_NODE_PATH}${NODE_PATH:+:$NODE_PATH}"
export NODE_PATH
node -e "require('onnxruntime-node')" >/dev/null 2>&1 ||
    unavailable "onnxruntime-node not usable (install: cd tools && npm install --ignore-scripts)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }

# output_step REPORT.json: the scale of the first graph output's quantization
output_step() {
    node -e '
        const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        const t = r.tensors.find(t => t.name === r.outputs[0].name);
        console.log(t ? t.scale[0] : 0);' "$1"
}

# agree NAME MODEL.q INPUT.npy REPORT: quantkit vs ORT (disabled) within one step
agree() {
    local name=$1 q=$2 in=$3 rep=$4 step
    step=$(output_step "$rep")
    if ! "$qk" run "$q" --input "$in" --output "$tmp/qk.npy" 2>"$tmp/err" ||
       ! node "$TOOLS_DIR/ort_run.js" "$q" "$in" "$tmp/ort.npy" --opt disabled 2>"$tmp/err"; then
        bad "$name: run failed: $(cat "$tmp/err")"; return
    fi
    # The atol is one output step (plus float noise): float accumulation
    # order may move a value across a rounding boundary at a Q node.
    local res
    res=$(node -e '
        const { readNpy } = require(process.argv[1] + "/npy.js");
        const a = readNpy(process.argv[2]).data, b = readNpy(process.argv[3]).data, step = Number(process.argv[4]);
        let m = 0, bad = 0;
        for (let i = 0; i < a.length; i++) { const d = Math.abs(a[i] - b[i]); if (d > m) m = d; if (!(d <= step * 1.001 + 1e-6)) bad++; }
        console.log(`max|diff| ${m.toPrecision(3)} vs step ${step.toPrecision(3)}, ${bad} of ${a.length} beyond one step`);
        process.exit(bad ? 1 : 0);' "$TOOLS_DIR" "$tmp/qk.npy" "$tmp/ort.npy" "$step" 2>&1) &&
        ok "$name: quantkit vs ORT: $res" || bad "$name: quantkit vs ORT: $res"
}

cfg() {
    cat >"$tmp/$1.yaml" <<YAML
version: 1
calibration: {batch_size: 50}
quantize:
  activation: {observer: minmax, bits: 8, symmetric: false}
  weight: {observer: minmax, bits: $2, symmetric: true, per_channel: true}
YAML
}
cfg w8 8
cfg w4 4

x="$data/digits_test_x.npy" y="$data/digits_test_y.npy"
for w in w8 w4; do
    q="$tmp/digits_$w.onnx"
    if ! "$qk" quantize "$data/digits_cnn.onnx" -c "$tmp/$w.yaml" --calib "$data/digits_calib.npy" -o "$q" \
            --report "$tmp/digits_$w.json" -q >/dev/null 2>"$tmp/err"; then
        bad "digits $w: quantize failed: $(cat "$tmp/err")"; continue
    fi
    agree "digits ${w}a8" "$q" "$x" "$tmp/digits_$w.json"
    qt=$(node "$TOOLS_DIR/npy_compare.js" "$tmp/qk.npy" "$y" --top1 --min-agree 0 | sed -n 's/.*top1_accuracy=\([0-9.]*\).*/\1/p')
    ot=$(node "$TOOLS_DIR/npy_compare.js" "$tmp/ort.npy" "$y" --top1 --min-agree 0 | sed -n 's/.*top1_accuracy=\([0-9.]*\).*/\1/p')
    [ -n "$qt" ] && [ "$qt" = "$ot" ] && ok "digits ${w}a8: top-1 quantkit $qt = ORT $ot" ||
        bad "digits ${w}a8: top-1 quantkit $qt, ORT $ot"
    if node "$TOOLS_DIR/ort_run.js" "$q" "$x" "$tmp/fused.npy" --opt all 2>"$tmp/err"; then
        ft=$(node "$TOOLS_DIR/npy_compare.js" "$tmp/fused.npy" "$y" --top1 --min-agree 0 | sed -n 's/.*top1_accuracy=\([0-9.]*\).*/\1/p')
        awk -v a="$ft" -v b="$qt" 'BEGIN { d = (a - b) * 100; if (d < 0) d = -d; exit !(d <= 0.5) }' &&
            ok "digits ${w}a8: ORT fused integer kernels top-1 $ft (quantkit $qt)" ||
            bad "digits ${w}a8: ORT fused top-1 $ft vs quantkit $qt"
    else
        bad "digits ${w}a8: ORT (all optimizations) failed: $(cat "$tmp/err")"
    fi
done

# Two more networks trained on real data (tools/make_extra_models.py).
for spec in digits_mbv2:digits_calib:digits_test_x cancer_mlp:cancer_calib:cancer_test_x; do
    IFS=: read -r net cal tx <<<"$spec"
    q="$tmp/$net.onnx"
    if "$qk" quantize "$data/$net.onnx" -c "$tmp/w8.yaml" --calib "$data/$cal.npy" -o "$q" --report "$tmp/$net.json" \
            -q >/dev/null 2>"$tmp/err"; then agree "$net w8a8" "$q" "$data/$tx.npy" "$tmp/$net.json"
    else bad "$net: quantize failed: $(cat "$tmp/err")"; fi
done

for net in resnet_small mobilenet_v2 transformer; do
    q="$tmp/$net.onnx"
    if ! "$qk" quantize "$data/nets/$net.onnx" -c "$tmp/w8.yaml" --calib "$data/nets/${net}_input.npy" -o "$q" \
            --report "$tmp/$net.json" -q >/dev/null 2>"$tmp/err"; then
        bad "$net: quantize failed: $(cat "$tmp/err")"; continue
    fi
    agree "$net w8a8" "$q" "$data/nets/${net}_input.npy" "$tmp/$net.json"
done
echo "quantize vs ORT: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
