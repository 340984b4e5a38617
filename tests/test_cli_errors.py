"""Bad input to the lstmkit command: exit code 2, one line on stderr naming the problem,
no traceback, and no earlier run overwritten (the train cases all aim --force at one)."""
from __future__ import annotations

import json

import pytest

import lstmkit
from cli_helpers import (TINY, assert_usage_error, fingerprint, run_cli, run_subprocess, train_over, write_ptb,
                         write_text)
from lstmkit.train import PRESETS


@pytest.fixture(autouse=True)
def _reference_loop(monkeypatch):
    monkeypatch.setenv("LSTMKIT_ENGINE", "0")


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """An earlier charlm run, which no failing command may change."""
    tmp = tmp_path_factory.mktemp("earlier")
    data = write_text(tmp)
    run = tmp / "run"
    assert run_cli("train", "charlm", "--data", data, *TINY, "--max-steps", 3, "--out", run) == (0, "", "")
    return run


# ---- data files ------------------------------------------------------------------------------

def test_missing_data_file(tmp_path, earlier, capsys):
    assert_usage_error(train_over(earlier, capsys, "charlm", "--data", tmp_path / "nope.txt"), "does not exist")


def test_empty_data_file(tmp_path, earlier, capsys):
    p = tmp_path / "empty.txt"
    p.write_bytes(b"")
    assert_usage_error(train_over(earlier, capsys, "charlm", "--data", p), "is empty")


def test_binary_data_file(tmp_path, earlier, capsys):
    p = tmp_path / "model.bin"
    p.write_bytes(bytes(range(256)) * 20)
    assert_usage_error(train_over(earlier, capsys, "charlm", "--data", p), "binary")


def test_non_utf8_data_file(tmp_path, earlier, capsys):
    p = tmp_path / "latin1.txt"
    p.write_bytes("café au lait, naïve façade\n".encode("latin-1") * 100)
    assert_usage_error(train_over(earlier, capsys, "charlm", "--data", p), "not UTF-8", "0xe9")


def test_ptb_dir_without_valid(tmp_path, earlier, capsys):
    d = write_ptb(tmp_path, splits=("train", "test"))
    assert_usage_error(train_over(earlier, capsys, "wordlm", "--data", d), "valid.txt")


def test_data_too_short_for_one_batch(tmp_path, earlier, capsys):
    p = write_text(tmp_path, text="tiny text\n" * 10)
    line = assert_usage_error(train_over(earlier, capsys, "charlm", "--data", p, "--seq-len", 32,
                                         "--batch-size", 8), "too short", "264")  # (32 + 1) x 8
    assert "at least" in line


# ---- names and numbers ----------------------------------------------------------------------------

def test_unknown_task(capsys):
    assert_usage_error(run_cli("train", "poetry", capsys=capsys), "poetry", "charlm, wordlm")


def test_unknown_cell(tmp_path, earlier, capsys):
    data = write_text(tmp_path)
    assert_usage_error(train_over(earlier, capsys, "charlm", "--data", data, "--cell", "lstn"),
                       "lstn", ", ".join(lstmkit.variants()))


def test_unknown_preset(tmp_path, earlier, capsys):
    data = write_text(tmp_path)
    assert_usage_error(train_over(earlier, capsys, "charlm", "--data", data, "--preset", "huge"),
                       "huge", ", ".join(PRESETS))


@pytest.mark.parametrize("flag,value,needle", [("--hidden", 0, "--hidden must be >= 1"),
                                               ("--lr", -0.1, "--lr must be a positive number"),
                                               ("--seq-len", 0, "--seq-len must be >= 1"),
                                               ("--dropout", 1.5, "--dropout"),
                                               ("--hidden", "abc", "invalid int value")])
def test_bad_numbers(tmp_path, earlier, capsys, flag, value, needle):
    data = write_text(tmp_path)
    assert_usage_error(train_over(earlier, capsys, "charlm", "--data", data, flag, value), needle)


def test_bidirectional_language_model(tmp_path, earlier, capsys):
    data = write_text(tmp_path)
    assert_usage_error(train_over(earlier, capsys, "charlm", "--data", data, "--bidirectional"), "--bidirectional")


# ---- run directories and checkpoints ---------------------------------------------------------------

