"""``lstmkit demo``: its claim (a plain RNN fails the long lag, an LSTM bridges it) and its outputs."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cli_helpers import ROOT, run_cli
from lstmkit.cli.demo import QUICK, train_and_score


@pytest.fixture(autouse=True)
def _reference_loop(monkeypatch):
    monkeypatch.setenv("LSTMKIT_ENGINE", "0")


def test_rnn_forgets_and_lstm_remembers_at_the_quick_lag():
    lstm, _ = train_and_score("lstm", QUICK["lag"], QUICK["steps"], seed=0)
    rnn, _ = train_and_score("rnn", QUICK["lag"], QUICK["steps"], seed=0)
    assert lstm > 0.9, lstm
    assert rnn < 0.5, rnn  # chance is 25%


def test_demo_writes_plots_samples_and_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    rc, stdout, err = run_cli("demo", "--quick", "--lag", 5, "--steps", 5, "--char-seconds", 1, "--out", out,
                              capsys=capsys)
    assert rc == 0, err
    for f in ("long_lag.png", "samples.txt", "summary.json", "charlm/curve.png", "charlm/checkpoint.json"):
        assert (out / f).is_file(), f
    s = json.loads((out / "summary.json").read_text())
    assert set(s["long_lag"]["accuracy"]) == {"rnn", "lstm", "gru"}
    assert str(out) in stdout and "Samples" in stdout
    assert not (out / "stdlib.txt").exists()
    # a second demo into the same directory is refused rather than mixed in
    rc, _, err = run_cli("demo", "--quick", "--out", out, capsys=capsys)
    assert rc == 2 and "already exists" in err


def test_core_imports_without_the_cli_extras():
    """``import lstmkit`` (and even ``lstmkit info``) needs only torch and numpy."""
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('tqdm', 'matplotlib', 'safetensors'):\n"
            "            raise ModuleNotFoundError(name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import lstmkit, lstmkit.train, lstmkit.tasks\n"
            "from lstmkit.cli import main\n"
            "assert main(['info']) == 0\n"
            "m = lstmkit.LSTM(3, 4)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
