"""The forecast and classify tasks: readers, splits, normalisers, metrics against hand-computed
values, models against references, end-to-end CLI runs on small user files and the built-ins."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_sequence

from cli_helpers import run_cli
from conftest import ALL_VARIANTS, FP32
from lstmkit.data.series import Sequences, Table, fill_missing, origins, parse_times, read_series, read_sequences
from lstmkit.models.sequence import Forecaster, SequenceClassifier
from lstmkit.tasks import get_task
from lstmkit.tasks.classify import assign_splits, confusion, macro_f1
from lstmkit.tasks.forecast import forecast_metrics, mase_scale, naive_forecasts, windows
from lstmkit.train.config import RunConfig

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(autouse=True, scope="module")
def _reference_loop():
    """The pure-torch loop: these tiny models test the tasks, not the engine, and a process's first
    engine call may have to (re)build it, which on a busy machine took minutes."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LSTMKIT_ENGINE", "0")
        yield

EXACT = dict(rtol=1e-12, atol=1e-12)  # float64 arithmetic on a handful of numbers (numpy names)
APPROX = dict(rel=1e-12, abs=1e-12)  # the same, in pytest.approx's names
TINY_FC = ["--hidden", "8", "--layers", "1", "--window", "10", "--horizon", "3", "--batch-size", "16",
           "--log-every", "5", "--eval-every", "5"]
TINY_CL = ["--hidden", "8", "--layers", "1", "--batch-size", "8", "--log-every", "5", "--eval-every", "5"]


def write_sine(path, n=160, nan_rows=(), features=True, start="2021-01-01"):
    """A noisy sine with a daily date column and a second, cosine, column."""
    rng = np.random.default_rng(0)
    t = np.arange(n)
    y = 10 + 3 * np.sin(2 * np.pi * t / 20) + 0.1 * rng.standard_normal(n)
    x2 = np.cos(2 * np.pi * t / 20)
    day0 = np.datetime64(start)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "value"] + (["cosine"] if features else []))
        for i in range(n):
            value = "" if i in nan_rows else f"{y[i]:.6f}"
            w.writerow([str(day0 + i), value] + ([f"{x2[i]:.6f}"] if features else []))
    return path, y


def forecast_cfg(path, **options) -> RunConfig:
    cfg = RunConfig.from_dict({"task": "forecast", "data": {"path": str(path), "valid_fraction": 0.2},
                               "options": {"target": "value", "time_column": "date", "window": 10, "horizon": 3,
                                           "test_fraction": 0.2, **options}})
    get_task("forecast").check_config(cfg)
    return cfg


# ---- forecasting: splits, normaliser, metrics ----------------------------------------------------

def test_split_has_no_leakage(tmp_path):
    path, _ = write_sine(tmp_path / "s.csv")
    cfg = forecast_cfg(path)
    data = get_task("forecast").load(cfg)
    a, b = data.bounds
    N, W, H = 160, 10, 3
    assert (a, b) == (96, 128)  # 20 % test, 20 % valid, chronological
    for split, lo, hi in ((data.train, 0, a), (data.valid, a, b), (data.test, b, N)):
        o = split.origins
        assert len(o) > 0
        assert (o - W + 1 >= 0).all()  # whole windows
        assert (o + 1 >= lo).all() and (o + H < hi).all()  # every target inside its own part
    # every origin with all targets in a part is used, once: consecutive origins
    assert list(data.train.origins) == list(range(W - 1, a - H))
    assert list(data.test.origins) == list(range(b - 1, N - H))
    # the training batches hold only train-part targets
    batches = get_task("forecast").batches(cfg, data)
    ys = torch.cat([batches[i][1] for i in range(len(batches))])
    assert ys.shape[0] == len(data.train.origins)
    _, y_train = windows(data.z, data.train.origins, W, H)
    assert torch.equal(torch.sort(ys.flatten()).values, torch.sort(y_train.flatten()).values)


