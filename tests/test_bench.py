"""``lstmkit bench`` (lstmkit/bench.py): runs, writes JSON rows and the docs table; bad input.

Tiny shapes and one repetition: this checks the plumbing, never a speed.
"""
from __future__ import annotations

import json

import pytest

from cli_helpers import run_cli
from lstmkit import bench, engine


@pytest.fixture
def needs_engine():
    if not engine.available():
        pytest.skip("lstmkit bench times the compiled engine, which is unavailable here")


def test_bench_writes_rows_and_the_doc_table(tmp_path, capsys, needs_engine):
    doc = tmp_path / "perf.md"
    doc.write_text(f"# speed\n\n{bench.BEGIN}\nSTALE-TABLE\n{bench.END}\n\ntail\n")
    out = tmp_path / "speed.json"
    rc, _, err = run_cli("bench", "--shapes", "6,2,4,8", "--reps", 1, "--warmup", 0, "--only", "lstm", "gru",
                         "--stream-sizes", "--json", out, "--doc", doc, capsys=capsys)
    assert rc == 0, err
    res = json.loads(out.read_text())
    names = {(r["name"], r["mode"]) for r in res["rows"]}
    assert {("nn.LSTM", "train"), ("lstm", "infer"), ("gru", "train")} <= names
    base = {r["mode"]: r for r in res["rows"] if r["name"] == "nn.LSTM"}
    for r in res["rows"]:  # every ratio is relative to nn.LSTM in the same run
        assert r["ratio"] == pytest.approx(r["ms"] / base[r["mode"]]["ms"])
    text = doc.read_text()
    assert "STALE-TABLE" not in text and text.endswith("\n\ntail\n") and "| lstm |" in text


@pytest.mark.parametrize("argv, needle", [
    (["--shapes", "5,2,4"], "four positive integers"),
    (["--shapes", "5,2,x,4"], "four positive integers"),
    (["--reps", "0", "--no-doc"], "--reps must be >= 1"),
    (["--doc", "no/such/doc.md"], "does not exist"),
])
def test_bench_bad_input(argv, needle, capsys, tmp_path):
    rc, _, err = run_cli("bench", *argv, "--json", tmp_path / "x.json", capsys=capsys)
    assert rc == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.json").exists()
