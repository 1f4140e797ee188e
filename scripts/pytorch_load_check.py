#!/usr/bin/env python3
"""Load an actlab model with PReLU and a formula activation into PyTorch, strictly.

Checks that actlab's safetensors names and layouts are PyTorch's own: a module with
attributes fc1, act1 = nn.PReLU(), fc2, act2, fc3 loads the file with strict=True, and
its probabilities equal `actlab predict --json` for the same test images.

    actlab train --define 'quick_gelu=x * sigmoid(1.702 * x)' \
        --activation prelu,quick_gelu --save m.safetensors
    actlab predict m.safetensors --test-index 0..20 --json > pred.json
    python3 scripts/pytorch_load_check.py m.safetensors pred.json

Needs torch, safetensors and numpy (not needed by actlab or its tests).
"""
import gzip
import json
import pathlib
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file


class QuickGelu(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act1 = nn.Linear(784, 128), nn.PReLU()
        self.fc2, self.act2 = nn.Linear(128, 64), QuickGelu()
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        h = self.act2(self.fc2(self.act1(self.fc1(x))))
        return torch.log_softmax(self.fc3(h), 1)


def main(model, predictions):
    net = Net()
    print("strict load:", net.load_state_dict(load_file(model), strict=True))
    want = json.load(open(predictions))
    images = pathlib.Path(__file__).resolve().parent.parent / "data/mnist/t10k-images-idx3-ubyte.gz"
    pixels = np.frombuffer(gzip.open(images).read()[16:], np.uint8).reshape(-1, 784)
    rows = [int(w["input"][5:-1]) for w in want]
    x = torch.tensor(pixels[rows].astype(np.float32) / 255)
    with torch.no_grad():
        p = net(x).exp()
    worst = max(abs(p[i, d].item() - q) for i, w in enumerate(want) for d, q in w["top3"])
    print(f"PReLU slope act1.weight = {net.act1.weight.item():.6f}")
    print(f"{len(rows)} images, largest |probability difference| vs actlab predict: {worst:.2e}")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
