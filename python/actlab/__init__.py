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
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from . import _actlab

__all__ = [
    "train", "compare", "exercise", "load", "activation_values",
    "Run", "Model", "Comparison", "Exercise", "ActlabError",
]


class ActlabError(Exception):
    """Base class of actlab's own errors (bad input raises ValueError/TypeError/OSError)."""


def _plain(value):
    """A keyword's value as JSON can carry it (numpy scalars and tuples included)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _config(options: dict) -> str:
    """The run settings as a JSON object of ``actlab train``'s option names."""
    cfg = {}
    for key, value in options.items():
        if key == "activation" and isinstance(value, str):
            value = [value]
        if key == "conv" and isinstance(value, str):
            value = [c for c in value.split(",") if c.strip()]
        cfg[key] = _plain(value)
    return json.dumps(cfg)


def _defines(define: Optional[dict]) -> dict:
    if define is None:
        return {}
    if not isinstance(define, dict):
        raise TypeError('define must be a dict of name -> formula, e.g. {"quick_gelu": "x * sigmoid(1.702 * x)"}')
    return {str(k): str(v) for k, v in define.items()}


def _bar(total: int, unit: str, progress: bool):
    """A tqdm bar when ``progress`` and tqdm is installed; otherwise None."""
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=unit)


def _command(name: str, **given) -> str:
    """The call as it would be typed, for summary.md's "Produced by" line."""
    args = ", ".join(f"{k}={v!r}" for k, v in given.items() if v is not None and not callable(v))
    return f"actlab.{name}({args})"


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
        """A ``torch.nn.Module`` in eval mode with the same layers and weights (needs
        PyTorch). It reads float rows as actlab does: uint8 pixels / 255, features as
        they are; its outputs match ``predict_proba``'s network within 1e-5."""
        try:
            import torch  # noqa: F401
        except ImportError as e:
            raise ImportError("Model.to_torch() needs PyTorch, which is not installed: pip install torch") from e
        from ._torch import to_torch

        return to_torch(self.meta, self.state_dict())

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
    define: Optional[dict] = None,
    progress: bool = False,
    on_epoch: Optional[Callable[[dict], None]] = None,
    **options,
) -> Run:
    """Train one run on ``data``: "mnist", "fashion-mnist", a path to an .npz
    (x_train, y_train, x_test, y_test) or a tuple of those four numpy arrays.
    Every other keyword is a training option of ``actlab train`` (lr, batch_size,
    optimizer, dropout, val_split, limit_train, threads, ...). ``define`` names
    formula activations; ``progress=True`` shows a tqdm bar (when tqdm is installed);
    ``on_epoch`` gets each epoch's figures as a dict."""
    options.update(activation=activation, hidden=hidden, epochs=epochs, seed=seed)
    bar = _bar(int(epochs) if isinstance(epochs, (int, np.integer)) else 0, "epoch", progress)

    def each(figures: str):
        row = json.loads(figures)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(test_acc=f"{row['test_acc']:.4f}")
        if on_epoch is not None:
            on_epoch(row)

    try:
        record, native = _actlab.train(
            _config(options),
            _data(data),
            _path(data_dir),
            each if (bar is not None or on_epoch is not None) else None,
            _defines(define),
        )
    finally:
        if bar is not None:
            bar.close()
    return Run(json.loads(record), Model(native))


def _data(data):
    return os.fspath(data) if isinstance(data, os.PathLike) else data


def _path(p):
    return os.fspath(p) if p is not None else None


@dataclass
class Comparison:
    """The results of :func:`compare`: ``table`` (one row per variant, ranked, the
    CLI table's figures as numbers: means, standard deviations, ranges, and the
    difference from the best with its interval bounds), ``runs`` (long form: variant,
    seed, epoch and every metric), ``notes`` and ``out`` (the folder with
    report.html, summary.csv and runs.csv)."""

    out: Path
    table: Any
    runs: Any
    notes: list

    @property
    def report(self) -> Path:
        """The HTML report (charts, tables, intervals)."""
        return self.out / "report.html"