def test_origins_by_hand():
    # rows 0..9, W=3, H=2, part [5, 8): origins o with o+1 >= 5, o+2 <= 7, o >= 2 -> 4, 5
    assert origins(5, 8, 3, 2).tolist() == [4, 5]
    assert origins(0, 5, 3, 2).tolist() == [2]  # window 0..2, targets 3, 4
    assert origins(0, 4, 3, 2).tolist() == []


def test_normaliser_is_fitted_on_the_train_part_only(tmp_path):
    path, y = write_sine(tmp_path / "s.csv", features=False)
    data = get_task("forecast").load(forecast_cfg(path))
    a = data.bounds[0]
    rows = list(csv.reader(open(path)))
    for r in rows[1 + a:]:  # wildly different valid and test values must not move the normaliser
        r[1] = str(float(r[1]) * 100 + 1e4)
    with open(tmp_path / "t.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    changed = get_task("forecast").load(forecast_cfg(tmp_path / "t.csv"))
    y_train = np.array([float(r[1]) for r in rows[1:1 + a]])
    for d in (data, changed):
        np.testing.assert_allclose(d.state.mean, [y_train.mean()], **EXACT)
        np.testing.assert_allclose(d.state.std, [y_train.std()], **EXACT)
    np.testing.assert_allclose(changed.z[:a, 0].numpy(), (y_train - y_train.mean()) / y_train.std(), **FP32)


def test_metrics_against_hand_computed_values():
    pred = np.array([[1.0, 2.0], [3.0, 5.0]])
    actual = np.array([[2.0, 2.0], [1.0, 1.0]])
    # errors -1, 0, 2, 4: MAE 7/4, RMSE sqrt(21/4); scale 0.5 -> MASE 3.5
    m = forecast_metrics(pred, actual, 0.5)
    assert m["mae"] == pytest.approx(1.75, **APPROX)
    assert m["rmse"] == pytest.approx(math.sqrt(5.25), **APPROX)
    assert m["mase"] == pytest.approx(3.5, **APPROX)
    y = np.array([1.0, 3.0, 2.0, 6.0, 4.0])
    assert mase_scale(y, 1) == pytest.approx((2 + 1 + 4 + 2) / 4, **APPROX)
    assert mase_scale(y, 2) == pytest.approx((1 + 3 + 2) / 3, **APPROX)


def test_naive_and_seasonal_naive_baselines():
    y = np.arange(10.0) ** 2  # 0 1 4 9 16 25 36 49 64 81
    orig = np.array([4, 5])
    np.testing.assert_array_equal(naive_forecasts(y, orig, 3), [[16, 16, 16], [25, 25, 25]])
    # season 2: target o+h is forecast by the value one season (or two) before it, at or before o
    # o=4: h=1 -> y[3], h=2 -> y[4], h=3 -> y[5-2]... = y[o+h-2*ceil(h/2)]: y[3], y[4], y[3]
    np.testing.assert_array_equal(naive_forecasts(y, orig, 3, 2), [[9, 16, 9], [16, 25, 16]])


def test_time_columns_and_future_timestamps():
    def times(values):
        t = Table("t", ["t"], [[v] for v in values], list(range(2, len(values) + 2)))
        return parse_times(t, "t")
    assert times(["2001", "2002", "2003"]).future(2) == ["2004", "2005"]
    assert times(["0.5", "1.0", "1.5"]).future(2) == ["2.0", "2.5"]
    assert times(["2020-11", "2020-12"]).future(3) == ["2021-01", "2021-02", "2021-03"]
    assert times(["2021-01-31", "2021-02-28", "2021-03-31"]).future(2) == ["2021-04-30", "2021-05-31"]
    assert times(["2021-01-01", "2021-01-08"]).future(2) == ["2021-01-15", "2021-01-22"]
    assert times(["2021-01-01 10:00:00", "2021-01-01 11:00:00"]).future(1) == ["2021-01-01 12:00:00"]


def test_fill_modes_by_hand():
    nan = math.nan
    v = np.array([[nan, 1.0], [2.0, nan], [nan, 3.0], [6.0, nan]])
    out, keep = fill_missing(v, ["a", "b"], "ffill", str)
    np.testing.assert_array_equal(out, [[2, 1], [2, 1], [2, 3], [6, 3]])  # a leading gap takes the first value
    out, _ = fill_missing(v, ["a", "b"], "interpolate", str)
    np.testing.assert_array_equal(out, [[2, 1], [2, 2], [4, 3], [6, 3]])
    out, keep = fill_missing(v, ["a", "b"], "drop", str)
    assert out.shape == (0, 2) and keep.tolist() == []
    out, keep = fill_missing(v[:, :1], ["a"], "drop", str)
    assert out[:, 0].tolist() == [2, 6] and keep.tolist() == [1, 3]


def test_fill_in_a_csv_series_keeps_times_aligned(tmp_path):
    path, y = write_sine(tmp_path / "s.csv", n=40, nan_rows=(5, 6), features=False)
    s = read_series(str(path), "value", (), "date", "drop")
    assert len(s.values) == 38 and "2021-01-06" not in s.times.text and s.times.text[5] == "2021-01-08"
    s = read_series(str(path), "value", (), "date", "interpolate")
    np.testing.assert_allclose(s.values[5:7, 0], [y[4] + (y[7] - y[4]) / 3, y[4] + 2 * (y[7] - y[4]) / 3],
                               atol=1e-5)


# ---- forecasting: model and end to end ------------------------------------------------------------

def test_forecaster_residual_starts_from_the_naive_forecast():
    m = Forecaster(2, 4, hidden_size=8, residual=True)
    torch.nn.init.zeros_(m.head.weight)
    torch.nn.init.zeros_(m.head.bias)
    x = torch.randn(5, 7, 2)
    assert torch.equal(m(x), x[:, -1:, 0].expand(5, 4))


def test_forecaster_residual_is_blind_to_the_target_level():
    """Inputs and outputs relative to the last value: shifting the target column by c shifts the forecast by c
    (what lets it follow a trend beyond the training range)."""
    m = Forecaster(2, 3, cell="gru", hidden_size=8, num_layers=2, residual=True)
    x = torch.randn(4, 6, 2)
    shifted = x.clone()
    shifted[:, :, 0] += 7.5
    torch.testing.assert_close(m(shifted), m(x) + 7.5, **FP32)
    plain = Forecaster(2, 3, cell="gru", hidden_size=8, residual=False)
    assert not torch.allclose(plain(shifted), plain(x) + 7.5, **FP32)


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_forecast_cli_on_a_user_csv_and_predict(tmp_path, capsys):
    path, y = write_sine(tmp_path / "sine.csv")
    run = tmp_path / "run"
    rc, out, err = run_cli("train", "forecast", "--data", path, "--target", "value", "--features", "cosine",
                           "--time-column", "date", "--season", 20, *TINY_FC, "--max-steps", 20,
                           "--valid-fraction", 0.2, "--test-fraction", 0.2, "--out", run, capsys=capsys)
    assert rc == 0, err
    assert "naive (last value)" in out and "seasonal naive (m=20)" in out
    summary = json.loads((run / "summary.json").read_text())
    assert (run / "forecast.png").stat().st_size > 0
    rows = read_rows(run / "forecast_test.csv")
    assert len(rows) == summary["test_origins"] * 3 == (160 - 128 - 3 + 1) * 3
    # the summary's metrics are those of forecast_test.csv's columns, on the data's own values
    actual = np.array([float(r["actual"]) for r in rows])
    by_date = {f"{np.datetime64('2021-01-01') + i}": v for i, v in enumerate(y)}
    np.testing.assert_allclose(actual, [by_date[r["date"]] for r in rows], rtol=1e-5)
    scale = mase_scale(y[:96], 20)
    for col, key in (("forecast", "lstm"), ("naive", "naive (last value)"), ("seasonal_naive", "seasonal naive (m=20)")):
        pred = np.array([float(r[col]) for r in rows])
        m = forecast_metrics(pred, actual, scale)
        for k in ("mae", "rmse", "mase"):
            assert summary["test"][key][k] == pytest.approx(m[k], rel=1e-4)
    naive = np.array([by_date[r["origin"]] for r in rows])  # naive = the value at the origin
    np.testing.assert_allclose([float(r["naive"]) for r in rows], naive, rtol=1e-5)
    state = json.loads((run / "checkpoint.json").read_text())["task_state"]
    assert state["columns"] == ["value", "cosine"] and state["time_column"] == "date"

    rc, out, err = run_cli("predict", run, "--data", path, "--out", tmp_path / "f.csv", capsys=capsys)
    assert rc == 0, err
    pred = read_rows(tmp_path / "f.csv")
    last = np.datetime64("2021-01-01") + 159
    assert [r["date"] for r in pred] == [str(last + k) for k in (1, 2, 3)]
    assert [r["step"] for r in pred] == ["1", "2", "3"] and all(math.isfinite(float(r["value"])) for r in pred)


def test_forecast_without_a_time_column_numbers_rows(tmp_path, capsys):
    path, _ = write_sine(tmp_path / "s.csv", n=80, features=False)
    run = tmp_path / "run"
    assert run_cli("train", "forecast", "--data", path, "--target", "value", *TINY_FC, "--max-steps", 3,
                   "--out", run, capsys=capsys)[0] == 0
    assert run_cli("predict", run, capsys=capsys)[0] == 0
    assert [r["row"] for r in read_rows(run / "forecast.csv")] == ["80", "81", "82"]


# ---- classification -----------------------------------------------------------------------------

def make_sequences(n=48, F=3, seed=0):
    """Two classes with variable lengths 4..12: class "up" drifts upwards in feature 0, "down" downwards."""
    rng = np.random.default_rng(seed)
    xs, labels = [], []
    for i in range(n):
        T = int(rng.integers(4, 13))
        c = ["down", "up"][i % 2]
        x = 0.3 * rng.standard_normal((T, F))
        x[:, 0] += (1 if c == "up" else -1) * np.linspace(0, 2, T)
        xs.append(x)
        labels.append(c)
    return xs, labels


def write_npz(path, xs, labels, F=None, **extra):
    T = max(len(x) for x in xs)
    F = F or xs[0].shape[1]
    X = np.zeros((len(xs), T, F), dtype=np.float32)
    for i, x in enumerate(xs):
        X[i, :len(x)] = x[:, :F]
    np.savez(path, x=X, lengths=np.array([len(x) for x in xs]), y=np.array(labels), **extra)
    return path


def write_long_csv(path, xs, labels, with_time=True):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "t", "a", "b", "c", "label"])
        for i, (x, c) in enumerate(zip(xs, labels)):
            for t, row in enumerate(x):
                w.writerow([f"s{i}", t] + [f"{v:.5f}" for v in row] + [c])
    return path


