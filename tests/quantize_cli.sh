#!/usr/bin/env bash
# This file implements the end-to-end tests of `quantkit quantize` on the
# bundled digits CNN (a real network trained on sklearn's digits):
#   - W8A8 stays within 0.5 point of float top-1, W4A8 (per-channel weights)
#     within 3 points, for every built-in observer;
#   - --record then --from-record reproduces the model byte for byte;
#   - the report is valid JSON with every tensor, the HTML page has its chart;
#   - bad inputs exit non-zero with one line naming the problem, leave no
#     output file (nor a temporary one) and leave the inputs unmodified.
set -u
qk=${QUANTKIT:?QUANTKIT must point at the quantkit binary}
data=${TEST_DATA_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }

model="$data/digits_cnn.onnx" calib="$data/digits_calib.npy"
x="$data/digits_test_x.npy" y="$data/digits_test_y.npy"
sums_before=$(md5sum "$data"/*.onnx "$data"/*.npy)

# config NAME OBSERVER WBITS [EXTRA]: writes $tmp/NAME.yaml
config() {
    cat >"$tmp/$1.yaml" <<YAML
version: 1
backend: onnx-qdq
calibration: {batch_size: 50}
quantize:
  activation: {observer: $2, bits: 8, symmetric: false}
  weight: {quantizer: round, observer: minmax, bits: $3, symmetric: true, per_channel: true}
${4:-}
YAML
}

top1() { sed -n 's/.*"top1":\([0-9.]*\).*/\1/p'; }
float_top1=$("$qk" eval "$model" --data "$x" --labels "$y" | top1)
[ -n "$float_top1" ] && ok "float top-1 $float_top1" || bad "float eval failed"

# within A B POINTS: |A - B| * 100 <= POINTS
within() { awk -v a="$1" -v b="$2" -v p="$3" 'BEGIN { d = (a - b) * 100; if (d < 0) d = -d; exit !(d <= p) }'; }

for obs in minmax moving_average percentile kl mse; do
    for w in 8 4; do
        limit=$([ $w = 8 ] && echo 0.5 || echo 3)
        config "w${w}_$obs" "$obs" "$w"
        out="$tmp/w${w}_$obs.onnx"
        if ! "$qk" quantize "$model" -c "$tmp/w${w}_$obs.yaml" --calib "$calib" -o "$out" -q >"$tmp/q.out" 2>"$tmp/q.err"; then
            bad "W${w}A8 $obs: quantize failed: $(cat "$tmp/q.err")"
            continue
        fi
        got=$("$qk" eval "$out" --data "$x" --labels "$y" --reference "$model")
        t=$(echo "$got" | top1)
        if [ -n "$t" ] && within "$t" "$float_top1" "$limit"; then ok "W${w}A8 $obs: $got (float $float_top1, limit $limit pt)"
        else bad "W${w}A8 $obs: $got (float $float_top1, limit $limit pt)"; fi
    done
done

# Calibration splits observing over the executor's threads (core/calibrate.c)
# and the observers scan with AVX-512 where the CPU has it: neither may change
# a range.  Every tensor observed whole on one thread with the portable scans
# (QK_CALIB_SPLIT=0 QK_OBSERVER_ISA=c) against the default, both on two
# threads (the same executor work), byte for byte, for every observer: on the
# digits CNN (small values, taken sample by sample), on the MobileNet and
# ResNet of tests/data/nets (64x64: values large enough to be split), and on
# fused_chains, whose observed SiLU the executor hands over in parts
# (core/exec_tail.c).
for spec in digits_cnn:digits_calib:150 nets/mobilenet_v2:nets/mobilenet_v2_input:2 \
            nets/resnet_small:nets/resnet_small_input:2 fused_chains:fused_chains_x:3; do
    IFS=: read -r net cal batch <<<"$spec"
    for obs in minmax moving_average percentile kl mse; do
        config "split_$obs" "$obs" 8 && sed -i "s/batch_size: 50/batch_size: $batch/" "$tmp/split_$obs.yaml"
        if QK_CALIB_SPLIT=0 QK_OBSERVER_ISA=c "$qk" quantize "$data/$net.onnx" -c "$tmp/split_$obs.yaml" \
               --calib "$data/$cal.npy" -o "$tmp/seq.onnx" --threads 2 -q >/dev/null 2>"$tmp/q.err" &&
           "$qk" quantize "$data/$net.onnx" -c "$tmp/split_$obs.yaml" --calib "$data/$cal.npy" -o "$tmp/par.onnx" \
               --threads 2 -q >/dev/null 2>>"$tmp/q.err" && cmp -s "$tmp/seq.onnx" "$tmp/par.onnx"; then
            ok "$net $obs: split over threads, vector scans = whole, portable scans"
        else
            bad "$net $obs: split observation differs from whole (or failed): $(cat "$tmp/q.err")"
        fi
    done
done

# The other trained networks, W8A8 minmax: within 0.5 point too.
config other minmax 8
for spec in digits_mbv2:digits_calib:digits_test_x:digits_test_y cancer_mlp:cancer_calib:cancer_test_x:cancer_test_y; do
    IFS=: read -r net cal tx ty <<<"$spec"
    ft=$("$qk" eval "$data/$net.onnx" --data "$data/$tx.npy" --labels "$data/$ty.npy" | top1)
    if "$qk" quantize "$data/$net.onnx" -c "$tmp/other.yaml" --calib "$data/$cal.npy" -o "$tmp/$net.onnx" -q \
            >/dev/null 2>"$tmp/q.err" &&
       got=$("$qk" eval "$tmp/$net.onnx" --data "$data/$tx.npy" --labels "$data/$ty.npy" --reference "$data/$net.onnx") &&
       t=$(echo "$got" | top1) && [ -n "$t" ] && within "$t" "$ft" 0.5; then ok "$net W8A8 minmax: $got (float $ft)"
    else bad "$net W8A8 minmax: ${got:-$(cat "$tmp/q.err")} (float $ft)"; fi
done

# Record round trip: same scales, same model, no calibration data needed.
config rec minmax 8
if "$qk" quantize "$model" -c "$tmp/rec.yaml" --calib "$calib" -o "$tmp/a.onnx" --record "$tmp/rec.rec.yaml" \
        --report "$tmp/r.json" --html "$tmp/r.html" -q >/dev/null 2>"$tmp/q.err" &&
   "$qk" quantize "$model" -c "$tmp/rec.yaml" --from-record "$tmp/rec.rec.yaml" -o "$tmp/b.onnx" -q >/dev/null 2>>"$tmp/q.err" &&
   cmp -s "$tmp/a.onnx" "$tmp/b.onnx"; then ok "record round trip reproduces the model byte for byte"
else bad "record round trip: $(cat "$tmp/q.err")"; fi

# The report: valid JSON, every planned tensor, a finite output SQNR.
n_plan=$("$qk" plan "$model" -c "$tmp/rec.yaml" --json | grep -o '"tensor":' | wc -l)
if command -v node >/dev/null 2>&1; then
    if check=$(node -e '
        const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        const n = Number(process.argv[2]);
        if (r.tensors.length !== n) throw new Error(`report has ${r.tensors.length} tensors, plan ${n}`);
        for (const t of r.tensors) if (!t.scale || t.scale.length !== t.channels) throw new Error(`tensor ${t.name}: scale count`);
        if (!(r.outputs[0].sqnr_db > 20)) throw new Error(`output SQNR ${r.outputs[0].sqnr_db}`);
        if (!(r.calibration.images === 300)) throw new Error(`calibration images ${r.calibration.images}`);
        console.log(`${r.tensors.length} tensors, output SQNR ${r.outputs[0].sqnr_db.toFixed(2)} dB`);
    ' "$tmp/r.json" "$n_plan" 2>&1); then ok "report JSON: $check"; else bad "report JSON: $check"; fi
else
    echo "skip report JSON check (no node)"
fi
grep -q "<svg" "$tmp/r.html" && ok "report HTML has its SVG chart" || bad "report HTML has no <svg>"

# ---- bad inputs ----------------------------------------------------------------
# expect_error NAME NEEDLE CMD...: non-zero exit, one stderr line with NEEDLE,
# no $tmp/out.onnx and no temporary file left in $tmp.
expect_error() {
    local name=$1 needle=$2; shift 2
    rm -f "$tmp/out.onnx"
    "$@" 2>"$tmp/err" >/dev/null
    local rc=$? lines
    lines=$(wc -l <"$tmp/err")
    if [ $rc -ne 0 ] && [ "$lines" -eq 1 ] && grep -qF -- "$needle" "$tmp/err" && [ ! -e "$tmp/out.onnx" ] &&
       [ -z "$(ls "$tmp" | grep '\.tmp')" ]; then ok "$name: $(cat "$tmp/err")"
    else bad "$name (exit $rc, $lines lines, wanted '$needle'): $(cat "$tmp/err")"; fi
}

# NaN in the 5th sample of the calibration data (npy v1: header is 10 + HLEN bytes).
cp "$calib" "$tmp/nan.npy"
hlen=$(od -An -tu2 -j8 -N2 "$calib" | tr -d ' ')
printf '\000\000\300\177' | dd of="$tmp/nan.npy" bs=1 seek=$((10 + hlen + 4 * (4 * 64 + 10))) conv=notrunc 2>/dev/null
config good minmax 8
expect_error nan-calibration "sample 4 holds NaN" "$qk" quantize "$model" -c "$tmp/good.yaml" --calib "$tmp/nan.npy" -o "$tmp/out.onnx"
expect_error calibration-shape "expected shape" "$qk" quantize "$model" -c "$tmp/good.yaml" --calib "$data/fields_x.npy" -o "$tmp/out.onnx"
config unknown-observer minmx 8
expect_error unknown-observer "minmx" "$qk" quantize "$model" -c "$tmp/unknown-observer.yaml" --calib "$calib" -o "$tmp/out.onnx"
config bits minmax 17
expect_error bits-out-of-range "bits" "$qk" quantize "$model" -c "$tmp/bits.yaml" --calib "$calib" -o "$tmp/out.onnx"
config a4 minmax 8 "op_types: {Conv: {activation: {bits: 4}}}"
expect_error activation-4-bit "8-bit" "$qk" quantize "$model" -c "$tmp/a4.yaml" --calib "$calib" -o "$tmp/out.onnx"
expect_error no-calibration "--calib" "$qk" quantize "$model" -c "$tmp/good.yaml" -o "$tmp/out.onnx"
printf 'version: 1\ntensors:\n  input: {role: activation, bits: 8, qmin: 0, qmax: 255, scale: [0.1], zero_point: [0]}\n' >"$tmp/short.rec.yaml"
expect_error record-missing-tensor "no entry for tensor" "$qk" quantize "$model" -c "$tmp/good.yaml" --from-record "$tmp/short.rec.yaml" -o "$tmp/out.onnx"
printf 'version: 1\ntensors:\n  input: {role: activation, bitz: 8}\n' >"$tmp/typo.rec.yaml"
expect_error record-typo "unknown key \`bitz\`" "$qk" quantize "$model" -c "$tmp/good.yaml" --from-record "$tmp/typo.rec.yaml" -o "$tmp/out.onnx"
expect_error missing-output-folder "$tmp/nope/out.onnx" "$qk" quantize "$model" -c "$tmp/good.yaml" --calib "$calib" -o "$tmp/nope/out.onnx"
expect_error corrupt-model "not an ONNX model" "$qk" quantize "$tmp/nan.npy" -c "$tmp/good.yaml" --calib "$calib" -o "$tmp/out.onnx"

[ "$sums_before" = "$(md5sum "$data"/*.onnx "$data"/*.npy)" ] && ok "inputs unmodified" || bad "an input file changed"
echo "quantize: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
