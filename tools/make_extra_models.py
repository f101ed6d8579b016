#!/usr/bin/python3
"""Makes two more small real networks for quantkit's accuracy measurements (a
development script: tests and bench/quantize_table.sh use only its committed
outputs, so they need no torch).

Trains, with fixed seeds on the CPU, and writes into tests/data/ (or --out):

  digits_mbv2.onnx     a MobileNetV2-style CNN on scikit-learn's digits, the
                       same data as tools/make_demo_model.py (same scaling to
                       [0,1], same train/test split, same calibration subset),
                       so it reuses digits_calib.npy, digits_test_x.npy and
                       digits_test_y.npy; the script checks that the split it
                       recomputes equals those committed files.  opset 13,
                       input "input" float32 [batch,1,8,8], output "logits"
                       [batch,10].  Stem Conv+BatchNormalization+Clip(0,6)
                       (ReLU6), three inverted residual blocks (1x1 expand
                       Conv+BN+ReLU6, 3x3 depthwise Conv+BN+ReLU6, 1x1
                       project Conv+BN, residual Add where the shapes match:
                       blocks 1 and 3; block 2 has stride 2), then
                       GlobalAveragePool, Flatten, Gemm.  BatchNormalization
                       stays its own node, as in digits_cnn.onnx.
  cancer_mlp.onnx      an MLP on scikit-learn's breast_cancer (569 samples, 30
                       features, 2 classes): Gemm+Relu, Gemm+Relu, Gemm+Relu,
                       Gemm.  opset 13, input "input" float32 [batch,30]
                       (features standardized with the training set's mean
                       and standard deviation; the files below are already
                       standardized), output "logits" [batch,2].
  cancer_calib.npy     float32 [200,30]: training samples for calibration
  cancer_test_x.npy    float32 [171,30]: held-out test samples
  cancer_test_y.npy    int64   [171]: their labels (0 malignant, 1 benign)

Run with Debian's python (python3-torch, python3-sklearn, python3-onnx):
  /usr/bin/python3 tools/make_extra_models.py
"""
import argparse
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The digits split, its seed and sizes are make_demo_model.py's own.
from make_demo_model import N_CALIB, N_TEST, SEED, accuracy, seed_everything  # noqa: E402

CANCER_SEED = 20240602
CANCER_TEST = 171      # 30% of 569
CANCER_CALIB = 200


# ---------------------------------------------------------------- digits_mbv2

def conv_bn_relu6(cin, cout, k=3, stride=1, groups=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """MobileNetV2's block: expand (1x1), depthwise (3x3), linear project
    (1x1, no activation), plus the input when the shapes match."""

    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.expand = conv_bn_relu6(cin, hidden, 1)
        self.dw = conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden)
        self.project = nn.Sequential(
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.use_res else y


class DigitsMBV2(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn_relu6(1, 16)                     # 16 x 8 x 8
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, 1, 4),                  # 16 x 8 x 8, + skip
            InvertedResidual(16, 24, 2, 4),                  # 24 x 4 x 4
            InvertedResidual(24, 24, 1, 4),                  # 24 x 4 x 4, + skip
        )
        self.gap = nn.AdaptiveAvgPool2d(1)                   # GlobalAveragePool
        self.fc = nn.Linear(24, 10)                          # Gemm

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(self.gap(x), 1))


def digits_data(out):
    """make_demo_model.py's split, recomputed; exits when it differs from the
    committed digits_*.npy (a different sklearn would split differently, and
    the model must be measured on the files the tests use)."""
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=N_TEST, random_state=SEED, stratify=y)
    rng = np.random.default_rng(SEED)
    calib = x_train[rng.choice(len(x_train), N_CALIB, replace=False)]
    for name, mine in (("digits_calib.npy", calib), ("digits_test_x.npy", x_test),
                       ("digits_test_y.npy", y_test)):
        path = os.path.join(out, name)
        if not os.path.exists(path):
            sys.exit(f"{path} missing: run tools/make_demo_model.py first")
        theirs = np.load(path)
        if theirs.dtype != mine.dtype or not np.array_equal(theirs, mine):
            sys.exit(f"{path} differs from the recomputed split (another sklearn?)")
    return x_train, y_train, x_test, y_test