def test_npz_and_long_csv_read_the_same_sequences(tmp_path):
    xs, labels = make_sequences(10)
    a = read_sequences(str(write_npz(tmp_path / "d.npz", xs, labels)))
    b = read_sequences(str(write_long_csv(tmp_path / "d.csv", xs, labels)), time_column="t")
    assert a.labels == b.labels == labels and b.features == ["a", "b", "c"] and b.ids[0] == "s0"
    for u, v, x in zip(a.x, b.x, xs):
        assert u.shape == v.shape == x.shape
        np.testing.assert_allclose(u, v, atol=1e-5)


def test_univariate_npz(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)  # (N, T): one feature
    np.savez(tmp_path / "u.npz", x=x, lengths=np.array([4, 2, 3]), y=np.array([0, 1, 0]))
    s = read_sequences(str(tmp_path / "u.npz"))
    assert s.n_features == 1 and s.labels == ["0", "1", "0"]
    assert [v[:, 0].tolist() for v in s.x] == [[0, 1, 2, 3], [4, 5], [8, 9, 10]]


def test_classifier_on_packed_batch_equals_one_sequence_at_a_time():
    torch.manual_seed(0)
    seqs = [torch.randn(T, 3) for T in (5, 9, 2, 7)]
    for readout in ("last", "mean", "max"):
        for bidirectional in (False, True):
            m = SequenceClassifier(3, 4, cell="peephole", hidden_size=6, num_layers=2, bidirectional=bidirectional,
                                   readout=readout).eval()
            together = m(pack_sequence(seqs, enforce_sorted=False))
            alone = torch.cat([m(pack_sequence([s])) for s in seqs])
            torch.testing.assert_close(together, alone, **FP32)
            if readout == "mean" and not bidirectional:  # against the definition: mean over the sequence's outputs
                out, _ = m.rnn(seqs[1][None])
                torch.testing.assert_close(m.head(out.mean(1)), together[1:2], **FP32)


