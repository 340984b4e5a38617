"""The lstmkit command end to end: train, generate, evaluate, info, configs, Ctrl-C."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from cli_helpers import SHARED_DATA, TINY, run_cli, run_subprocess, subprocess_env, write_ptb, write_text
from lstmkit.cli import build_parser
from lstmkit.train import PRESETS, from_preset
from lstmkit.train import checkpoint as ckpt


@pytest.fixture(autouse=True)
def _reference_loop(monkeypatch):
    monkeypatch.setenv("LSTMKIT_ENGINE", "0")


def test_every_flag_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and "train" in a.choices)
    assert set(sub.choices) >= {"train", "generate", "evaluate", "info", "demo"}
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help, f"lstmkit {name} {action.option_strings or action.dest} has no help text"


def test_info_lists_variants_tasks_presets(capsys):
    import lstmkit
    rc, out, _ = run_cli("info", capsys=capsys)
    assert rc == 0
    for name in [*lstmkit.variants(), "charlm", "wordlm", *PRESETS]:
        assert any(line.split()[0] == name for line in out.splitlines() if line.strip()), name


def test_presets_are_what_the_papers_say():
    small = from_preset("ptb-small")
    assert (small.task, small.model.layers, small.model.hidden, small.train.seq_len, small.train.batch_size,
            small.train.optimizer, small.train.lr, small.train.decay, small.train.decay_start, small.train.clip,
            small.train.epochs, small.model.init_range, small.model.dropout) == \
        ("wordlm", 2, 200, 20, 20, "sgd", 1.0, 0.5, 4, 5.0, 13, 0.1, 0.0)
    medium = from_preset("ptb-medium")
    assert (medium.model.hidden, medium.model.dropout, medium.train.epochs, medium.train.seq_len,
            medium.train.decay_start, medium.model.init_range) == (650, 0.5, 39, 35, 6, 0.05)
    assert abs(medium.train.decay - 1 / 1.2) < 1e-12


def test_charlm_train_generate_evaluate(tmp_path, capsys):
    data = write_text(tmp_path)
    run = tmp_path / "run"
    rc, out, err = run_cli("train", "charlm", "--data", data, *TINY, "--max-steps", 10, "--out", run, capsys=capsys)
    assert rc == 0, err
    assert "bpc" in out and str(run) in out
    for f in ("checkpoint.json", "config.toml", "metrics.csv", "curve.png", "summary.json"):
        assert (run / f).is_file(), f
    s = json.loads((run / "summary.json").read_text())
    assert s["steps"] == 10 and s["valid_bpc"] == pytest.approx(s["valid_loss"] / 0.6931471805599453)

    rc, out, err = run_cli("generate", run, "--prime", "First", "--length", 40, "--temperature", 0.8,
                           "--top-k", 5, "--seed", 1, capsys=capsys)
    assert rc == 0, err
    assert out.startswith("First") and len(out.rstrip("\n")) >= 40
    rc, out2, _ = run_cli("generate", run, "--prime", "First", "--length", 40, "--temperature", 0.8,
                          "--top-k", 5, "--seed", 1, capsys=capsys)
    assert out2 == out  # seeded sampling
    rc, greedy, _ = run_cli("generate", run, "--length", 20, "--temperature", 0, capsys=capsys)
    assert rc == 0

    rc, out, err = run_cli("evaluate", run, capsys=capsys)
    assert rc == 0, err
    assert "valid: loss" in out and "bpc" in out
    rc, out, err = run_cli("evaluate", run, "--split", "test", "--data", data, capsys=capsys)
    assert rc == 0 and "test: loss" in out


def test_config_file_then_flags_and_saved_config_reads_back(tmp_path, capsys):
    data = write_text(tmp_path)
    toml = tmp_path / "c.toml"
    toml.write_text(f'task = "charlm"\npreset = "char-small"\n[model]\nhidden = 12\ncell = "gru"\n'
                    f'[data]\npath = "{data}"\n[train]\nlr = 0.01\nseq_len = 16\nbatch_size = 4\nmax_steps = 3\n'
                    f'epochs = 0\n')
    run = tmp_path / "run"
    rc, _, err = run_cli("train", "charlm", "--config", toml, "--hidden", 10, "--out", run, capsys=capsys)
    assert rc == 0, err
    meta = ckpt.read_meta(run)
    c = meta["config"]
    assert (c["model"]["hidden"], c["model"]["cell"], c["train"]["lr"], c["train"]["max_steps"]) == (10, "gru", 0.01, 3)
    assert c["model"]["layers"] == from_preset("char-small").model.layers  # from the preset
    # the saved config.toml reproduces the run
    rc, _, err = run_cli("train", "charlm", "--config", run / "config.toml", "--out", tmp_path / "again", capsys=capsys)
    assert rc == 0, err
    assert ckpt.read_meta(tmp_path / "again")["config"] == c


def test_wordlm_reports_perplexity_and_test_split(tmp_path, capsys):
    d = write_ptb(tmp_path)
    run = tmp_path / "run"
    rc, out, err = run_cli("train", "wordlm", "--data", d, "--hidden", 16, "--layers", 1, "--seq-len", 8,
                           "--batch-size", 4, "--max-steps", 8, "--eval-every", 4, "--out", run, capsys=capsys)
    assert rc == 0, err
    assert "ppl" in out
    rc, out, err = run_cli("evaluate", run, "--split", "test", capsys=capsys)
    assert rc == 0, err
    assert out.startswith("test: loss") and "ppl" in out
    rc, out, err = run_cli("generate", run, "--prime", "the cat", "--length", 10, capsys=capsys)
    assert rc == 0 and out.startswith("the cat")


@pytest.mark.skipif(not (SHARED_DATA / "ptb" / "train.txt").is_file(), reason="../shared/data/ptb is absent")
def test_ptb_small_preset_runs_on_real_ptb(tmp_path, capsys):
    """ptb-small end to end on the real data, a few steps only (the full run is in docs/results.md)."""
    run = tmp_path / "run"
    rc, out, err = run_cli("train", "wordlm", "--data", SHARED_DATA / "ptb", "--preset", "ptb-small",
                           "--max-steps", 3, "--eval-batch-size", 400, "--out", run, capsys=capsys)
    assert rc == 0, err
    s = json.loads((run / "summary.json").read_text())
    assert s["parameters"] == 4_653_200  # Zaremba's small model: 10k x 200 embedding + 2 LSTM layers + decoder


def test_python_dash_m_and_ctrl_c_saves_and_exits_cleanly(tmp_path):
    data = write_text(tmp_path)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "lstmkit", "train", "charlm", "--data", str(data), *map(str, TINY),
                             "--max-steps", "100000", "--eval-every", "0", "--out", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # wait until it is training (a few metrics rows)
            csv = run / "metrics.csv"
            if csv.is_file() and len(csv.read_text().splitlines()) > 3:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted at step" in err and "--resume" in err
    step = ckpt.read_meta(run)["trainer"]["train_state"]["step"]
    assert step > 0
    r = run_subprocess("train", "charlm", "--out", run, "--resume", "--max-steps", step + 2)
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "summary.json").read_text())["steps"] == step + 2
