"""The trainer: determinism, exact resumption, Ctrl-C, schedules, early stopping, checkpoints."""
from __future__ import annotations

import csv
import json
import math
import signal

import pytest
import torch

from cli_helpers import TINY, run_cli, write_text
from lstmkit.train import Callback, StepOutput, Trainer, TrainConfig
from lstmkit.train import checkpoint as ckpt
from lstmkit.train.schedules import ReduceOnPlateau, StepDecay


@pytest.fixture(autouse=True)
def _reference_loop(monkeypatch):
    monkeypatch.setenv("LSTMKIT_ENGINE", "0")  # no compile step inside these tests


def _losses(run, split=None):
    with open(run / "metrics.csv", newline="") as f:
        return [(r["step"], r["split"], r["loss"]) for r in csv.DictReader(f) if split in (None, r["split"])]


def _final_tensors(run):
    meta = ckpt.read_meta(run)
    return meta, ckpt.read_tensors(run, meta, "state")


class InterruptAt(Callback):
    """Sends this process SIGINT after the given step, as Ctrl-C would."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, metrics):
        if trainer.state.step == self.step:
            signal.raise_signal(signal.SIGINT)


def test_same_seed_same_curve_other_seed_other_curve(tmp_path, capsys):
    data = write_text(tmp_path)
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        rc, _, err = run_cli("train", "charlm", "--data", data, *TINY, "--max-steps", 12, "--seed", seed,
                             "--dropout", 0.2, "--layers", 2, "--out", tmp_path / name, capsys=capsys)
        assert rc == 0, err
        runs[name] = _losses(tmp_path / name)
    assert runs["a"] == runs["b"]
    assert len(runs["a"]) == 12 + 3  # a train row per step, a valid row at steps 5, 10, 12
    assert runs["a"] != runs["c"]


# Each config crosses an epoch boundary (10 steps per epoch) and is interrupted mid-epoch,
# so the carried hidden state, the RNG (dropout), the optimiser and the schedule must all resume.
RESUME_CONFIGS = {
    "adam-plateau-dropout": ["--layers", 2, "--dropout", 0.3, "--recurrent-dropout", 0.2, "--schedule", "plateau",
                             "--plateau-patience", 0],
    "sgd-momentum-step": ["--optimizer", "sgd", "--lr", 0.5, "--momentum", 0.9, "--schedule", "step",
                          "--decay-start", 1, "--cell", "gru", "--zoneout", 0.1, "--clip", 0.5],
}


@pytest.mark.parametrize("name", RESUME_CONFIGS)
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, capsys, name):
    from lstmkit.train.run import train

    data = write_text(tmp_path)
    flags = ["--data", data, *TINY, "--max-steps", 25, *RESUME_CONFIGS[name]]
    rc, _, err = run_cli("train", "charlm", *flags, "--out", tmp_path / "whole", capsys=capsys)
    assert rc == 0, err

    # The same run, interrupted by SIGINT after step 13, then resumed from the command line.
    from lstmkit.cli.train import resolve_config
    from lstmkit.cli import build_parser
    args = build_parser().parse_args(["train", "charlm", *map(str, flags), "--out", str(tmp_path / "cut")])
    summary = train(resolve_config(args), tmp_path / "cut", callbacks=[InterruptAt(13)], progress=False)
    assert summary["stopped"] == "interrupted" and summary["steps"] == 13
    assert ckpt.read_meta(tmp_path / "cut")["trainer"]["train_state"]["step"] == 13
    rc, _, err = run_cli("train", "charlm", "--out", tmp_path / "cut", "--resume", capsys=capsys)
    assert rc == 0, err

    whole, cut = json.loads((tmp_path / "whole" / "summary.json").read_text()), \
        json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert cut["steps"] == whole["steps"] == 25
    assert cut["valid_loss"] == whole["valid_loss"]  # bit for bit, not approximately
    assert _losses(tmp_path / "cut") == _losses(tmp_path / "whole")
    (_, a), (_, b) = _final_tensors(tmp_path / "whole"), _final_tensors(tmp_path / "cut")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_extends_a_finished_run(tmp_path, capsys):
    data = write_text(tmp_path)
    run = tmp_path / "run"
    assert run_cli("train", "charlm", "--data", data, *TINY, "--max-steps", 6, "--out", run, capsys=capsys)[0] == 0
    rc, out, err = run_cli("train", "charlm", "--out", run, "--resume", "--max-steps", 9, capsys=capsys)
    assert rc == 0, err
    assert json.loads((run / "summary.json").read_text())["steps"] == 9
    # only the latest state file is kept
    assert len(list(run.glob("state-*.safetensors"))) == 1


def test_checkpoint_commit_is_atomic(tmp_path, capsys, monkeypatch):
    """A crash while committing leaves the previous checkpoint readable and complete."""
    data = write_text(tmp_path)
    run = tmp_path / "run"
    assert run_cli("train", "charlm", "--data", data, *TINY, "--max-steps", 5, "--out", run, capsys=capsys)[0] == 0
    before = (run / "checkpoint.json").read_bytes()
    import os
    real_replace = os.replace

    def crash_on_commit(src, dst):
        if str(dst).endswith("checkpoint.json"):
            raise OSError("simulated crash")
        return real_replace(src, dst)
    monkeypatch.setattr(ckpt.os, "replace", crash_on_commit)
    with pytest.raises(OSError):
        run_cli("train", "charlm", "--out", run, "--resume", "--max-steps", 10, capsys=capsys)
    monkeypatch.setattr(ckpt.os, "replace", real_replace)
    assert (run / "checkpoint.json").read_bytes() == before
    meta = ckpt.read_meta(run)
    ckpt.read_tensors(run, meta, "state")  # the file it names is still there, hash intact
    rc, out, err = run_cli("evaluate", run, capsys=capsys)
    assert rc == 0, err


def test_checkpoints_never_unpickle(tmp_path, capsys, monkeypatch):
    data = write_text(tmp_path)
    run = tmp_path / "run"
    assert run_cli("train", "charlm", "--data", data, *TINY, "--max-steps", 5, "--out", run, capsys=capsys)[0] == 0

    def forbidden(*a, **k):
        raise AssertionError("torch.load / pickle must not be used on checkpoints")
    monkeypatch.setattr(torch, "load", forbidden)
    import pickle
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    for args in (("evaluate", run), ("generate", run, "--length", 5),
                 ("train", "charlm", "--out", run, "--resume", "--max-steps", 7)):
        rc, _, err = run_cli(*args, capsys=capsys)
        assert rc == 0, err
    assert {p.suffix for p in run.iterdir() if p.is_file()} <= {".json", ".safetensors", ".toml", ".csv", ".png"}


# ---- the Trainer on its own: model-agnostic, with callbacks ---------------------------------

class _Batches:
    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 8, 3, generator=g)
        self.y = self.x.sum(-1, keepdim=True)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _regression_loss(model, batch, carry):
    x, y = batch
    loss = torch.nn.functional.mse_loss(model(x), y)
    return StepOutput(loss, loss.item(), len(x), None)


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_step_end(self, trainer, metrics):
        self.events.append(("step", trainer.state.step, trainer.lr))

    def on_eval_end(self, trainer, metrics):
        self.events.append(("eval", trainer.state.step, metrics["loss"]))

    def on_train_end(self, trainer, reason):
        self.events.append(("end", reason))


def test_trainer_is_model_agnostic_and_early_stops():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    cfg = TrainConfig(optimizer="sgd", lr=0.1, epochs=50, early_stopping=2, eval_every=2)
    losses = iter([1.0, 0.5, 0.6, 0.7, 0.1])  # best at the 2nd validation, then 2 worse ones
    rec = Recorder()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), cfg, _Batches(5), _regression_loss,
                      lambda m, poll: next(losses), callbacks=[rec])
    assert trainer.fit() == "early stopping"
    assert trainer.state.step == 8 and trainer.state.best_step == 4 and trainer.state.best_loss == 0.5
    assert [e for e in rec.events if e[0] == "eval"] == [("eval", 2, 1.0), ("eval", 4, 0.5), ("eval", 6, 0.6),
                                                          ("eval", 8, 0.7)]
    assert rec.events[-1] == ("end", "early stopping")


def test_trainer_clips_gradient_norm():
    model = torch.nn.Linear(3, 1)
    norms = []

    class Norms(Callback):
        def on_step_end(self, trainer, metrics):
            norms.append(metrics["grad_norm"])
            total = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
            assert total <= 1e-3 * (1 + 1e-5)

    big = _Batches(3)
    big.y = big.y * 1000  # huge gradients
    Trainer(model, torch.optim.SGD(model.parameters(), lr=1e-9), TrainConfig(epochs=1, clip=1e-3), big,
            _regression_loss, callbacks=[Norms()]).fit()
    assert len(norms) == 3 and all(n > 1 for n in norms)  # the pre-clipping norm is reported


def test_step_decay_halves_after_start_epoch():
    s = StepDecay(1.0, 0.5, start=4)  # Zaremba's small model: lr 1 for 4 epochs, then halved each epoch
    lrs = [s.epoch_end(e) for e in range(1, 8)]
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.25, 0.125, 0.0625]


def test_plateau_decays_after_patience():
    s = ReduceOnPlateau(1.0, 0.1, patience=1)
    lrs = [s.validated(v) for v in (3.0, 2.0, 2.5, 2.4, 1.0, 1.5, 1.6)]
    assert [round(x, 12) for x in lrs] == [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01]
    t = ReduceOnPlateau(1.0, 0.1, patience=1)
    t.load_state_dict(json.loads(json.dumps(s.state_dict())))
    assert t.lr == s.lr and t.best == s.best and t.bad == s.bad


def test_max_steps_and_time_budget_stop(tmp_path, capsys):
    data = write_text(tmp_path)
    rc, out, err = run_cli("train", "charlm", "--data", data, *TINY, "--time-budget", 1e-9, "--out",
                           tmp_path / "t", capsys=capsys)
    assert rc == 0, err
    s = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert s["stopped"] == "time budget" and s["steps"] == 0 and math.isfinite(s["valid_loss"])
