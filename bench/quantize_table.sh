#!/bin/bash
# This file implements quantkit's quantization accuracy table: for each small
# real network bundled in tests/data (each with its calibration and test
# .npy files), each activation observer and each weight width, it runs
#
#   quantkit quantize MODEL -c CFG --calib CALIB -o OUT -q     (timed, wall s)
#   quantkit eval OUT --data X --labels Y --reference MODEL
#
# and prints one markdown table per model:
#
#   | model | config | observer | top-1 (float F) | SQNR dB | quantize s |
#
# The configurations are the ones users start from: weights per-channel
# symmetric, observed by min/max and rounded to nearest (W8A8: 8 bits, W4A8:
# 4 bits, int8 codes in [-7, 7]); activations 8-bit asymmetric, every one of
# them calibrated by the observer of the row (no per-op overrides, so the
# rows differ by the observer alone); the onnx-qdq backend and its default
# fusions; batches of 32 over all the calibration data.  top-1 is measured
# on the test set, SQNR is the logits' against the float model's on that same
# set.  The models come from tools/make_demo_model.py (digits_cnn) and
# tools/make_extra_models.py (digits_mbv2, cancer_mlp).
#
# Environment (all optional):
#   QUANTKIT=path           the quantkit binary (default: build-plain/quantkit
#                           at the top of the source tree)
#   MODELS="digits_cnn ..." models (default: digits_cnn digits_mbv2 cancer_mlp)
#   OBSERVERS="minmax ..."  observers (default: minmax moving_average
#                           percentile kl mse)
#   CONFIGS="w8a8 w4a8"     weight widths to run
#   BATCH=32                calibration batch size
#   DATA=dir                folder with the models and .npy files
#                           (default: tests/data)
#   OUT=file                also write the rows as tab-separated values
#
# Exit status: 0 when every row was measured, 1 when some failed (their
# cells say "failed" and the error is on stderr), 2 on a usage problem.
set -u
set -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
QUANTKIT=${QUANTKIT:-$top/build-plain/quantkit}
MODELS=${MODELS:-"digits_cnn digits_mbv2 cancer_mlp"}
OBSERVERS=${OBSERVERS:-"minmax moving_average percentile kl mse"}
CONFIGS=${CONFIGS:-"w8a8 w4a8"}
BATCH=${BATCH:-32}
DATA=${DATA:-$top/tests/data}
OUT=${OUT:-}

die() { echo "quantize_table: $*" >&2; exit 2; }

[ -x "$QUANTKIT" ] || die "no quantkit binary at $QUANTKIT (build it, or set QUANTKIT)"
tmp=$(mktemp -d) || die "mktemp failed"
trap 'rm -rf "$tmp"' EXIT

# data MODEL: sets model calib x y (digits_* models share the digits files)
data() {
    local prefix=${1%%_*}
    model=$DATA/$1.onnx calib=$DATA/${prefix}_calib.npy
    x=$DATA/${prefix}_test_x.npy y=$DATA/${prefix}_test_y.npy
    local f
    for f in "$model" "$calib" "$x" "$y"; do
        [ -f "$f" ] || die "$f missing"
    done
}

# wbits CONFIG: weight bits of a configuration name
wbits() {
    case $1 in
        w8a8) echo 8 ;;
        w4a8) echo 4 ;;
        *) die "unknown config '$1' (known: w8a8 w4a8)" ;;
    esac
}

# config FILE OBSERVER WBITS
config() {
    cat >"$1" <<YAML
version: 1
backend: onnx-qdq
calibration: {batch_size: $BATCH}
quantize:
  activation: {observer: $2, bits: 8, symmetric: false}
  weight: {quantizer: round, observer: minmax, bits: $3, symmetric: true, per_channel: true}
YAML
}

# field NAME: a number from the one-line JSON on stdin ("null" stays null)
field() { sed -n "s/.*\"$1\":\([-0-9.e+]*\|null\).*/\1/p"; }

now() { date +%s.%N; }

for c in $CONFIGS; do wbits "$c" >/dev/null; done
[ -z "$OUT" ] || printf 'model\tconfig\tobserver\ttop1\tfloat_top1\tsqnr_db\tquantize_s\n' >"$OUT" \
    || die "cannot write $OUT"

failed=0
first=1
for m in $MODELS; do
    data "$m"
    float_top1=$("$QUANTKIT" eval "$model" --data "$x" --labels "$y" 2>"$tmp/err" | field top1)
    [ -n "$float_top1" ] || die "$m: float eval failed: $(head -n 1 "$tmp/err")"
    [ $first = 1 ] || echo
    first=0
    echo "| model | config | observer | top-1 (float $float_top1) | SQNR dB | quantize s |"
    echo "|---|---|---|---:|---:|---:|"
    for c in $CONFIGS; do
        for obs in $OBSERVERS; do
            cfg=$tmp/${c}_$obs.yaml q=$tmp/${m}_${c}_$obs.onnx
            config "$cfg" "$obs" "$(wbits "$c")"
            t0=$(now)
            if "$QUANTKIT" quantize "$model" -c "$cfg" --calib "$calib" -o "$q" -q >/dev/null 2>"$tmp/err"; then
                t1=$(now)
                secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
                got=$("$QUANTKIT" eval "$q" --data "$x" --labels "$y" --reference "$model" 2>"$tmp/err")
                top1=$(echo "$got" | field top1)
                sqnr=$(echo "$got" | field sqnr_db)
                if [ -z "$top1" ]; then
                    echo "quantize_table: $m $c $obs: eval failed: $(head -n 1 "$tmp/err")" >&2
                    top1=failed sqnr=failed failed=1
                fi
                [ "$sqnr" = failed ] || [ "$sqnr" = null ] || sqnr=$(printf '%.2f' "$sqnr")
            else
                echo "quantize_table: $m $c $obs: quantize failed: $(head -n 1 "$tmp/err")" >&2
                top1=failed sqnr=failed secs=failed failed=1
            fi
            echo "| $m | ${c^^} | $obs | $top1 | $sqnr | $secs |"
            [ -z "$OUT" ] || printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
                "$m" "$c" "$obs" "$top1" "$float_top1" "$sqnr" "$secs" >>"$OUT"
            rm -f "$q"
        done
    done
done
exit $failed