def test_confusion_and_macro_f1_by_hand():
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 0, 1]
    cm = confusion(y_true, y_pred, 3)
    assert cm.tolist() == [[1, 1, 0], [1, 2, 0], [0, 1, 0]]
    # F1: class 0: 2*1/(2+1+1) = 0.5; class 1: 2*2/(4+2+1) = 4/7; class 2: 0
    assert macro_f1(cm) == pytest.approx((0.5 + 4 / 7 + 0) / 3, **APPROX)


def test_stratified_splits_are_disjoint_and_keep_classes():
    xs, labels = make_sequences(40)
    seqs = Sequences(xs, labels, [str(i) for i in range(40)], ["a"], "mem")
    parts = assign_splits(seqs, 0.2, 0.25, seed=0)
    allidx = parts["train"] + parts["valid"] + parts["test"]
    assert sorted(allidx) == list(range(40))
    assert (len(parts["test"]), len(parts["valid"])) == (10, 8)
    for p in parts.values():
        assert {labels[i] for i in p} == {"up", "down"}


def test_classify_cli_on_npz_and_predict(tmp_path, capsys):
    xs, labels = make_sequences(60)
    path = write_npz(tmp_path / "d.npz", xs, labels)
    run = tmp_path / "run"
    rc, out, err = run_cli("train", "classify", "--data", path, *TINY_CL, "--max-steps", 40, "--lr", 0.01,
                           "--bidirectional", "--layers", 2, "--readout", "mean", "--class-weights", "balanced",
                           "--out", run, capsys=capsys)
    assert rc == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_sequences"] == 12 and (run / "confusion.png").stat().st_size > 0
    assert summary["test_accuracy"] >= 0.75, summary  # an easy problem: the drift's sign
    cm = np.array(summary["confusion"])
    assert cm.sum() == 12 and summary["test_accuracy"] == pytest.approx(np.trace(cm) / 12, abs=1e-6)
    rows = read_rows(run / "test_predictions.csv")
    assert summary["test_accuracy"] == pytest.approx(np.mean([r["label"] == r["predicted"] for r in rows]), abs=1e-6)

    unlabelled = tmp_path / "new.npz"
    np.savez(unlabelled, x=np.stack([np.pad(x, ((0, 12 - len(x)), (0, 0))) for x in xs[:5]]).astype(np.float32),
             lengths=np.array([len(x) for x in xs[:5]]))
    rc, out, err = run_cli("predict", run, "--data", unlabelled, "--out", tmp_path / "p.csv", capsys=capsys)
    assert rc == 0, err
    pred = read_rows(tmp_path / "p.csv")
    assert [r["id"] for r in pred] == ["0", "1", "2", "3", "4"]
    for r in pred:
        p = [float(r["p_down"]), float(r["p_up"])]
        assert sum(p) == pytest.approx(1, abs=1e-5) and r["predicted"] == ["down", "up"][int(np.argmax(p))]


