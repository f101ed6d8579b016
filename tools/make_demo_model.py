#!/usr/bin/python3
"""Makes quantkit's demo model and its data (a development script: tests use
only its committed outputs, so they need no torch).

Trains a small CNN on scikit-learn's bundled digits (1797 8x8 images, 10
classes) with a fixed seed and writes, into tests/data/ (or --out):

  digits_cnn.onnx      opset 13, input "input" float32 [batch,1,8,8] in [0,1],
                       output "logits" [batch,10]; Conv+BatchNormalization+Relu
                       blocks, a residual Add, MaxPool, a stride-2 Conv,
                       GlobalAveragePool, Flatten, Gemm.  BatchNormalization is
                       kept as its own node (not folded into Conv by the
                       exporter) so quantkit's fusions have work to do.
  digits_calib.npy     float32 [300,1,8,8]: training images for calibration
  digits_test_x.npy    float32 [450,1,8,8]: held-out test images
  digits_test_y.npy    int64   [450]: their labels

Run with Debian's python (python3-torch, python3-sklearn, python3-onnx):
  /usr/bin/python3 tools/make_demo_model.py
"""
import argparse
import os
import random
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SEED = 20240601
N_TEST = 450
N_CALIB = 300


def conv_bn_relu(cin, cout, stride=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """conv-bn-relu, conv-bn, + skip, relu: exported as ... Add, Relu."""

    def __init__(self, ch):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + x)


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn_relu(1, 16)            # 16 x 8 x 8
        self.block = ResidualBlock(16)             # 16 x 8 x 8
        self.pool = nn.MaxPool2d(2)                # 16 x 4 x 4
        self.conv3 = conv_bn_relu(16, 32)          # 32 x 4 x 4
        self.conv4 = conv_bn_relu(32, 32, 2)       # 32 x 2 x 2
        self.gap = nn.AdaptiveAvgPool2d(1)         # GlobalAveragePool
        self.fc = nn.Linear(32, 10)                # Gemm

    def forward(self, x):
        x = self.pool(self.block(self.stem(x)))
        x = self.conv4(self.conv3(x))
        return self.fc(torch.flatten(self.gap(x), 1))


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)   # same float sums on every machine


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data"),
                    help="output folder (default: tests/data)")
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    seed_everything(SEED)

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]   # [N,1,8,8] in [0,1]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=N_TEST, random_state=SEED, stratify=y)
    rng = np.random.default_rng(SEED)
    calib = x_train[rng.choice(len(x_train), N_CALIB, replace=False)]

    model = DigitsCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    xv, yv = torch.from_numpy(x_test), torch.from_numpy(y_test)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            # small random shifts (one pixel) make the model less brittle,
            # which also makes it a fairer quantization benchmark
            xb = xt[idx]
            dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = nn.functional.cross_entropy(model(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        if (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1}: mean loss {total / len(xt):.4f}, "
                  f"test accuracy {accuracy(model, xv, yv):.4f}")

    model.eval()
    acc = accuracy(model, xv, yv)
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "digits_cnn.onnx")
    # PRESERVE with an eval-mode model exports inference BatchNormalization
    # nodes; EVAL would fold them into the Conv weights.  torch warns about
    # constant folding in "training-amenable mode", which an eval-mode
    # model is not.
    warnings.filterwarnings("ignore", message="It is recommended that constant folding")
    torch.onnx.export(
        model, torch.from_numpy(x_test[:2]), onnx_path,
        opset_version=13, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)

    import onnx
    m = onnx.load(onnx_path)
    onnx.checker.check_model(m, full_check=True)
    ops = sorted({n.op_type for n in m.graph.node})
    if "BatchNormalization" not in ops or "Add" not in ops:
        sys.exit(f"export lost BatchNormalization/Add: {ops}")

    np.save(os.path.join(args.out, "digits_calib.npy"), np.ascontiguousarray(calib))
    np.save(os.path.join(args.out, "digits_test_x.npy"), np.ascontiguousarray(x_test))
    np.save(os.path.join(args.out, "digits_test_y.npy"), y_test)
    print(f"ops: {' '.join(ops)}")
    print(f"wrote {onnx_path} ({os.path.getsize(onnx_path)} bytes), calib {calib.shape}, "
          f"test {x_test.shape}")
    print(f"float test accuracy: {acc:.4f} ({int(round(acc * len(y_test)))}/{len(y_test)})")
    if acc < 0.95:
        sys.exit("accuracy below 95%: something is wrong")


if __name__ == "__main__":
    main()
