#!/usr/bin/env bash
# This file implements the set-up of a fresh Debian machine for quantkit:
# build dependencies from Debian's archive, test data, and ONNX Runtime for
# Node (the reference the tests compare against).  Safe to run repeatedly.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

pkgs=(build-essential autoconf automake libtool libltdl-dev pkg-config
      protobuf-c-compiler libprotobuf-c-dev libonnx-dev libyaml-dev check
      libonnx-testdata python3-onnx python3-numpy)
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# ONNX Runtime's CPU library ships inside the npm package; its install script
# only fetches GPU extras, hence --ignore-scripts.
if [ ! -d "$here/node_modules/onnxruntime-node" ]; then
    echo "setup: installing onnxruntime-node into tools/node_modules"
    (cd "$here" && npm install --ignore-scripts --no-audit --no-fund --silent >/dev/null)
fi
echo "setup: done"
