#!/bin/sh
echo "quantize_ort: not written yet"; exit 1
