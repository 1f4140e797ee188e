"""compare, exercise, define=, progress and Ctrl-C: the library's experiments from Python."""

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

import actlab

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
DIGITS = FIXTURES / "digits.npz"
QUICK_GELU = {"quick_gelu": "x * sigmoid(1.702 * x)"}


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    seen = []
    c = actlab.compare(["relu", "quick_gelu"], seeds=2, data=DIGITS, epochs=2, define=QUICK_GELU,
                       out=tmp_path_factory.mktemp("cmp") / "out", on_run=seen.append)
    return c, seen


def test_compare_table_has_the_clis_figures_as_numbers(comparison):
    c, _ = comparison
    assert list(c.table["rank"]) == [1, 2]
    assert set(c.table["variant"]) == {"relu/log_softmax/nll", "quick_gelu/log_softmax/nll"}
    for col in ["test_acc_mean", "test_acc_std", "test_acc_min", "test_acc_max", "behind_best",
                "behind_best_lo", "behind_best_hi", "train_loss_mean", "seconds_mean"]:
        assert col in c.table.columns
    assert c.table["test_acc_mean"].iloc[0] >= c.table["test_acc_mean"].iloc[1]
    second = c.table.iloc[1]
    assert second["behind_best_lo"] <= second["behind_best"] <= second["behind_best_hi"]
    assert c.report.exists() and (c.out / "summary.md").exists()
    assert any("seed" in n for n in c.notes)


def test_compare_runs_are_long_form_and_match_a_lone_run(comparison):
    c, _ = comparison
    assert len(c.runs) == 2 * 2 * 2
    assert {"variant", "seed", "epoch", "train_loss", "test_acc", "seconds"} <= set(c.runs.columns)
    lone = actlab.train(DIGITS, epochs=2, seed=1)
    mine = c.runs[(c.runs.variant == "relu/log_softmax/nll") & (c.runs.seed == 1)]
    np.testing.assert_array_equal(mine["test_acc"].to_numpy(), lone.history["test_acc"].to_numpy())


def test_on_run_sees_every_run(comparison):
    _, seen = comparison
    assert sorted(e["done"] for e in seen) == [1, 2, 3, 4]
    assert all(e["total"] == 4 and e["test_acc"] > 0 for e in seen)


def test_an_existing_folder_is_refused_then_resumed(comparison):
    c, _ = comparison
    with pytest.raises(OSError, match="already holds results"):
        actlab.compare(["relu", "quick_gelu"], seeds=2, data=DIGITS, epochs=2, define=QUICK_GELU, out=c.out)
    again = actlab.compare(["relu", "quick_gelu"], seeds=2, data=DIGITS, epochs=2, define=QUICK_GELU,
                           out=c.out, resume=True)
    assert again.table["test_acc_mean"].tolist() == c.table["test_acc_mean"].tolist()


def test_tuning_and_variants(tmp_path):
    c = actlab.compare(variants=["relu/log_softmax/nll", "tanh/log_softmax/nll+name=tanh"], seeds=1,
                       data=DIGITS, epochs=1, tune={"lr": [1e-3, 3e-3]}, val_split=200, out=tmp_path / "t")
    assert set(c.table["variant"]) == {"relu/log_softmax/nll", "tanh"}
    assert c.table["chosen"].str.startswith("lr=").all()
    assert (c.out / "grid.csv").exists()


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(activations=["relu"], variants=["tanh"]), "not both"),
        (dict(activations=["relu", "rleu"]), "did you mean 'relu'"),
        (dict(activations=["relu"], lrr=0.1), "unknown keyword 'lrr' (did you mean 'lr'?)"),
        (dict(activations=["relu"], tune={"lr": [1e-3, 3e-3]}), "val"),
        (dict(activations=["relu"], seeds=0), "seeds=0"),
        (dict(activations=["relu"], jobs=0), "jobs=0"),
    ],
)
def test_bad_comparisons_raise_value_errors(kwargs, needle, tmp_path):
    with pytest.raises(ValueError) as e:
        actlab.compare(data=DIGITS, epochs=1, out=tmp_path / "x", **kwargs)
    assert needle in str(e.value)


def test_exercise_puts_claims_beside_measurements(tmp_path):
    e = actlab.exercise(data=DIGITS, epochs=1, out=tmp_path / "ex")
    assert list(e.table["variant"]) == ["before", "before (logits)", "after", "bonus (dropout)"]
    before = e.table.set_index("variant").loc["before"]
    assert (before["claim_train_acc"], before["claim_val_acc"], before["claim_val_loss"]) == (0.98, 0.85, 0.35)
    assert np.isnan(e.table.set_index("variant").loc["bonus (dropout)", "claim_val_acc"])
    assert any(v.startswith("goal") for v in e.verdicts) and any(v.startswith("claim") for v in e.verdicts)
    assert len(e.runs) == 4 and e.report.exists()


def test_define_trains_a_formula_and_plots_it():
    r = actlab.train(DIGITS, activation="quick_gelu", define=QUICK_GELU, epochs=1)
    assert r.record["config"]["activation"] == ["quick_gelu=x * sigmoid(1.702 * x)"]
    f, df = actlab.activation_values("quick_gelu", np.array([0.0, 1.0]), define=QUICK_GELU)
    np.testing.assert_allclose(f, [0.0, 1 / (1 + np.exp(-1.702))], rtol=1e-5)
    assert df[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="built-in activation"):
        actlab.train(DIGITS, define={"relu": "x"}, epochs=1)
    with pytest.raises(ValueError, match="did you mean 'sigmoid'"):
        actlab.train(DIGITS, activation="f", define={"f": "x * sigmod(x)"}, epochs=1)


