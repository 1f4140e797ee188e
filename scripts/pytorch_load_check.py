#!/usr/bin/env python3
"""Load an actlab model into PyTorch, strictly, and compare its outputs.

Checks that actlab's safetensors names and layouts are PyTorch's own: a module loads
the file with strict=True, and in eval mode its probabilities equal
`actlab predict --json` for the same test images.

An MLP with PReLU and a formula activation, into a module with attributes fc1,
act1 = nn.PReLU(), fc2, act2, fc3:

    actlab train --define 'quick_gelu=x * sigmoid(1.702 * x)' \
        --activation prelu,quick_gelu --save m.safetensors
    actlab predict m.safetensors --test-index 0..20 --json > pred.json
    python3 scripts/pytorch_load_check.py m.safetensors pred.json

A conv net or a net with norm layers (e.g. LeNet-5 with batch norm: its running
statistics and num_batches_tracked included) into the module the PyTorch reference
values came from, tests/fixtures/torch-parity-3/reference_net.py, built from the
model's own description:

    actlab train --model lenet5 --norm batch --save lenet-bn.safetensors
    actlab predict lenet-bn.safetensors --test-index 0..200 --json > pred.json
    python3 scripts/pytorch_load_check.py lenet-bn.safetensors pred.json

Needs torch, safetensors and numpy (not needed by actlab or its tests).
"""
import gzip
import json
import pathlib
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file

ROOT = pathlib.Path(__file__).resolve().parent.parent


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


def reference_net(model):
    """tests/fixtures/torch-parity-3/reference_net.py's Net for the model's config, or
    None for a plain MLP (no conv or norm layers)."""
    with safe_open(model, "pt") as f:
        cfg = json.loads(f.metadata()["actlab"]).get("config") or {}
    if not cfg.get("conv") and cfg.get("norm", "none") == "none":
        return None
    sys.path.insert(0, str(ROOT / "tests/fixtures/torch-parity-3"))
    import reference_net

    print(f"reference_net.Net(conv={cfg.get('conv', [])}, pool={cfg.get('pool', 'max')}, "
          f"hidden={cfg['hidden']}, norm={cfg.get('norm', 'none')}, act={cfg['activation']})")
    return reference_net.Net(conv=cfg.get("conv", []), pool=cfg.get("pool", "max"),
                             hidden=cfg["hidden"], norm=cfg.get("norm", "none"),
                             act=cfg["activation"], output=cfg.get("output", "log_softmax"))


def main(model, predictions):
    net = reference_net(model) or Net()
    state = load_file(model)
    print("strict load:", net.load_state_dict(state, strict=True))
    for name in sorted(k for k in state if k.endswith("num_batches_tracked")):
        print(f"  {name} = {state[name].item()} ({state[name].dtype}); "
              f"{name[:-len('num_batches_tracked')]}running_var mean "
              f"{state[name[:-len('num_batches_tracked')] + 'running_var'].mean().item():.4f}")
    net.eval()
    want = json.load(open(predictions))
    images = ROOT / "data/mnist/t10k-images-idx3-ubyte.gz"
    pixels = np.frombuffer(gzip.open(images).read()[16:], np.uint8).reshape(-1, 784)
    rows = [int(w["input"][5:-1]) for w in want]
    x = torch.tensor(pixels[rows].astype(np.float32) / 255)
    with torch.no_grad():
        p = net(x).exp()
    worst = max(abs(p[i, d].item() - q) for i, w in enumerate(want) for d, q in w["top3"])
    if isinstance(net, Net):
        print(f"PReLU slope act1.weight = {net.act1.weight.item():.6f}")
    print(f"{len(rows)} images, largest |probability difference| vs actlab predict: {worst:.2e}")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
