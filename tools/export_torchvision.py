#!/usr/bin/python3
"""Exports full-size torchvision networks for the speed benchmark (bench/).

A development script: its outputs are large (5-50 MB per network) and are
generated on demand into a cache folder (default bench/cache/, git-ignored),
never committed.  For each network NAME it writes

  NAME.onnx        torchvision NAME at 224x224, 1000 classes, random weights
                   from a fixed seed, exported in eval mode (BatchNorm folded
                   into Conv by the exporter), opset 13, input "input"
                   float32 [batch,3,224,224] with a dynamic batch axis,
                   output "logits"
  NAME_input.npy   8 smooth random images, float32 [8,3,224,224]

Random weights are fine for timing, but BatchNorm's running statistics are
re-estimated on smooth inputs (low-pass-filtered noise, train-mode forward
passes) before export, so activations have realistic magnitudes rather than
exploding or vanishing layer by layer -- denormals or all-zero ReLU outputs
would make timings meaningless.

Networks: resnet18 mobilenet_v2 efficientnet_b0 squeezenet1_1
shufflenet_v2_x1_0 (the default set), or those named on the command line.
An existing, newer-than-this-script output is kept unless --force.

Run with Debian's python (python3-torch, python3-torchvision):
  /usr/bin/python3 tools/export_torchvision.py [--out DIR] [--force] [NAME...]
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

NETS = ["resnet18", "mobilenet_v2", "efficientnet_b0", "squeezenet1_1", "shufflenet_v2_x1_0"]
SEED = 20240606
IMAGE = 224
SAMPLES = 8
OPSET = 13


def smooth_images(gen, n):
    """Image-like random inputs: coarse noise upsampled bilinearly (the low
    frequencies of natural images), a little pixel noise as texture, and a
    per-image contrast and brightness, normalized like ImageNet inputs."""
    coarse = torch.randn(n, 3, 14, 14, generator=gen)
    x = F.interpolate(coarse, size=(IMAGE, IMAGE), mode="bilinear", align_corners=False)
    x = x + 0.3 * torch.randn(n, 3, IMAGE, IMAGE, generator=gen)
    scale = 0.5 + torch.rand(n, 1, 1, 1, generator=gen)
    shift = 0.5 * torch.randn(n, 1, 1, 1, generator=gen)
    return (x * scale + shift).float()


def reestimate_bn(model, gen, batches=4, batch=8):
    """Resets every BatchNorm's running statistics and re-estimates them as a
    cumulative average over a few train-mode passes on smooth inputs; gives
    the affine parameters mild random values so folding is non-trivial."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        with torch.no_grad():
            if m.affine:
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=gen))
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(smooth_images(gen, batch))
    model.eval()


def build(name):
    ctor = getattr(torchvision.models, name)
    try:
        return ctor(weights=None, num_classes=1000)
    except TypeError:   # torchvision before the weights= API
        return ctor(pretrained=False, num_classes=1000)


def export_one(name, out, force):
    onnx_path = os.path.join(out, name + ".onnx")
    npy_path = os.path.join(out, name + "_input.npy")
    me = os.path.getmtime(os.path.abspath(__file__))
    if (not force and os.path.exists(onnx_path) and os.path.exists(npy_path)
            and os.path.getmtime(onnx_path) >= me and os.path.getmtime(npy_path) >= me):
        print(f"{name}: up to date ({onnx_path})")
        return
    torch.manual_seed(SEED + NETS.index(name) if name in NETS else SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = build(name)
    reestimate_bn(model, gen)
    x = smooth_images(gen, SAMPLES)
    tmp = onnx_path + ".tmp"
    torch.onnx.export(model, x[:1], tmp, opset_version=OPSET,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True)
    os.replace(tmp, onnx_path)
    np.save(npy_path + ".tmp.npy", np.ascontiguousarray(x.numpy().astype(np.float32)))
    os.replace(npy_path + ".tmp.npy", npy_path)
    with torch.no_grad():
        y = model(x)
    print(f"{name}: {os.path.getsize(onnx_path) / 1e6:.1f} MB, logits std {y.std().item():.3g}, "
          f"{onnx_path}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "bench", "cache"))
    ap.add_argument("--force", action="store_true", help="re-export even if up to date")
    ap.add_argument("nets", nargs="*", help=f"networks (default: {' '.join(NETS)})")
    args = ap.parse_args()
    nets = args.nets or NETS
    for n in nets:
        if not hasattr(torchvision.models, n):
            sys.exit(f"export_torchvision.py: unknown torchvision model '{n}'")
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for n in nets:
        export_one(n, args.out, args.force)


if __name__ == "__main__":
    main()
