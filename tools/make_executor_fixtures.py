#!/usr/bin/python3
"""Writes the executor fixture of tests/data: a small CNN whose nodes take
every convolution path and every fused chain of core/executor.c, with its
input and the outputs PyTorch computes (a development script: the outputs
are committed, so tests need no torch).

  fused_chains.onnx      input "x" float32 [batch,8,6,6] (dynamic batch),
                         outputs "y" [batch,24,2,2] and "z" [batch,16,3,3],
                         opset 13, random weights from a fixed seed
  fused_chains_x.npy     3 samples
  fused_chains_y.npy, fused_chains_z.npy   the outputs for them

Chains (see core/executor.c):
  conv 3x3 (packed-weight engine, im2col; 36 positions per image, so at
  batch 3 kernel tiles span two images) -> Relu
  conv 1x1 (engine, pointwise) -> Add(residual) -> Relu
  depthwise 3x3 stride 1 (direct) -> Clip(0, 6)
  conv 1x1 -> Sigmoid, Mul (SiLU)
  depthwise 5x5 stride 2 -> Add(strided slice computed before it)
  conv 3x3 stride 2 (9 positions: not the engine at batch > 1) -> Add of a
  [1,24,1,1] constant (broadcast: never fused) -> Relu

Run with Debian's python: /usr/bin/python3 tools/make_executor_fixtures.py
"""
import os

import numpy as np
import torch
import torch.nn as nn

SEED = 4242


class Chains(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(8, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 16, 1)
        self.c3 = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.c4 = nn.Conv2d(16, 16, 1)
        self.c5 = nn.Conv2d(16, 16, 5, stride=2, padding=2, groups=16)
        self.c6 = nn.Conv2d(16, 24, 3, stride=2, padding=1)
        self.b = nn.Parameter(0.1 * torch.randn(1, 24, 1, 1))

    def forward(self, x):
        r1 = torch.relu(self.c1(x))
        r2 = torch.relu(self.c2(r1) + r1)
        k3 = torch.clamp(self.c3(r2), 0.0, 6.0)
        c4 = self.c4(k3)
        m4 = c4 * torch.sigmoid(c4)
        s = m4[:, :, ::2, ::2]          # before c5, so it can be c5's residual
        z = self.c5(m4) + s
        y = torch.relu(self.c6(m4) + self.b)
        return y, z


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")
    torch.manual_seed(SEED)
    net = Chains().eval()
    x = torch.randn(3, 8, 6, 6)
    path = os.path.join(out, "fused_chains.onnx")
    torch.onnx.export(net, x, path, opset_version=13, input_names=["x"], output_names=["y", "z"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}, "z": {0: "batch"}},
                      do_constant_folding=True)
    with torch.no_grad():
        y, z = net(x)
    np.save(os.path.join(out, "fused_chains_x.npy"), x.numpy())
    np.save(os.path.join(out, "fused_chains_y.npy"), y.numpy())
    np.save(os.path.join(out, "fused_chains_z.npy"), z.numpy())
    import onnx
    m = onnx.load(path)
    print(path, os.path.getsize(path), "bytes:", " ".join(n.op_type for n in m.graph.node))


if __name__ == "__main__":
    main()