def train_digits_mbv2(out, epochs):
    seed_everything(SEED)
    x_train, y_train, x_test, y_test = digits_data(out)
    model = DigitsMBV2()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    xv, yv = torch.from_numpy(x_test), torch.from_numpy(y_test)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            xb = xt[idx]
            # one-pixel random shifts, as for digits_cnn
            dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = nn.functional.cross_entropy(model(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        if (epoch + 1) % 10 == 0:
            print(f"digits_mbv2 epoch {epoch + 1}: mean loss {total / len(xt):.4f}, "
                  f"test accuracy {accuracy(model, xv, yv):.4f}")
    model.eval()
    return model, accuracy(model, xv, yv), x_test[:2], len(y_test)


# ----------------------------------------------------------------- cancer_mlp

class CancerMLP(nn.Module):
    def __init__(self, nin=30, hidden=(64, 32, 16), nout=2):
        super().__init__()
        layers, c = [], nin
        for h in hidden:
            layers += [nn.Linear(c, h), nn.ReLU(inplace=True)]
            c = h
        layers.append(nn.Linear(c, nout))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def cancer_data():
    data = load_breast_cancer()
    x = data.data.astype(np.float64)
    y = data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=CANCER_TEST, random_state=CANCER_SEED, stratify=y)
    # standardize with the training statistics only
    mean, std = x_train.mean(0), x_train.std(0)
    x_train = ((x_train - mean) / std).astype(np.float32)
    x_test = ((x_test - mean) / std).astype(np.float32)
    rng = np.random.default_rng(CANCER_SEED)
    calib = x_train[rng.choice(len(x_train), CANCER_CALIB, replace=False)]
    return x_train, y_train, x_test, y_test, calib


def train_cancer_mlp(epochs):
    seed_everything(CANCER_SEED)
    x_train, y_train, x_test, y_test, calib = cancer_data()
    model = CancerMLP()
    # a short, gentle schedule: longer training drives the training loss to
    # ~1e-4 with huge logits and no better test accuracy
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    xv, yv = torch.from_numpy(x_test), torch.from_numpy(y_test)
    gen = torch.Generator().manual_seed(CANCER_SEED)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), 32):
            idx = perm[i:i + 32]
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        if (epoch + 1) % 10 == 0:
            print(f"cancer_mlp epoch {epoch + 1}: mean loss {total / len(xt):.4f}, "
                  f"test accuracy {accuracy(model, xv, yv):.4f}")
    model.eval()
    return model, accuracy(model, xv, yv), calib, x_test, y_test


# --------------------------------------------------------------------- export

def export(model, example, path, need_ops):
    # PRESERVE with an eval-mode model keeps BatchNormalization nodes (see
    # make_demo_model.py); the MLP has none, the same call serves both.
    warnings.filterwarnings("ignore", message="It is recommended that constant folding")
    torch.onnx.export(
        model, torch.from_numpy(example), path,
        opset_version=13, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    ops = sorted({n.op_type for n in m.graph.node})
    missing = set(need_ops) - set(ops)
    if missing:
        sys.exit(f"{path}: export lost {' '.join(sorted(missing))}: {ops}")
    print(f"wrote {path} ({os.path.getsize(path)} bytes), ops: {' '.join(ops)}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data"),
                    help="output folder (default: tests/data)")
    ap.add_argument("--mbv2-epochs", type=int, default=60)
    ap.add_argument("--mlp-epochs", type=int, default=30)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    failed = []

    model, acc, example, n = train_digits_mbv2(args.out, args.mbv2_epochs)
    export(model, example, os.path.join(args.out, "digits_mbv2.onnx"),
           ["BatchNormalization", "Clip", "Add", "GlobalAveragePool", "Gemm"])
    print(f"digits_mbv2 float test accuracy: {acc:.4f} ({int(round(acc * n))}/{n})")
    if acc < 0.95:
        failed.append("digits_mbv2 below 95%")

    model, acc, calib, x_test, y_test = train_cancer_mlp(args.mlp_epochs)
    export(model, x_test[:2], os.path.join(args.out, "cancer_mlp.onnx"), ["Gemm", "Relu"])
    np.save(os.path.join(args.out, "cancer_calib.npy"), np.ascontiguousarray(calib))
    np.save(os.path.join(args.out, "cancer_test_x.npy"), np.ascontiguousarray(x_test))
    np.save(os.path.join(args.out, "cancer_test_y.npy"), y_test)
    n = len(y_test)
    print(f"cancer_mlp calib {calib.shape}, test {x_test.shape}")
    print(f"cancer_mlp float test accuracy: {acc:.4f} ({int(round(acc * n))}/{n})")
    if acc < 0.93:
        failed.append("cancer_mlp below 93%")

    if failed:
        sys.exit("; ".join(failed) + ": something is wrong")


if __name__ == "__main__":
    main()
