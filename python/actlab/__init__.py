"""actlab from Python: the same engine, defaults and records as the ``actlab`` CLI.

    import actlab
    run = actlab.train("mnist", activation="gelu", epochs=3)
    run.history                     # pandas DataFrame, one row per epoch
    run.model.predict(x_test)       # class labels
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from . import _actlab

__all__ = ["train", "load", "activation_values", "Run", "Model", "ActlabError"]


class ActlabError(Exception):
    """Base class of actlab's own errors (bad input raises ValueError/TypeError/OSError)."""




def _config(activation, hidden, epochs, seed, options: dict) -> str:
    acts = [activation] if isinstance(activation, str) else list(activation)
    cfg = {"activation": acts, "hidden": list(hidden), "epochs": int(epochs), "seed": int(seed)}
    for key, value in options.items():
        if isinstance(value, np.generic):
            value = value.item()
        cfg[key] = value
    return json.dumps(cfg)


class Model:
    """A trained network: ``predict``, ``predict_proba``, ``state_dict``, ``save``."""

    def __init__(self, native):
        self._native = native
        self.meta = json.loads(native.meta_json())

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities, shape (N, K), of rows ``x`` (uint8 images or float features)."""
        return self._native.predict_proba(np.asarray(x))

    def predict(self, x) -> np.ndarray:
        """The most probable class of each row of ``x``."""
        return self.predict_proba(x).argmax(axis=1)

    def state_dict(self) -> dict:
        """Parameters as numpy arrays with PyTorch's names and shapes (fc1.weight, ...)."""
        return {name: values.reshape(shape) for name, shape, values in self._native.state_items()}

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Save as safetensors with model.json beside it (what ``actlab eval`` reads)."""
        self._native.save(os.fspath(path))

    def to_torch(self):
        """A ``torch.nn.Module`` with the same weights (needs torch installed)."""
        try:
            import torch
        except ImportError as e:  # pragma: no cover - torch is optional
            raise ImportError("to_torch() needs PyTorch: pip install torch") from e
        raise NotImplementedError("to_torch() is not written yet; use state_dict() with your own nn.Module")

    def __repr__(self) -> str:
        return f"Model(sizes={self.meta['sizes']}, activations={self.meta['activations']})"


@dataclass
class Run:
    """One training run: ``history`` (DataFrame), ``record`` (dict), ``model``."""

    record: dict
    model: Model
    history: Any = field(init=False)

    def __post_init__(self):
        import pandas as pd

        rows = []
        for e in self.record.get("history", []):
            row = {"epoch": e["epoch"], "train_loss": e["train"]["loss"], "train_acc": e["train"]["acc"]}
            if e.get("val") is not None:
                row["val_loss"], row["val_acc"] = e["val"]["loss"], e["val"]["acc"]
            row["test_loss"], row["test_acc"] = e["test"]["loss"], e["test"]["acc"]
            row["seconds"] = e.get("seconds")
            rows.append(row)
        self.history = pd.DataFrame(rows)


def train(
    data: Union[str, os.PathLike, tuple] = "mnist",
    activation: Union[str, Sequence[str]] = "relu",
    hidden: Sequence[int] = (128, 64),
    epochs: int = 5,
    seed: int = 0,
    *,
    data_dir: Optional[Union[str, os.PathLike]] = None,
    on_epoch: Optional[Callable[[dict], None]] = None,
    **options,
) -> Run:
    """Train one run on ``data``: "mnist", "fashion-mnist", a path to an .npz
    (x_train, y_train, x_test, y_test) or a tuple of those four numpy arrays.
    Every other keyword is a training option of ``actlab train`` (lr, batch_size,
    optimizer, dropout, val_split, limit_train, threads, ...)."""
    if isinstance(data, os.PathLike):
        data = os.fspath(data)
    callback = None
    if on_epoch is not None:
        callback = lambda figures: on_epoch(json.loads(figures))  # noqa: E731
    record, native = _actlab.train(
        _config(activation, hidden, epochs, seed, options),
        data,
        os.fspath(data_dir) if data_dir is not None else None,
        callback,
    )
    return Run(json.loads(record), Model(native))


def load(path: Union[str, os.PathLike]) -> Model:
    """Load a model saved by ``actlab train --save`` or ``Model.save``."""
    return Model(_actlab.load(os.fspath(path)))


def activation_values(name: str, x) -> tuple:
    """f(x) and f'(x) of a built-in activation, as numpy arrays."""
    x = np.asarray(x, dtype=np.float32)
    f, df = _actlab.activation_values(name, x.ravel().tolist())
    return np.asarray(f, np.float32).reshape(x.shape), np.asarray(df, np.float32).reshape(x.shape)
