"""A trained actlab model as a ``torch.nn.Module`` (``Model.to_torch()``).

The module mirrors actlab's layer order: each conv layer, then its norm, its activation
and the 2x2 pool; the flattened (C, H, W) features; each hidden linear layer, its norm
and activation; the last linear layer and the output function. Its state dict has the
names and shapes of ``Model.state_dict()``, so ``load_state_dict(..., strict=True)``
checks that every tensor is used. Inputs are floats as actlab reads them: uint8
pixels divided by 255, float features as they are.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _builtin(spec: str):
    """A built-in activation NAME[:p1[:p2]] as a function of (x, prelu weight)."""
    name, *ps = spec.split(":")
    p = [float(v) for v in ps]
    table = {
        "relu": lambda x, a: F.relu(x), "sigmoid": lambda x, a: torch.sigmoid(x),
        "tanh": lambda x, a: torch.tanh(x), "identity": lambda x, a: x,
        "leaky_relu": lambda x, a: F.leaky_relu(x, p[0] if p else 0.01),
        "elu": lambda x, a: F.elu(x, p[0] if p else 1.0), "selu": lambda x, a: F.selu(x),
        "celu": lambda x, a: F.celu(x, p[0] if p else 1.0),
        "softplus": lambda x, a: F.softplus(x, beta=p[0] if p else 1.0, threshold=p[1] if len(p) > 1 else 20.0),
        "hardshrink": lambda x, a: F.hardshrink(x, p[0] if p else 0.5),
        "softshrink": lambda x, a: F.softshrink(x, p[0] if p else 0.5),
        "hardtanh": lambda x, a: F.hardtanh(x, p[0] if p else -1.0, p[1] if len(p) > 1 else 1.0),
        "hardsigmoid": lambda x, a: F.hardsigmoid(x), "hardswish": lambda x, a: F.hardswish(x),
        "logsigmoid": lambda x, a: F.logsigmoid(x), "relu6": lambda x, a: F.relu6(x),
        "softsign": lambda x, a: F.softsign(x), "tanhshrink": lambda x, a: F.tanhshrink(x),
        "silu": lambda x, a: F.silu(x), "gelu": lambda x, a: F.gelu(x),
        "gelu_tanh": lambda x, a: F.gelu(x, approximate="tanh"), "mish": lambda x, a: F.mish(x),
        "prelu": lambda x, a: F.prelu(x, a),
    }
    if name not in table:
        raise NotImplementedError(f"to_torch(): no PyTorch counterpart written for activation '{spec}'")
    return table[name]


def _tensor(v):
    return v if torch.is_tensor(v) else torch.tensor(float(v))


# The functions a formula may call (see `actlab activations --help`), in torch.
_FORMULA_NAMES = {
    "exp": torch.exp, "log": torch.log, "log1p": torch.log1p, "expm1": torch.expm1,
    "sqrt": torch.sqrt, "abs": torch.abs, "sin": torch.sin, "cos": torch.cos,
    "tanh": torch.tanh, "sinh": torch.sinh, "cosh": torch.cosh, "sigmoid": torch.sigmoid,
    "softplus": F.softplus, "erf": torch.erf,
    "min": lambda a, b: torch.minimum(_tensor(a), _tensor(b)),
    "max": lambda a, b: torch.maximum(_tensor(a), _tensor(b)),
    "where": lambda c, a, b: torch.where(c, _tensor(a), _tensor(b)),
    "pi": math.pi, "e": math.e,
}


def _formula(text: str):
    """A formula of x as a torch function: its grammar is Python's with ^ for **
    (both right-associative, and -x^2 is -(x^2) in both)."""
    code = compile(text.replace("^", "**"), "<formula>", "eval")
    return lambda x, a: eval(code, {"__builtins__": {}}, dict(_FORMULA_NAMES, x=x))  # noqa: S307


class Act(nn.Module):
    """One hidden layer's activation; a PReLU keeps its learned slope as ``weight``."""

    def __init__(self, spec: str):
        super().__init__()
        self.spec = spec
        if "=" in spec:
            self.f = _formula(spec.split("=", 1)[1])
            return
        if spec.split(":")[0] == "prelu":
            self.weight = nn.Parameter(torch.full((1,), 0.25))
        self.f = _builtin(spec)

    def forward(self, x):
        return self.f(x, getattr(self, "weight", None))

    def extra_repr(self) -> str:
        return self.spec


