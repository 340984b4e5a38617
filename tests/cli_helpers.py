"""Shared bits of the CLI / trainer tests: tiny corpora, tiny configs, running the command."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from lstmkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# ~3 KB of text: 10 windows of 32 x 8 characters per epoch with the TINY settings.
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 20

# A tiny model and short run: each step takes milliseconds.
TINY = ["--hidden", "16", "--layers", "1", "--seq-len", "32", "--batch-size", "8", "--log-every", "1",
        "--eval-every", "5"]

PTB_LINES = ["the cat sat on the mat", "a dog ran after the cat", "the mat was red",
             "no one saw the dog", "the cat and the dog are friends now"]


def write_text(tmp: Path, name: str = "text.txt", text: str = TEXT) -> Path:
    p = tmp / name
    p.write_text(text, encoding="utf-8")
    return p


def write_ptb(tmp: Path, splits=("train", "valid", "test"), repeat: int = 30) -> Path:
    d = tmp / "ptb"
    d.mkdir(exist_ok=True)
    for i, s in enumerate(splits):
        lines = PTB_LINES * (repeat if s == "train" else 4)
        (d / f"{s}.txt").write_text("\n".join(lines[i:] + lines[:i]) + "\n")
    return d


def run_cli(*args, capsys=None) -> tuple[int, str, str]:
    """``lstmkit ARGS`` in this process: (exit code, stdout, stderr)."""
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse errors
        rc = e.code
    out, err = capsys.readouterr() if capsys is not None else ("", "")
    return rc, out, err


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("LSTMKIT_ENGINE", "0")
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_subprocess(*args, timeout: float = 120, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lstmkit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=subprocess_env(), cwd=cwd)


def fingerprint(run: Path) -> dict:
    """SHA-256 of every file in a run directory: what a failing command must leave unchanged."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.iterdir()) if p.is_file()}


def assert_usage_error(result, *needles) -> str:
    """The bad-input contract: exit code 2, one line on stderr naming the problem, no traceback."""
    rc, out, err = result
    lines = err.strip().splitlines()
    assert rc == 2, (rc, out, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err and "error:" in lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def train_over(earlier: Path, capsys, *args):
    """``lstmkit train ... --out EARLIER --force``: must fail before touching the earlier run."""
    before = fingerprint(earlier)
    result = run_cli("train", *args, "--out", earlier, "--force", capsys=capsys)
    assert fingerprint(earlier) == before, "a failing command changed the earlier run"
    return result
