#!/usr/bin/python3
"""Exports small-but-real networks for quantkit's executor tests (a
development script: tests use only its committed outputs, so they need no
torch).

Writes into tests/data/nets/ (or --out), each with a dynamic batch axis
named "batch", input "input", output "logits", random weights from a fixed
seed, and a batch-2 input file <name>_input.npy:

  resnet_small.onnx   torchvision ResNet, BasicBlock, layers [1,1,1,1], widths
                      16/32/64/128 (instead of 64..512), 100 classes,
                      input float32 [batch,3,64,64], opset 13
  mobilenet_v2.onnx   torchvision mobilenet_v2(width_mult=0.35), 100 classes,
                      input float32 [batch,3,64,64], opset 13
  transformer.onnx    nn.TransformerEncoder (d_model 64, 4 heads, 2 post-norm
                      layers, GELU, batch_first) over a Linear projection of
                      float32 [batch,16,32] features plus a learned position
                      embedding, final LayerNorm, mean over the sequence,
                      Linear head to 10 classes; opset 17 (LayerNormalization)

The CNNs' BatchNorm layers get random affine parameters and running
statistics re-estimated on smooth random images (train-mode forward passes),
so activations stay in a realistic range; they are exported in eval mode,
where torch folds BatchNorm into the preceding Conv as deployed models do.

Run with Debian's python (python3-torch, python3-torchvision, python3-onnx):
  /usr/bin/python3 tools/export_networks.py
"""
import argparse
import os
import random
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock, ResNet

SEED = 1234
IMAGE = 64
SEQ, FEAT = 16, 32

# Ops the transformer may use: those quantkit's executor implements for it.
TRANSFORMER_OPS = set("""MatMul Gemm Add Mul Div Sub Pow Sqrt Erf Softmax Reshape Transpose
Shape Gather Unsqueeze Concat Slice LayerNormalization ReduceMean Constant Cast Where Equal
Expand ConstantOfShape Split Squeeze Identity Range Tanh Relu Sigmoid""".split())


class SmallResNet(ResNet):
    """torchvision's ResNet with the stage widths divided by four.  ResNet's
    constructor hard-codes 64..512 channels, so this sets up the same
    attributes and reuses its _make_layer and forward unchanged."""

    def __init__(self, layers=(1, 1, 1, 1), widths=(16, 32, 64, 128), num_classes=100):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = widths[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, widths[0], layers[0])
        self.layer2 = self._make_layer(BasicBlock, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(BasicBlock, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(BasicBlock, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * BasicBlock.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class TinyTransformer(nn.Module):
    def __init__(self, d_in=FEAT, d_model=64, nhead=4, num_layers=2, seq=SEQ, num_classes=10):
        super().__init__()
        self.proj = nn.Linear(d_in, d_model)
        self.pos = nn.Parameter(torch.randn(1, seq, d_model) * 0.1)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=2 * d_model,
                                           dropout=0.0, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model),
                                             enable_nested_tensor=False)
        self.head = nn.Linear(d_model, num_classes)
        # TransformerEncoder deep-copies one layer, and LayerNorm starts at
        # gamma 1, beta 0: give every layer its own weights (otherwise the
        # exporter shares the identical tensors through Identity nodes).
        for name, p in self.named_parameters():
            with torch.no_grad():
                if name == "pos":
                    continue
                if "norm" in name:
                    p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
                elif p.dim() >= 2:
                    nn.init.xavier_uniform_(p)
                else:
                    p.copy_(0.05 * torch.randn_like(p))

    def forward(self, x):
        h = self.encoder(self.proj(x) + self.pos)
        return self.head(h.mean(dim=1))


def smooth_images(gen, n):
    """Random images with image-like structure: coarse noise upsampled
    bilinearly, pixel noise as texture, a per-image brightness and contrast.
    The texture matters: on very smooth images MobileNet's depthwise
    channels have a mean much larger than their spread, BatchNorm's
    subtraction cancels, and float32 round-off is amplified ~3x more
    (relative error vs float64 1.6e-5 instead of 6e-6), too close to the
    1e-4 the executor tests allow."""
    coarse = torch.randn(n, 3, 8, 8, generator=gen)
    x = F.interpolate(coarse, size=(IMAGE, IMAGE), mode="bilinear", align_corners=False)
    x = x + 0.5 * torch.randn(n, 3, IMAGE, IMAGE, generator=gen)
    scale = 0.5 + torch.rand(n, 1, 1, 1, generator=gen)
    shift = 0.5 * torch.randn(n, 1, 1, 1, generator=gen)
    return (x * scale + shift).float()


def randomize_bn(model, gen):
    """Gives every BatchNorm random affine parameters and re-estimates its
    running statistics, so that folding them into Conv changes the weights
    in a non-trivial way."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=gen))
            m.reset_running_stats()
            m.momentum = None   # cumulative average over the passes below
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(smooth_images(gen, 16))
    model.eval()


def export(model, example, path, opset):
    model.eval()
    torch.onnx.export(model, example, path, opset_version=opset,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True)
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    ops = sorted({n.op_type for n in m.graph.node})
    return ops


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "nets"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)

    nets = []
    torch.manual_seed(SEED + 1)
    resnet = SmallResNet()
    randomize_bn(resnet, gen)
    nets.append(("resnet_small", resnet, smooth_images(gen, 2), 13))

    torch.manual_seed(SEED + 2)
    mobilenet = torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=100)
    randomize_bn(mobilenet, gen)
    nets.append(("mobilenet_v2", mobilenet, smooth_images(gen, 2), 13))

    torch.manual_seed(SEED + 3)
    transformer = TinyTransformer().eval()
    nets.append(("transformer", transformer, torch.randn(2, SEQ, FEAT, generator=gen), 17))

    total = 0
    for name, model, x, opset in nets:
        path = os.path.join(args.out, name + ".onnx")
        ops = export(model, x, path, opset)
        if name == "transformer" and not set(ops) <= TRANSFORMER_OPS:
            sys.exit(f"{name}: exported ops outside the allowed set: "
                     f"{sorted(set(ops) - TRANSFORMER_OPS)}")
        inp = os.path.join(args.out, name + "_input.npy")
        np.save(inp, np.ascontiguousarray(x.numpy().astype(np.float32)))
        with torch.no_grad():
            y = model(x).numpy()
        size = os.path.getsize(path) + os.path.getsize(inp)
        total += size
        print(f"{name}: opset {opset}, input {list(x.shape)}, output {list(y.shape)}, "
              f"{os.path.getsize(path)} bytes, ops: {' '.join(ops)}")
    print(f"total {total} bytes")
    if total > 8 * 1024 * 1024:
        sys.exit("networks exceed 8 MB")


if __name__ == "__main__":
    main()