def test_existing_run_without_force(tmp_path, earlier, capsys):
    data = write_text(tmp_path)
    before = fingerprint(earlier)
    assert_usage_error(run_cli("train", "charlm", "--data", data, "--out", earlier, capsys=capsys),
                       "--force", "--resume")
    assert fingerprint(earlier) == before


def test_force_overwrites_a_run(tmp_path, capsys):
    data = write_text(tmp_path)
    run = tmp_path / "run"
    assert run_cli("train", "charlm", "--data", data, *TINY, "--max-steps", 2, "--out", run, capsys=capsys)[0] == 0
    assert run_cli("train", "charlm", "--data", data, *TINY, "--max-steps", 1, "--out", run, "--force",
                   capsys=capsys)[0] == 0
    assert json.loads((run / "summary.json").read_text())["steps"] == 1


@pytest.mark.parametrize("command", ["generate", "evaluate", "resume"])
def test_directory_that_is_not_a_run(tmp_path, capsys, command):
    d = tmp_path / "photos"
    d.mkdir()
    (d / "cat.jpg").write_bytes(b"\xff\xd8")
    args = ("train", "charlm", "--out", d, "--resume") if command == "resume" else (command, d)
    assert_usage_error(run_cli(*args, capsys=capsys), "not an lstmkit run")


def _copy_run(earlier, tmp_path):
    import shutil
    run = tmp_path / "copy"
    shutil.copytree(earlier, run)
    return run


@pytest.mark.parametrize("damage", ["truncated-state", "garbage-json", "truncated-json", "missing-state"])
@pytest.mark.parametrize("command", ["generate", "evaluate", "resume"])
def test_corrupt_or_truncated_checkpoint(tmp_path, earlier, capsys, damage, command):
    run = _copy_run(earlier, tmp_path)
    state = next(run.glob("state-*.safetensors"))
    meta = run / "checkpoint.json"
    if damage == "truncated-state":
        state.write_bytes(state.read_bytes()[:100])
    elif damage == "garbage-json":
        meta.write_bytes(b"\x00\x01garbage")
    elif damage == "truncated-json":
        meta.write_bytes(meta.read_bytes()[:200])
    else:
        state.unlink()
    args = ("train", "charlm", "--out", run, "--resume") if command == "resume" else (command, run, "--last")
    before = fingerprint(run)
    assert_usage_error(run_cli(*args, capsys=capsys), "checkpoint")
    assert fingerprint(run) == before


def test_resume_as_another_task(tmp_path, earlier, capsys):
    run = _copy_run(earlier, tmp_path)
    before = fingerprint(run)
    assert_usage_error(run_cli("train", "wordlm", "--out", run, "--resume", capsys=capsys), "charlm", "wordlm")
    assert fingerprint(run) == before


def test_resume_with_another_variant(tmp_path, earlier, capsys):
    run = _copy_run(earlier, tmp_path)
    before = fingerprint(run)
    assert_usage_error(run_cli("train", "charlm", "--out", run, "--resume", "--cell", "gru", capsys=capsys),
                       "'lstm'", "gru")
    assert fingerprint(run) == before


def test_resume_checkpoint_whose_weights_are_another_variant(tmp_path, earlier, capsys):
    """A checkpoint.json edited to claim another variant no longer fits its weights."""
    run = _copy_run(earlier, tmp_path)
    meta = json.loads((run / "checkpoint.json").read_text())
    meta["config"]["model"]["cell"] = "gru"
    (run / "checkpoint.json").write_text(json.dumps(meta))
    assert_usage_error(run_cli("train", "charlm", "--out", run, "--resume", capsys=capsys), "does not fit")


def test_prime_with_unknown_characters(earlier, capsys):
    line = assert_usage_error(run_cli("generate", earlier, "--prime", "Zebra ☃", capsys=capsys),
                              "--prime", "never saw")
    assert "☃" in line


@pytest.mark.parametrize("flags", [["--out", "piece.mid"], ["--steps", "8"]])
def test_music_flags_on_a_language_model(earlier, capsys, flags):
    assert_usage_error(run_cli("generate", earlier, *flags, capsys=capsys), "for music runs")


def test_exit_code_and_stderr_of_the_real_command(tmp_path):
    """The same contract through a real process: exit status 2, one line, no traceback."""
    r = run_subprocess("train", "charlm", "--data", tmp_path / "missing.txt", "--out", tmp_path / "run")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()
