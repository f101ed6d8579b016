#!/bin/sh
echo "quantize_cli: not written yet"; exit 1
