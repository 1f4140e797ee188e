"""actlab from Python: training on the sklearn digits fixture, models, errors."""

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

import actlab

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
DIGITS = FIXTURES / "digits.npz"


@pytest.fixture(scope="module")
def digits():
    d = np.load(DIGITS)
    return d["x_train"], d["y_train"], d["x_test"], d["y_test"]


@pytest.fixture(scope="module")
def run():
    return actlab.train(DIGITS, epochs=20)


def test_digits_from_a_path_reach_95_percent(run, digits):
    assert run.record["final_test"]["acc"] >= 0.95
    assert list(run.history.columns) == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"]
    assert len(run.history) == 20
    assert run.record["dataset"]["name"] == "file"
    assert (run.model.predict(digits[2]) == digits[3]).mean() == pytest.approx(run.record["final_test"]["acc"])


def test_arrays_give_the_same_run_as_the_file(run, digits):
    again = actlab.train(digits, epochs=20)
    assert again.record["history"][-1]["test"] == run.record["history"][-1]["test"]


def test_fortran_and_strided_arrays_work(digits):
    x, y, xt, yt = digits
    flat = x.reshape(len(x), -1).astype(np.float32) / 255
    a = actlab.train((flat, y, xt.reshape(len(xt), -1).astype(np.float32) / 255, yt), epochs=2)
    f = actlab.train((np.asfortranarray(flat), y, xt.reshape(len(xt), -1).astype(np.float32)[:, ::1] / 255, yt), epochs=2)
    assert a.record["history"] == f.record["history"] or a.history.drop(columns="seconds").equals(
        f.history.drop(columns="seconds"))
    wide = np.zeros((len(flat), 128), np.float32)
    wide[:, ::2] = flat
    s = actlab.train((wide[:, ::2], y, xt.reshape(len(xt), -1).astype(np.float32) / 255, yt), epochs=2)
    assert s.history.drop(columns="seconds").equals(a.history.drop(columns="seconds"))


def test_val_split_adds_columns(digits):
    r = actlab.train(digits, epochs=1, val_split=100)
    assert "val_acc" in r.history.columns


def test_model_predicts_saves_and_loads(run, digits, tmp_path):
    p = run.model.predict_proba(digits[2])
    assert p.shape == (len(digits[2]), 10)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    sd = run.model.state_dict()
    assert sd["fc1.weight"].shape == (128, 64) and sd["fc3.bias"].shape == (10,)
    path = tmp_path / "m.safetensors"
    run.model.save(path)
    assert (tmp_path / "m.json").exists()
    back = actlab.load(path)
    np.testing.assert_array_equal(back.predict_proba(digits[2]), p)


@pytest.mark.parametrize(
    "change, error, needle",
    [
        (lambda d: (d[0], d[1][:-1], d[2], d[3]), ValueError, "x_train has 1437 rows but y_train 1436"),
        (lambda d: (d[0], d[1].astype(np.float32), d[2], d[3]), TypeError, "integer class labels"),
        (lambda d: (d[0].astype(np.int32), d[1], d[2], d[3]), TypeError, "uint8 images or float32"),
        (lambda d: (d[0][:0], d[1][:0], d[2], d[3]), ValueError, "empty"),
        (lambda d: (d[0], d[1] + 1000, d[2], d[3]), ValueError, "labels must be class numbers"),
        (lambda d: (np.where(np.arange(64).reshape(8, 8) == 3, np.nan, d[0].astype(np.float32)), d[1], d[2].astype(np.float32), d[3]),
         ValueError, "x_train[0, 3] is NaN"),
        (lambda d: (d[0], d[1], d[2][:, :4], d[3]), ValueError, "same width"),
    ],
)
def test_bad_arrays_raise_with_the_clis_message(digits, change, error, needle):
    with pytest.raises(error, match=None) as e:
        actlab.train(change(digits), epochs=1)
    assert needle in str(e.value)


def test_bad_options_raise_value_errors():
    with pytest.raises(ValueError, match=r"unknown keyword 'lrr' \(did you mean 'lr'\?\)"):
        actlab.train(DIGITS, lrr=1)
    with pytest.raises(ValueError, match="lr=\"fast\""):
        actlab.train(DIGITS, lr="fast")
    with pytest.raises(ValueError, match="did you mean 'relu6'"):
        actlab.train(DIGITS, activation="reluu")
    with pytest.raises(ValueError, match="batch"):
        actlab.train(DIGITS, batch_size=100000)
    with pytest.raises(OSError):
        actlab.train("no-such-file.npz")
    with pytest.raises(ValueError, match="pickled object array"):
        actlab.train(str(FIXTURES / "bad-object.npz"))


def test_on_epoch_gets_every_epoch():
    seen = []
    actlab.train(DIGITS, epochs=3, on_epoch=seen.append)
    assert [e["epoch"] for e in seen] == [1, 2, 3] and "test_acc" in seen[0]


def test_ctrl_c_stops_within_a_batch():
    big = np.random.RandomState(0).rand(20000, 64).astype(np.float32)
    labels = np.arange(20000) % 2
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        actlab.train((big, labels, big[:100], labels[:100]), epochs=1000, batch_size=8)
    timer.cancel()


def test_activation_values():
    f, df = actlab.activation_values("relu", np.array([-1.0, 2.0]))
    np.testing.assert_array_equal(f, [0.0, 2.0])
    np.testing.assert_array_equal(df, [0.0, 1.0])
    with pytest.raises(ValueError):
        actlab.activation_values("nope", [0.0])