def test_progress_bar_and_on_epoch_together():
    seen = []
    actlab.train(DIGITS, epochs=2, progress=True, on_epoch=seen.append)
    assert [e["epoch"] for e in seen] == [1, 2]


def test_ctrl_c_stops_a_comparison_and_it_resumes(tmp_path):
    big = np.random.RandomState(0).rand(20000, 64).astype(np.float32)
    labels = np.arange(20000) % 2
    data = (big, labels, big[:100], labels[:100])
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt, match="resume=True"):
        actlab.compare(["relu", "tanh"], seeds=1, data=data, epochs=1000, batch_size=8, out=tmp_path / "c", jobs=1)
    timer.cancel()
    assert (tmp_path / "c" / "experiment.json").exists()


def test_up_to_1000_classes_train_and_more_are_refused_in_one_line():
    rng = np.random.RandomState(0)
    x = rng.rand(2000, 6).astype(np.float32)
    y = np.arange(2000) % 1000
    r = actlab.train((x, y, x[:1000], y[:1000]), epochs=1)
    assert r.model.predict_proba(x[:2]).shape == (2, 1000)
    assert r.record["test_confusion"] is None, "no million-cell matrix in the record"
    assert len(r.record["diagnostics"]["per_class_acc"]) == 1000
    with pytest.raises(ValueError, match=r"y_train\[1000\] = 1000: labels must be class numbers 0..K-1 with K at most 1000"):
        actlab.train((x, np.arange(2000) % 1001, x[:100], y[:100]), epochs=1)


MNIST_SMALL = {"limit_train": 1000, "limit_test": 200, "epochs": 1}


def test_exercise_grades_proposals_given_as_try_(tmp_path):
    e = actlab.exercise(try_=["tanh/log_softmax/nll"], out=tmp_path / "ex", **MNIST_SMALL)
    assert "try tanh/log_softmax/nll" in list(e.table["variant"])
    lines = e.grades["try tanh/log_softmax/nll"]
    assert lines[0].split(": ", 1)[1].split(" ")[0] in {"PASS", "FAIL", "not"}, lines
    assert any("architecture unchanged" in l for l in lines[1:]), lines
    assert len(e.runs) == 5


def test_exercise_try_refuses_what_the_cli_refuses(tmp_path):
    with pytest.raises(ValueError, match="architecture unchanged"):
        actlab.exercise(try_=["relu+lr=0.01"], out=tmp_path / "a", **MNIST_SMALL)
    with pytest.raises(ValueError, match="drop dropout"):
        actlab.exercise(try_=["tanh"], dropout=0.3, out=tmp_path / "b", **MNIST_SMALL)
    with pytest.raises(ValueError, match="set for MNIST"):
        actlab.exercise(try_=["tanh"], data=DIGITS, epochs=1, out=tmp_path / "c")


def test_model_lenet5_is_a_keyword_of_train_and_compare(tmp_path):
    r = actlab.train(model="lenet5", **MNIST_SMALL)
    assert r.record["config"]["conv"] == ["6:5:1:2", "16:5:1:0"]
    assert r.record["config"]["hidden"] == [120, 84]
    c = actlab.compare(["relu"], seeds=1, model="lenet5", out=tmp_path / "c", **MNIST_SMALL)
    assert len(c.runs) == 1
    with pytest.raises(ValueError, match="unknown model 'lenet6'; use one of lenet5"):
        actlab.train(model="lenet6", **MNIST_SMALL)


def test_to_torch_gives_the_same_outputs(tmp_path):
    torch = pytest.importorskip("torch", reason="to_torch() needs PyTorch, an optional dependency")
    d = np.load(DIGITS)
    cases = [dict(activation="quick_gelu", define=QUICK_GELU), dict(activation=["tanh", "prelu"], output="softmax"),
             dict(conv="4:3", norm="layer", activation="silu"), dict(conv="4:3", norm="batch", hidden=[32])]
    for kwargs in cases:
        model = actlab.train(DIGITS, epochs=2, **kwargs).model
        net = model.to_torch()
        x = torch.tensor(d["x_test"].reshape(len(d["x_test"]), -1) / 255.0, dtype=torch.float32)
        with torch.no_grad():
            y = net(x).numpy()
        theirs = np.exp(y) if model.meta["output"] == "log_softmax" else y
        np.testing.assert_allclose(theirs, model.predict_proba(d["x_test"]), atol=1e-5)


def test_batch_norm_statistics_are_in_the_state_dict():
    sd = actlab.train(DIGITS, epochs=1, norm="batch").model.state_dict()
    assert sd["norm1.running_mean"].shape == (128,) and sd["norm1.running_var"].dtype == np.float32
    assert sd["norm2.num_batches_tracked"].dtype == np.int64 and sd["norm2.num_batches_tracked"].shape == ()
    assert sd["norm2.num_batches_tracked"] > 0 and "fc1.bias" not in sd


def test_to_torch_without_torch_says_how_to_install_it(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real(name, *args, **kwargs)

    model = actlab.train(DIGITS, epochs=1).model
    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(ImportError, match="pip install torch"):
        model.to_torch()