_OUTPUT = {
    "log_softmax": lambda z: F.log_softmax(z, dim=1), "softmax": lambda z: F.softmax(z, dim=1),
    "sigmoid": torch.sigmoid, "identity": lambda z: z,
}


class ActlabNet(nn.Module):
    """actlab's network: conv layers (each: conv, norm, activation, pool), then hidden
    linear layers (each: linear, norm, activation), then the output layer."""

    def __init__(self, conv, pool, hidden, norm, acts, output, image, width, classes):
        super().__init__()
        self.conv, self.pool, self.hidden, self.norm = list(conv), pool, list(hidden), norm
        self.output, self.image = output, image
        acts = list(acts) * (len(self.conv) + len(self.hidden)) if len(acts) == 1 else list(acts)
        ch, (h, w), n = 1, image, 0
        for k, c in enumerate(self.conv, 1):
            setattr(self, f"conv{k}", nn.Conv2d(ch, c["c_out"], c["kernel"], stride=c.get("stride", 1),
                                                padding=c.get("pad", 0), bias=norm != "batch"))
            n += 1
            self._add(n, c["c_out"], True, acts[n - 1])
            h = (h + 2 * c.get("pad", 0) - c["kernel"]) // c.get("stride", 1) + 1
            w = (w + 2 * c.get("pad", 0) - c["kernel"]) // c.get("stride", 1) + 1
            if pool != "none":
                h, w = h // 2, w // 2
            ch = c["c_out"]
        features = ch * h * w if self.conv else width
        for j, units in enumerate(self.hidden, 1):
            setattr(self, f"fc{j}", nn.Linear(features, units, bias=norm != "batch"))
            n += 1
            self._add(n, units, False, acts[n - 1])
            features = units
        setattr(self, f"fc{len(self.hidden) + 1}", nn.Linear(features, classes))

    def _add(self, i, width, conv, act):
        if self.norm == "batch":
            setattr(self, f"norm{i}", nn.BatchNorm2d(width) if conv else nn.BatchNorm1d(width))
        elif self.norm == "layer":
            setattr(self, f"norm{i}", nn.GroupNorm(1, width) if conv else nn.LayerNorm(width))
        setattr(self, f"act{i}", Act(act))

    def _hidden(self, h, i):
        if self.norm != "none":
            h = getattr(self, f"norm{i}")(h)
        return getattr(self, f"act{i}")(h)

    def forward(self, x):
        h, n = x, 0
        if self.conv:
            h = h.reshape(h.shape[0], 1, *self.image)
        else:
            h = h.flatten(1)
        for k in range(1, len(self.conv) + 1):
            n += 1
            h = self._hidden(getattr(self, f"conv{k}")(h), n)
            if self.pool == "max":
                h = F.max_pool2d(h, 2)
            elif self.pool == "avg":
                h = F.avg_pool2d(h, 2)
        h = h.flatten(1)
        for j in range(1, len(self.hidden) + 1):
            n += 1
            h = self._hidden(getattr(self, f"fc{j}")(h), n)
        return _OUTPUT[self.output](getattr(self, f"fc{len(self.hidden) + 1}")(h))


def _conv_specs(conv) -> list:
    """The config's conv layers as dicts (c_out, kernel, stride, pad)."""
    out = []
    for c in conv or []:
        if isinstance(c, str):
            parts = [int(v) for v in c.split(":")]
            c = dict(zip(["c_out", "kernel", "stride", "pad"], parts))
        out.append(c)
    return out


def to_torch(meta: dict, state: dict) -> nn.Module:
    """The module of a model's metadata (model.json) with its parameters loaded."""
    cfg = meta.get("config") or {}
    sizes = meta["sizes"]
    shape = meta.get("shape") or cfg.get("data_shape") or {}
    image = tuple(shape.get("image") or (28, 28))
    conv = _conv_specs(cfg.get("conv"))
    hidden = cfg.get("hidden", sizes[1:-1]) if conv else sizes[1:-1]
    net = ActlabNet(conv, cfg.get("pool", "max"), hidden, cfg.get("norm", "none"),
                    [str(a) for a in meta["activations"]], str(meta["output"]), image, sizes[0], sizes[-1])
    net.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=True)
    return net.eval()