@dataclass
class Exercise:
    """The results of :func:`exercise`: ``table`` (one row per variant in the
    exercise's order, measured figures beside the exercise's claims), ``verdicts``
    (one line per goal and claim), ``grades`` (each ``try_`` proposal's variant name,
    "try ACT/OUTPUT/LOSS", to its grade lines: first PASS, FAIL or "not shown", then
    one per goal), ``runs``, ``notes`` and ``out``."""

    out: Path
    table: Any
    runs: Any
    verdicts: list
    notes: list
    grades: dict

    @property
    def report(self) -> Path:
        """The HTML report (charts, tables, verdicts)."""
        return self.out / "report.html"


def _results(outcome):
    import pandas as pd

    out = Path(outcome.out)
    return out, pd.read_csv(out / "summary.csv"), pd.read_csv(out / "runs.csv")


def _follow(total_runs: int, progress: bool, on_run):
    """The per-run callback of an experiment: a tqdm bar and/or ``on_run``."""
    bar = _bar(total_runs, "run", progress)
    if bar is None and on_run is None:
        return None, None

    def each(event: str):
        row = json.loads(event)
        if bar is not None:
            bar.update(1)
        if on_run is not None:
            on_run(row)

    return each, bar


def _how(jobs, out, resume, overwrite, save_models):
    return {"jobs": jobs, "out": _path(out), "resume": bool(resume),
            "overwrite": bool(overwrite), "save_models": bool(save_models)}


def _seed_spec(seeds) -> str:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        return str(int(seeds))
    if isinstance(seeds, (list, tuple, range, np.ndarray)):
        return ",".join(str(int(s)) for s in seeds)
    raise TypeError("seeds must be a count (3 means 0, 1, 2) or a list of seeds ([0, 4])")


def _runs_of(seeds, variants: int) -> int:
    spec = _seed_spec(seeds)
    return variants * (len(spec.split(",")) if "," in spec else int(spec))


def compare(
    activations: Optional[Sequence[str]] = None,
    variants: Optional[Sequence[str]] = None,
    seeds: Union[int, Sequence[int]] = 3,
    tune: Optional[dict] = None,
    val_split: Optional[int] = None,
    jobs: Optional[int] = None,
    out: Optional[Union[str, os.PathLike]] = None,
    *,
    data: Union[str, os.PathLike, tuple] = "mnist",
    data_dir: Optional[Union[str, os.PathLike]] = None,
    define: Optional[dict] = None,
    progress: bool = False,
    on_run: Optional[Callable[[dict], None]] = None,
    resume: bool = False,
    overwrite: bool = False,
    save_models: bool = False,
    **options,
) -> Comparison:
    """``actlab compare``: one variant per activation (or per ``variants`` spec such as
    "sigmoid/sigmoid/cross_entropy+lr=0.01"), each over ``seeds``, ranked with
    confidence intervals; ``tune={"lr": [3e-4, 1e-3]}`` keeps each variant's best point
    on ``val_split`` held-out images. Every other keyword is a training option.
    Results go to ``out`` (default runs/<time>-compare) as the CLI writes them."""
    if activations is not None and variants is not None:
        raise ValueError("give activations=[...] or variants=[...], not both (a variant spec names its activation)")
    if isinstance(activations, str):
        activations = [activations]
    if isinstance(variants, str):
        variants = [variants]
    command = _command("compare", activations=activations, variants=variants, seeds=seeds, tune=tune,
                       val_split=val_split, define=define, **options)
    acts = list(activations) if activations is not None else [options.pop("activation", "relu")]
    options.update(activation=acts, val_split=val_split)
    count = len(variants) if variants else len(acts)
    if tune:
        for values in tune.values():
            count *= len(values) if isinstance(values, (list, tuple)) else 1
    each, bar = _follow(_runs_of(seeds, count), progress, on_run)
    try:
        outcome = _actlab.compare(
            _config(options), _defines(define), list(variants or []), _seed_spec(seeds),
            json.dumps({k: _plain(v) for k, v in (tune or {}).items()}), _data(data), _path(data_dir),
            _how(jobs, out, resume, overwrite, save_models), command, each,
        )
    finally:
        if bar is not None:
            bar.close()
    folder, table, runs = _results(outcome)
    return Comparison(folder, table, runs, list(outcome.notes))


