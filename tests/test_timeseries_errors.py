"""Bad input to `lstmkit train forecast|classify` and `lstmkit predict`: exit code 2, one line naming
the problem (and where), no traceback, and an earlier run left untouched."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from cli_helpers import assert_usage_error as usage_error
from cli_helpers import run_cli, train_over
from test_timeseries import TINY_CL, TINY_FC, make_sequences, write_long_csv, write_npz, write_sine
from test_timeseries import _reference_loop  # noqa: F401  (an autouse fixture: the pure-torch loop here too)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ts-bad")
    sine, _ = write_sine(tmp / "sine.csv", n=80)
    xs, labels = make_sequences(24)
    return {"sine": sine, "npz": write_npz(tmp / "d.npz", xs, labels), "tmp": tmp}


@pytest.fixture(scope="module")
def earlier(files):
    """An earlier forecast run, which no failing command may change."""
    run = files["tmp"] / "earlier"
    assert run_cli("train", "forecast", "--data", files["sine"], "--target", "value", *TINY_FC, "--max-steps", 2,
                   "--out", run)[0] == 0
    return run


@pytest.fixture(scope="module")
def classify_run(files):
    run = files["tmp"] / "classify-run"
    assert run_cli("train", "classify", "--data", files["npz"], *TINY_CL, "--max-steps", 2, "--out", run)[0] == 0
    return run




def forecast(earlier, capsys, path, *args):
    return train_over(earlier, capsys, "forecast", "--data", path, *TINY_FC, "--max-steps", 2, *args)


def edit_csv(src, dst, fn):
    rows = list(csv.reader(open(src)))
    fn(rows)
    with open(dst, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return dst


# ---- columns and values ------------------------------------------------------------------------

def test_unknown_target_column(files, earlier, capsys):
    usage_error(forecast(earlier, capsys, files["sine"], "--target", "valeu"),
                "unknown column 'valeu'", "date, value, cosine")


def test_missing_target(files, earlier, capsys):
    usage_error(forecast(earlier, capsys, files["sine"]), "--target COLUMN")


def test_unknown_feature_and_time_column(files, earlier, capsys):
    usage_error(forecast(earlier, capsys, files["sine"], "--target", "value", "--features", "cosine,sine"),
                "unknown column 'sine'")
    usage_error(forecast(earlier, capsys, files["sine"], "--target", "value", "--time-column", "day"),
                "unknown time column 'day'")


def test_non_numeric_value(files, earlier, capsys, tmp_path):
    def bad(rows):
        rows[8][1] = "12,5 kg"
    p = edit_csv(files["sine"], tmp_path / "bad.csv", bad)
    usage_error(forecast(earlier, capsys, p, "--target", "value"), "line 9", "column 'value'", "'12,5 kg' is not a number")


@pytest.mark.parametrize("cell", ["", "NaN"])
def test_empty_or_nan_cell_names_the_place_and_offers_fill(files, earlier, capsys, tmp_path, cell):
    def gap(rows):
        rows[21][1] = cell
        rows[30][1] = cell
    p = edit_csv(files["sine"], tmp_path / "gap.csv", gap)
    usage_error(forecast(earlier, capsys, p, "--target", "value", "--time-column", "date"),
                "column 'value' has 2 empty or NaN cell(s)", "line 22", "2021-01-21", "--fill ffill, interpolate or drop")
    rc, _, err = run_cli("train", "forecast", "--data", p, "--target", "value", "--fill", "interpolate", *TINY_FC,
                         "--max-steps", 1, "--out", tmp_path / "ok", capsys=capsys)
    assert rc == 0, err


def test_unknown_fill(files, earlier, capsys):
    usage_error(forecast(earlier, capsys, files["sine"], "--target", "value", "--fill", "backfill"),
                "unknown fill 'backfill'", "ffill")


def test_series_shorter_than_window_plus_horizon(earlier, capsys, tmp_path):
    p, _ = write_sine(tmp_path / "short.csv", n=12)
    usage_error(forecast(earlier, capsys, p, "--target", "value"),
                "the series has 12 rows; --window 10 + --horizon 3 needs at least 13")


def test_parts_too_short_for_a_window(earlier, capsys, tmp_path):
    p, _ = write_sine(tmp_path / "short.csv", n=16)  # 15 % valid, 15 % test: 2 rows each, 12 to train
    usage_error(forecast(earlier, capsys, p, "--target", "value"),
                "the train part (rows 0-11 of 16) has 12 rows; it needs at least --window + --horizon = 13", "smaller --window")
    usage_error(forecast(earlier, capsys, p, "--target", "value", "--window", 5),
                "the valid part (rows 12-13 of 16) has 2 rows; it needs at least --horizon = 3")


@pytest.mark.parametrize("what", ["unsorted", "duplicated"])
def test_unsorted_or_duplicated_time_column(files, earlier, capsys, tmp_path, what):
    def shuffle(rows):
        if what == "unsorted":
            rows[10], rows[11] = rows[11], rows[10]
        else:
            rows[11][0] = rows[10][0]
    p = edit_csv(files["sine"], tmp_path / f"{what}.csv", shuffle)
    needle = "is not sorted: '2021-01-10' at line 12 comes after '2021-01-11' at line 11" if what == "unsorted" \
        else "has a duplicate: '2021-01-10' at lines 11 and 12"
    usage_error(forecast(earlier, capsys, p, "--target", "value", "--time-column", "date"), needle)


def test_bad_time_value(files, earlier, capsys, tmp_path):
    p = edit_csv(files["sine"], tmp_path / "t.csv", lambda rows: rows[5].__setitem__(0, "next tuesday"))
    usage_error(forecast(earlier, capsys, p, "--target", "value", "--time-column", "date"),
                "line 6", "neither a number nor an ISO date")


def test_ragged_csv(files, earlier, capsys, tmp_path):
    p = edit_csv(files["sine"], tmp_path / "r.csv", lambda rows: rows[4].append("9"))
    usage_error(forecast(earlier, capsys, p, "--target", "value"), "line 5 has 4 cells; the header has 3")


def test_missing_data_file_and_bad_window(files, earlier, capsys, tmp_path):
    usage_error(forecast(earlier, capsys, tmp_path / "nope.csv", "--target", "value"), "does not exist")
    usage_error(forecast(earlier, capsys, files["sine"], "--target", "value", "--horizon", "0"),
                "--horizon must be >= 1")


# ---- classification --------------------------------------------------------------------------

def classify(earlier, capsys, path, *args):
    return train_over(earlier, capsys, "classify", "--data", path, *TINY_CL, "--max-steps", 2, *args)


def test_only_one_class(earlier, capsys, tmp_path):
    xs, _ = make_sequences(12)
    p = write_npz(tmp_path / "one.npz", xs, ["walk"] * 12)
    usage_error(classify(earlier, capsys, p), "only one class ('walk')", "at least 2")


def test_classify_unknown_columns(earlier, capsys, tmp_path):
    xs, labels = make_sequences(12)
    p = write_long_csv(tmp_path / "d.csv", xs, labels)
    usage_error(classify(earlier, capsys, p, "--label-column", "class"), "unknown label column (--label-column) 'class'")
    usage_error(classify(earlier, capsys, p, "--features", "a,z"), "unknown column 'z'")


def test_classify_nan_and_non_numeric(earlier, capsys, tmp_path):
    xs, labels = make_sequences(12)
    p = write_long_csv(tmp_path / "d.csv", xs, labels)
    q = edit_csv(p, tmp_path / "nan.csv", lambda rows: rows[7].__setitem__(3, ""))
    usage_error(classify(earlier, capsys, q, "--time-column", "t"), "column 'b'", "line 8", "sequence 's0'", "--fill")
    q = edit_csv(p, tmp_path / "txt.csv", lambda rows: rows[7].__setitem__(3, "high"))
    usage_error(classify(earlier, capsys, q), "line 8, column 'b': 'high' is not a number")


def test_classify_unsorted_time_within_a_sequence(earlier, capsys, tmp_path):
    xs, labels = make_sequences(12)
    p = write_long_csv(tmp_path / "d.csv", xs, labels)
    q = edit_csv(p, tmp_path / "u.csv", lambda rows: rows[3].__setitem__(1, "0"))
    usage_error(classify(earlier, capsys, q, "--time-column", "t"), "time column 't' is not sorted: '0' at line 4")


def test_npz_problems(earlier, capsys, tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, x=np.array([np.zeros(3), np.zeros(4)], dtype=object), y=np.array(["a", "b"]))
    usage_error(classify(earlier, capsys, p), "without unpickling")
    q = tmp_path / "nox.npz"
    np.savez(q, X=np.zeros((4, 5, 2)), y=np.array(["a", "b", "a", "b"]))
    usage_error(classify(earlier, capsys, q), "has no array 'x'")
    r = tmp_path / "len.npz"
    np.savez(r, x=np.zeros((2, 5, 2)), lengths=np.array([3, 9]), y=np.array(["a", "b"]))
    usage_error(classify(earlier, capsys, r), "'lengths' must be 2 integers in [1, 5]")


# ---- predict -------------------------------------------------------------------------------------

def test_predict_with_mismatched_feature_count(classify_run, capsys, tmp_path):
    xs, labels = make_sequences(6)
    p = write_npz(tmp_path / "two.npz", xs, labels, F=2)
    usage_error(run_cli("predict", classify_run, "--data", p, "--out", tmp_path / "p.csv", capsys=capsys),
                "has 2 features per step; the run was trained on 3")
    assert not (tmp_path / "p.csv").exists()


def test_predict_forecast_without_a_trained_column(files, earlier, capsys, tmp_path):
    p = edit_csv(files["sine"], tmp_path / "nocos.csv", lambda rows: [r.pop() for r in rows])
    run = tmp_path / "run"
    assert run_cli("train", "forecast", "--data", files["sine"], "--target", "value", "--features", "cosine",
                   *TINY_FC, "--max-steps", 1, "--out", run, capsys=capsys)[0] == 0
    usage_error(run_cli("predict", run, "--data", p, capsys=capsys), "unknown column 'cosine'")


def test_predict_on_a_series_shorter_than_the_window(earlier, capsys, tmp_path):
    p, _ = write_sine(tmp_path / "s.csv", n=5)
    usage_error(run_cli("predict", earlier, "--data", p, capsys=capsys), "has 5 rows", "--window = 10")


def test_predict_on_a_language_model_run(capsys, tmp_path):
    from cli_helpers import TINY, write_text
    run = tmp_path / "lm"
    assert run_cli("train", "charlm", "--data", write_text(tmp_path), *TINY, "--max-steps", 1, "--out", run,
                   capsys=capsys)[0] == 0
    usage_error(run_cli("predict", run, capsys=capsys), "is a charlm run", "forecast and classify")
