#!/usr/bin/env python3
"""The same work as `actlab bench` in PyTorch, for a ratio measured on the same machine.

PyTorch is optional and never required by actlab: run this only where torch is
installed. It trains the default model (784-128-64-10, ReLU, LogSoftmax + NLLLoss,
Adam lr 1e-3, batch 64, pixels / 255) on MNIST held in memory as tensors (no
DataLoader), with one thread, and times each epoch and the evaluation of all 70,000
images. With --actlab-json (the file `actlab bench --json` writes) it prints the ratio.

    python3 scripts/pytorch_bench.py --data-dir data/mnist --epochs 3 \
        --actlab-json bench.json

With --threads 2 it times PyTorch on two threads; compare it with
`actlab bench --threads 2 --json bench2.json`.

With --model lenet5 it trains LeNet-5 as `actlab bench --model lenet5` does
(conv1 6x5x5 padding 2, ReLU, 2x2 max pool, conv2 16x5x5, ReLU, pool, flatten,
fc 400-120-84-10); --pool avg, --norm batch (BatchNorm2d/1d after each hidden conv
or linear layer, which then has no bias) and --norm layer (GroupNorm(1, C) /
LayerNorm) as in actlab.

    python3 scripts/pytorch_bench.py --data-dir data/mnist --model lenet5 \
        --actlab-json bench-lenet5.json

With --isa avx2 PyTorch runs as on a CPU without AVX-512, for a comparison with
`ACTLAB_SIMD=avx2 actlab bench`: ATEN_CPU_CAPABILITY=avx2 alone lowers PyTorch's own
kernels but not oneDNN's convolutions, so it also sets ONEDNN_MAX_CPU_ISA=AVX2 and
MKL_ENABLE_INSTRUCTIONS=AVX2 (before torch is imported, when they take effect).
"""
import argparse
import gzip
import json
import os
import sys
import time

# What an AVX2-only CPU would give each of PyTorch's kernel libraries.
ISA_ENV = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
}


def isa_from_argv(argv):
    """The --isa value in argv (read before torch is imported), or "native"."""
    for i, arg in enumerate(argv):
        if arg == "--isa" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--isa="):
            return arg.split("=", 1)[1]
    return "native"


os.environ.update(ISA_ENV.get(isa_from_argv(sys.argv[1:]), {}))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


def idx(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(d, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    raise SystemExit(f"{d}: missing {stem}(.gz)")


def norm_layer(kind, c, conv):
    """The norm after a hidden layer of c channels/units, as actlab's --norm."""
    if kind == "batch":
        return nn.BatchNorm2d(c) if conv else nn.BatchNorm1d(c)
    if kind == "layer":
        return nn.GroupNorm(1, c) if conv else nn.LayerNorm(c)
    return nn.Identity()


class Net(nn.Module):
    """actlab's layers: conv (spec C:K:S:P) + norm + ReLU + pool each, then linear +
    norm + ReLU for each hidden width, then the output layer and LogSoftmax."""

    def __init__(self, conv=(), pool="max", norm="none", hidden=(128, 64)):
        super().__init__()
        layers, c, side = [], 1, 28
        for (out, k, s, p) in conv:
            layers += [nn.Conv2d(c, out, k, s, p, bias=norm != "batch"),
                       norm_layer(norm, out, True), nn.ReLU()]
            c, side = out, (side + 2 * p - k) // s + 1
            if pool != "none":
                layers.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
                side //= 2
        layers.append(nn.Flatten(1))
        width = c * side * side
        for h in hidden:
            layers += [nn.Linear(width, h, bias=norm != "batch"), norm_layer(norm, h, False),
                       nn.ReLU()]
            width = h
        layers += [nn.Linear(width, 10), nn.LogSoftmax(dim=1)]
        self.body = nn.Sequential(*layers)
        self.image = bool(conv)

    def forward(self, x):
        if self.image:
            x = x.view(-1, 1, 28, 28)
        return self.body(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--actlab-json")
    ap.add_argument("--model", choices=["mlp", "lenet5"], default="mlp")
    ap.add_argument("--pool", choices=["max", "avg", "none"], default="max")
    ap.add_argument("--norm", choices=["none", "batch", "layer"], default="none")
    ap.add_argument("--isa", choices=["native", "avx2"], default="native",
                    help="avx2: run as on a CPU without AVX-512 (sets ATEN_CPU_CAPABILITY, "
                    "ONEDNN_MAX_CPU_ISA and MKL_ENABLE_INSTRUCTIONS)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    xs = torch.tensor(idx(find(a.data_dir, "train-images-idx3-ubyte")).reshape(-1, 784), dtype=torch.float32) / 255
    ys = torch.tensor(idx(find(a.data_dir, "train-labels-idx1-ubyte")), dtype=torch.long)
    xt = torch.tensor(idx(find(a.data_dir, "t10k-images-idx3-ubyte")).reshape(-1, 784), dtype=torch.float32) / 255
    yt = torch.tensor(idx(find(a.data_dir, "t10k-labels-idx1-ubyte")), dtype=torch.long)
    if a.model == "lenet5":
        model = Net(conv=[(6, 5, 1, 2), (16, 5, 1, 0)], pool=a.pool, norm=a.norm,
                    hidden=(120, 84))
    else:
        model = Net(norm=a.norm)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.NLLLoss()
    times = []
    for _ in range(a.epochs):
        perm = torch.randperm(len(xs))
        t = time.perf_counter()
        for i in range(0, len(xs), 64):
            idx_b = perm[i:i + 64]
            opt.zero_grad()
            loss = loss_fn(model(xs[idx_b]), ys[idx_b])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t)
    model.eval()
    with torch.no_grad():
        t = time.perf_counter()
        # In blocks of 1000 images (actlab takes 256 at a time): LeNet-5's activations for all
        # 60,000 images at once would take gigabytes.
        def run(x):
            return torch.cat([model(x[i:i + 1000]) for i in range(0, len(x), 1000)])
        acc = (run(xt).argmax(1) == yt).float().mean().item()
        run(xs)
        eval_s = time.perf_counter() - t
    best = min(times)
    print(f"pytorch {torch.__version__}, {a.model} (pool {a.pool}, norm {a.norm}, isa {a.isa}): {best:.3f} s/epoch (best of {a.epochs}), "
          f"eval of 70000 images {eval_s:.3f}s, val acc {acc * 100:.2f}%, {a.threads} thread(s)")
    if a.actlab_json:
        with open(a.actlab_json) as f:
            ours = json.load(f)
        relu = next(r for r in ours["activations"] if r["activation"] == "relu")
        print(f"actlab model: {ours.get('model', 'hidden 128,64')}")
        if ours.get("threads", 1) != a.threads:
            print(f"warning: {a.actlab_json} was measured with {ours.get('threads')} thread(s), "
                  f"PyTorch here with {a.threads}: run `actlab bench --threads {a.threads} --json ...`")
        print(f"actlab ({ours.get('threads', 1)} thread(s)): {relu['epoch_seconds']:.3f} s/epoch, "
              f"eval {ours['eval_seconds']:.3f}s")
        print(f"ratio (pytorch / actlab): training {best / relu['epoch_seconds']:.2f}x, "
              f"evaluation {eval_s / ours['eval_seconds']:.2f}x")


if __name__ == "__main__":
    main()