def exercise(
    seeds: Union[int, Sequence[int]] = 1,
    epochs: int = 5,
    dropout: Optional[float] = None,
    *,
    try_: Optional[Sequence[str]] = None,
    define: Optional[dict] = None,
    data: Union[str, os.PathLike, tuple] = "mnist",
    data_dir: Optional[Union[str, os.PathLike]] = None,
    val_split: Optional[int] = None,
    limit_train: Optional[int] = None,
    limit_test: Optional[int] = None,
    jobs: Optional[int] = None,
    out: Optional[Union[str, os.PathLike]] = None,
    progress: bool = False,
    on_run: Optional[Callable[[dict], None]] = None,
    resume: bool = False,
    overwrite: bool = False,
) -> Exercise:
    """``actlab exercise``: the exercise's "before" (sigmoid/sigmoid/cross-entropy),
    its logits reading, "after" (ReLU/log-softmax/NLL) and the dropout bonus, over
    ``seeds``; measured figures beside the exercise's claims, with verdicts.
    ``try_=["tanh/log_softmax/nll", ...]`` (the CLI's ``--try``; ``try`` is a Python
    keyword) adds each proposal, graded on the exercise's goals in ``.grades``;
    ``define`` names formula activations proposals may use. ``dropout`` is the bonus
    variant's (0.2 when not given; not with ``try_``)."""
    if isinstance(try_, str):
        try_ = [try_]
    tries = list(try_ or [])
    base = {"epochs": epochs, "val_split": val_split, "limit_train": limit_train, "limit_test": limit_test}
    each, bar = _follow(_runs_of(seeds, 4 + len(tries)), progress, on_run)
    command = _command("exercise", seeds=seeds, dropout=dropout, try_=try_, define=define, **base)
    try:
        outcome = _actlab.exercise(
            _config(base), None if dropout is None else float(dropout), tries, _defines(define),
            _seed_spec(seeds), _data(data), _path(data_dir),
            _how(jobs, out, resume, overwrite, True), command, each,
        )
    finally:
        if bar is not None:
            bar.close()
    folder, table, runs = _results(outcome)
    order = runs.drop_duplicates("variant").sort_values("variant_index")["variant"].tolist()
    table = table.set_index("variant").loc[[v for v in order if v in set(table["variant"])]].reset_index()
    claims = {name: (a, b, c) for name, a, b, c in outcome.claims}
    for i, col in enumerate(["claim_train_acc", "claim_val_acc", "claim_val_loss"]):
        table[col] = [claims[v][i] if v in claims else float("nan") for v in table["variant"]]
    grades = {name: list(lines) for name, lines in outcome.grades}
    return Exercise(folder, table, runs, list(outcome.verdicts), list(outcome.notes), grades)


def load(path: Union[str, os.PathLike]) -> Model:
    """Load a model saved by ``actlab train --save`` or ``Model.save``."""
    return Model(_actlab.load(os.fspath(path)))


def activation_values(name: str, x, define: Optional[dict] = None) -> tuple:
    """f(x) and f'(x) of a built-in activation or a formula (a name of ``define``, or
    "name=formula"), as numpy arrays."""
    x = np.asarray(x, dtype=np.float32)
    f, df = _actlab.activation_values(name, x.ravel().tolist(), _defines(define))
    return np.asarray(f, np.float32).reshape(x.shape), np.asarray(df, np.float32).reshape(x.shape)
