#!/usr/bin/env bash
# This file implements the out-of-tree SDK test: install quantkit into a
# temporary root, build sdk/examples with nothing but pkg-config against
# that install, and have the installed quantkit find the example by name
# (plugins listing, a plan whose YAML selects it, and a whole `quantize`
# calibrated by it whose model still classifies the digits).
set -u
: "${QK_BUILDDIR:?}" "${QK_SRCDIR:?}" "${QK_BINDIR:?}" "${QK_LIBDIR:?}" "${QK_PKGLIBDIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() {   # NAME CONDITION-RESULT DETAIL
    if [ "$2" = 0 ]; then pass=$((pass + 1)); echo "ok   $1"; else fail=$((fail + 1)); echo "FAIL $1: $3"; fi
}

make -C "$QK_BUILDDIR" install DESTDIR="$tmp/root" >"$tmp/install.log" 2>&1
check install $? "$(tail -5 "$tmp/install.log")"

# pkg-config alone locates the SDK; the sysroot variable relocates the
# DESTDIR'd install the way a packaging root would.
export PKG_CONFIG_PATH="$tmp/root$QK_LIBDIR/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$tmp/root"
cp -r "$QK_SRCDIR/sdk/examples" "$tmp/example"
make -C "$tmp/example" >"$tmp/build.log" 2>&1
check build-example $? "$(tail -5 "$tmp/build.log")"

qk="$tmp/root$QK_BINDIR/quantkit"
export QUANTKIT_PLUGIN_PATH="$tmp/root$QK_PKGLIBDIR/plugins"
"$qk" plugins --plugin-path "$tmp/example" >"$tmp/plugins.txt" 2>&1
grep -q "example_ema" "$tmp/plugins.txt"; check listed $? "$(cat "$tmp/plugins.txt")"
grep -q "backend *onnx-qdq" "$tmp/plugins.txt"; check installed-builtins $? "$(cat "$tmp/plugins.txt")"

cat >"$tmp/cfg.yaml" <<YAML
version: 1
plugin_path: [example]
quantize:
  activation: {observer: example_ema, observer_args: {decay: 0.8}}
YAML
( cd "$tmp" && "$qk" plan "$QK_SRCDIR/tests/data/digits_cnn.onnx" -c cfg.yaml ) >"$tmp/plan.txt" 2>&1 &&
    grep -q "activation .*example_ema / -" "$tmp/plan.txt"
check selected-by-name $? "$(tail -3 "$tmp/plan.txt")"

# The third-party observer calibrates a real quantization, chosen by name.
d="$QK_SRCDIR/tests/data"
( cd "$tmp" && "$qk" quantize "$d/digits_cnn.onnx" -c cfg.yaml --calib "$d/digits_calib.npy" -o q.onnx \
      --report q.json -q ) >"$tmp/quantize.txt" 2>&1 &&
    grep -q '"observer":"example_ema"' "$tmp/q.json" &&
    "$qk" eval "$tmp/q.onnx" --data "$d/digits_test_x.npy" --labels "$d/digits_test_y.npy" >"$tmp/eval.txt" 2>&1 &&
    awk -F'"top1":' '{ split($2, a, ","); exit !(a[1] + 0 >= 0.97) }' "$tmp/eval.txt"
check quantize-with-example-observer $? "$(cat "$tmp/quantize.txt" "$tmp/eval.txt" 2>/dev/null | tail -3)"

sed 's/example_ema/example_emma/' "$tmp/cfg.yaml" >"$tmp/typo.yaml"
( cd "$tmp" && "$qk" plan "$QK_SRCDIR/tests/data/digits_cnn.onnx" -c typo.yaml ) >"$tmp/typo.txt" 2>&1
[ $? -ne 0 ] && grep -q "example_ema" "$tmp/typo.txt"; check unknown-name-lists-found $? "$(cat "$tmp/typo.txt")"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