def test_classify_cli_on_long_csv(tmp_path, capsys):
    xs, labels = make_sequences(40)
    path = write_long_csv(tmp_path / "d.csv", xs, labels)
    run = tmp_path / "run"
    rc, out, err = run_cli("train", "classify", "--data", path, "--time-column", "t", "--features", "a,b",
                           *TINY_CL, "--max-steps", 5, "--out", run, capsys=capsys)
    assert rc == 0, err
    assert "accuracy" in out and "macro-F1" in out
    assert json.loads((run / "checkpoint.json").read_text())["task_state"]["features"] == ["a", "b"]
    rc, out, err = run_cli("predict", run, "--data", path, "--out", tmp_path / "p.csv", capsys=capsys)
    assert rc == 0 and "accuracy against its labels" in out, err
    assert len(read_rows(tmp_path / "p.csv")) == 40


@pytest.mark.parametrize("cell", ALL_VARIANTS)
def test_both_models_take_every_registered_variant(cell):
    """Every parameter gets a finite gradient through both heads, stacked and bidirectional."""
    f = Forecaster(2, 3, cell=cell, hidden_size=5, num_layers=2, bidirectional=True)
    c = SequenceClassifier(2, 4, cell=cell, hidden_size=5, num_layers=2, bidirectional=True, readout="max")
    loss = f(torch.randn(3, 6, 2)).square().sum() + \
        c(pack_sequence([torch.randn(T, 2) for T in (4, 7, 2)], enforce_sorted=False)).logsumexp(1).sum()
    loss.backward()
    for p in list(f.parameters()) + list(c.parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("cell", ["lstm", "gru", "peephole", "cifg", "rnn"])
def test_every_cell_runs_both_tasks(cell, tmp_path, capsys):
    path, _ = write_sine(tmp_path / "s.csv", n=60, features=False)
    rc, _, err = run_cli("train", "forecast", "--data", path, "--target", "value", "--cell", cell, *TINY_FC,
                         "--max-steps", 2, "--out", tmp_path / "f", capsys=capsys)
    assert rc == 0, err
    xs, labels = make_sequences(20)
    rc, _, err = run_cli("train", "classify", "--data", write_npz(tmp_path / "d.npz", xs, labels), "--cell", cell,
                         *TINY_CL, "--max-steps", 2, "--out", tmp_path / "c", capsys=capsys)
    assert rc == 0, err
    assert json.loads((tmp_path / "c" / "checkpoint.json").read_text())["config"]["model"]["cell"] == cell


# ---- the built-in defaults ---------------------------------------------------------------------------

def test_builtin_forecast_default(tmp_path, capsys):
    pytest.importorskip("statsmodels")
    run = tmp_path / "run"
    rc, out, err = run_cli("train", "forecast", "--max-steps", 3, "--hidden", 8, "--out", run, capsys=capsys)
    assert rc == 0, err
    assert "builtin:sunspots" in out and "seasonal naive (m=11)" in out
    assert json.loads((run / "summary.json").read_text())["split_rows"] == [217, 263, 309]
    assert run_cli("predict", run, capsys=capsys)[0] == 0
    assert [r["YEAR"] for r in read_rows(run / "forecast.csv")] == [str(y) for y in range(2009, 2015)]


def test_builtin_classify_default(tmp_path, capsys):
    pytest.importorskip("aeon")
    run = tmp_path / "run"
    rc, out, err = run_cli("train", "classify", "--max-steps", 2, "--hidden", 8, "--out", run, capsys=capsys)
    assert rc == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_sequences"] == 370 and len(summary["confusion"]) == 9
    seqs = read_sequences("builtin:japanesevowels")
    assert len(seqs.x) == 640 and seqs.n_features == 12
    assert {len(x) for x in seqs.x} <= set(range(7, 30))
