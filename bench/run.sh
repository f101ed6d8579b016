#!/bin/bash
# This file implements quantkit's side-by-side speed benchmark: for every
# network x batch x thread count it times `quantkit bench` and ONNX Runtime
# (tools/ort_bench.js, npm onnxruntime-node, CPU provider) on the same model,
# the same input batch and the same number of threads, interleaved in one
# run, and prints one line per configuration:
#
#   net batch threads qk_img/s ort_img/s ratio qk_rss_MB ort_rss_MB
#
# ratio = quantkit images/s / ORT images/s (> 1: quantkit is faster).  RSS is
# each process's peak resident set; ORT's includes node itself (its share
# before ONNX Runtime loads is printed once at the end).  See bench/README.md.
#
# Environment (all optional):
#   NETS="resnet18 ..."   networks (default: the five below)
#   BATCHES="1 8"         batch sizes
#   THREADS="1 2"         thread counts
#   ITERS=20              timed iterations per measurement (after 2 warm-ups)
#   ROUNDS=1              measurements per runtime and configuration, taken
#                         alternately (qk, ort, qk, ort, ...); the best of
#                         each is reported, which filters out interference
#                         from other processes on a shared machine
#   QUANTKIT=path         the quantkit binary (default: ./quantkit, then
#                         ../quantkit relative to bench/, then PATH)
#   CACHE=dir             exported models (default bench/cache; missing ones
#                         are exported with tools/export_torchvision.py)
#   ORT_OPT=all           ORT graphOptimizationLevel
#   OUT=file              also write the table as tab-separated values
#   PYTHON=/usr/bin/python3, NODE=node
set -u
set -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
NETS=${NETS:-"resnet18 mobilenet_v2 efficientnet_b0 squeezenet1_1 shufflenet_v2_x1_0"}
BATCHES=${BATCHES:-"1 8"}
THREADS=${THREADS:-"1 2"}
ITERS=${ITERS:-20}
ROUNDS=${ROUNDS:-1}
CACHE=${CACHE:-$here/cache}
ORT_OPT=${ORT_OPT:-all}
PYTHON=${PYTHON:-/usr/bin/python3}
NODE=${NODE:-node}
OUT=${OUT:-}

die() { echo "bench: $*" >&2; exit 1; }

if [ -z "${QUANTKIT:-}" ]; then
    for q in ./quantkit "$top/quantkit"; do
        if [ -x "$q" ] && [ -f "$q" ]; then QUANTKIT=$q; break; fi
    done
    [ -n "${QUANTKIT:-}" ] || QUANTKIT=$(command -v quantkit) ||
        die "no quantkit binary: build it, or set QUANTKIT=/path/to/quantkit"
fi
[ -x "$QUANTKIT" ] || die "QUANTKIT=$QUANTKIT is not executable"
command -v "$NODE" >/dev/null 2>&1 || die "node not found (apt-get install nodejs)"
export NODE_PATH="$top/tools/node_modules${QK_NODE_PATH:+:$QK_NODE_PATH}${NODE_PATH:+:$NODE_PATH}"
"$NODE" -e "require('onnxruntime-node')" >/dev/null 2>&1 ||
    die "onnxruntime-node not found (cd tools && npm install --ignore-scripts)"

missing=
for n in $NETS; do
    [ -f "$CACHE/$n.onnx" ] && [ -f "$CACHE/${n}_input.npy" ] || missing="$missing $n"
done
if [ -n "$missing" ]; then
    echo "bench: exporting$missing into $CACHE" >&2
    "$PYTHON" "$top/tools/export_torchvision.py" --out "$CACHE" $missing >&2 ||
        die "export failed (needs python3-torch and python3-torchvision)"
fi

# json FIELD LINE: the number after "FIELD": in a one-line JSON object.
json() { printf '%s\n' "$2" | sed -n "s/.*\"$1\":\([-0-9.eE+]*\).*/\1/p"; }
# best A B: the larger of two numbers (either may be empty).
best() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "") print b; else if (b == "" || a + 0 >= b + 0) print a; else print b }'; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qk_bench.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

fmt='%-20s %5s %7s %10s %10s %7s %10s %10s\n'
printf "$fmt" net batch threads qk_img/s ort_img/s ratio qk_rss_MB ort_rss_MB
[ -n "$OUT" ] && printf 'net\tbatch\tthreads\tqk_img_s\tort_img_s\tratio\tqk_rss_kb\tort_rss_kb\n' >"$OUT"
node_base=
status=0
for n in $NETS; do
    model="$CACHE/$n.onnx" data="$CACHE/${n}_input.npy"
    for b in $BATCHES; do
        for t in $THREADS; do
            qk= ort= qk_rss= ort_rss=
            for r in $(seq "$ROUNDS"); do
                if line=$("$QUANTKIT" bench "$model" --data "$data" --batch "$b" --threads "$t" \
                        --iters "$ITERS" 2>"$tmp/err"); then
                    v=$(json images_per_s "$line")
                    if [ "$(best "$qk" "$v")" = "$v" ]; then qk=$v; qk_rss=$(json max_rss_kb "$line"); fi
                else
                    echo "bench: quantkit failed on $n batch $b threads $t: $(head -n 1 "$tmp/err")" >&2
                    status=1
                fi
                if line=$("$NODE" "$top/tools/ort_bench.js" "$model" --data "$data" --batch "$b" \
                        --threads "$t" --iters "$ITERS" --opt "$ORT_OPT" 2>"$tmp/err"); then
                    v=$(json images_per_s "$line")
                    if [ "$(best "$ort" "$v")" = "$v" ]; then ort=$v; ort_rss=$(json max_rss_kb "$line"); fi
                    node_base=$(json base_rss_kb "$line")
                else
                    echo "bench: ONNX Runtime failed on $n batch $b threads $t: $(head -n 1 "$tmp/err")" >&2
                    status=1
                fi
            done
            ratio=$(awk -v a="$qk" -v b="$ort" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }')
            mb() { awk -v k="$1" 'BEGIN { if (k == "" || k < 0) print "-"; else printf "%.0f", k / 1024 }'; }
            printf "$fmt" "$n" "$b" "$t" "${qk:--}" "${ort:--}" "$ratio" "$(mb "$qk_rss")" "$(mb "$ort_rss")"
            [ -n "$OUT" ] && printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$b" "$t" "${qk:--}" "${ort:--}" \
                "$ratio" "${qk_rss:--}" "${ort_rss:--}" >>"$OUT"
        done
    done
done
[ -n "$node_base" ] && echo "(ort_rss_MB includes node itself: $(awk -v k="$node_base" 'BEGIN { printf "%.0f", k / 1024 }') MB before ONNX Runtime loads)"
exit $status
