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
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
from torch import nn


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


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return torch.log_softmax(self.fc3(x), dim=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--actlab-json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    xs = torch.tensor(idx(find(a.data_dir, "train-images-idx3-ubyte")).reshape(-1, 784), dtype=torch.float32) / 255
    ys = torch.tensor(idx(find(a.data_dir, "train-labels-idx1-ubyte")), dtype=torch.long)
    xt = torch.tensor(idx(find(a.data_dir, "t10k-images-idx3-ubyte")).reshape(-1, 784), dtype=torch.float32) / 255
    yt = torch.tensor(idx(find(a.data_dir, "t10k-labels-idx1-ubyte")), dtype=torch.long)
    model = Net()
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
    with torch.no_grad():
        t = time.perf_counter()
        acc = (model(xt).argmax(1) == yt).float().mean().item()
        model(xs)
        eval_s = time.perf_counter() - t
    best = min(times)
    print(f"pytorch {torch.__version__}: {best:.3f} s/epoch (best of {a.epochs}), "
          f"eval of 70000 images {eval_s:.3f}s, val acc {acc * 100:.2f}%, {a.threads} thread(s)")
    if a.actlab_json:
        with open(a.actlab_json) as f:
            ours = json.load(f)
        relu = next(r for r in ours["activations"] if r["activation"] == "relu")
        if ours.get("threads", 1) != a.threads:
            print(f"warning: {a.actlab_json} was measured with {ours.get('threads')} thread(s), "
                  f"PyTorch here with {a.threads}: run `actlab bench --threads {a.threads} --json ...`")
        print(f"actlab ({ours.get('threads', 1)} thread(s)): {relu['epoch_seconds']:.3f} s/epoch, "
              f"eval {ours['eval_seconds']:.3f}s")
        print(f"ratio (pytorch / actlab): training {best / relu['epoch_seconds']:.2f}x, "
              f"evaluation {eval_s / ours['eval_seconds']:.2f}x")


if __name__ == "__main__":
    main()
