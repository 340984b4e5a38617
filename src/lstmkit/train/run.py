"""One training run end to end: config + task -> run directory, checkpoints, curves, summary.

This is what ``lstmkit train`` calls; tests and scripts can call :func:`train` directly.
"""
from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import UsageError
from ..tasks import get_task
from . import checkpoint as ckpt
from . import distributed
from .callbacks import MetricsCSV, ProgressBar, TensorBoard, plot_curves
from .config import RunConfig, to_toml, validate
from .schedules import make_schedule
from .trainer import Trainer

RUN_FILES = ("checkpoint.json", "config.toml", "metrics.csv", "curve.png", "summary.json")


def set_threads(n: int) -> None:
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(cfg: RunConfig, params) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    if t.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


def check_fresh_run_dir(out: Path, force: bool) -> None:
    """UsageError unless ``out`` may be (over)written; nothing is deleted here."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file")
    if not any(out.iterdir()):
        return
    if not force:
        what = "a run" if ckpt.is_run(out) else "a non-empty directory"
        raise UsageError(f"--out {str(out)!r} is already {what}; give --force to overwrite it, "
                         f"or --resume to continue it")
    if not ckpt.is_run(out):
        raise UsageError(f"--out {str(out)!r} is a non-empty directory that is not an lstmkit run; "
                         f"refusing to delete it even with --force")


def clear_run_dir(out: Path, task=None) -> None:
    """Delete what a run writes (and only that) from ``out``."""
    names = set(RUN_FILES) | set(getattr(task, "run_files", ()))
    for f in out.iterdir():
        if f.name in names or f.suffix in (".safetensors", ".tmp") or f.name == "tensorboard":
            shutil.rmtree(f) if f.is_dir() else f.unlink()


def train(cfg: RunConfig, out, *, resume: bool = False, force: bool = False, callbacks=(),
          progress: bool = True) -> dict:
    """Train ``cfg`` into run directory ``out``; returns the summary (also in summary.json).

    Everything that can be wrong with the input (config, data, run directory) is checked
    before the run directory is touched, so a bad command never damages an earlier run.
    """
    out = Path(out)
    task = get_task(cfg.task)
    validate(cfg)
    if cfg.model.depth_gate and not task.supports_depth_gate:
        raise UsageError(f"--depth-gate is not available for task {cfg.task} (it is for charlm, wordlm, music "
                         f"and the long-lag tasks)")
    task.check_config(cfg)
    meta = ckpt.read_meta(out) if resume else None
    if not resume:
        check_fresh_run_dir(out, force)
    set_threads(cfg.train.threads)
    rank, world = distributed.setup(cfg.train.device)
    try:
        return _train(cfg, out, task, meta, rank, world, force, callbacks, progress)
    finally:
        distributed.teardown()


def _train(cfg, out, task, meta, rank, world, force, callbacks, progress) -> dict:
    state = task.state_from_json(meta["task_state"]) if meta else None
    data = task.load(cfg, state)
    task.check_sizes(cfg, data, world)
    state_tensors = ckpt.read_tensors(out, meta, "state") if meta else None
    best_tensors = ckpt.read_tensors(out, meta, "best") if meta and "best" in meta["files"] else None

    seed_everything(cfg.train.seed)
    model = task.build_model(cfg, data.state).to(cfg.train.device)
    if world > 1:
        torch.manual_seed(cfg.train.seed + rank)  # each process its own dropout masks
    optimizer = make_optimizer(cfg, model.parameters())
    t = cfg.train
    schedule = make_schedule(t.schedule, t.lr, t.decay, t.decay_start, t.plateau_patience)
    batches = task.batches(cfg, data, rank, world)
    evaluate_fn = None
    if data.valid is not None:
        def evaluate_fn(m, poll):
            return task.evaluate(m, data.valid, cfg, poll)

    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(model)

    def save_fn(trainer: Trainer) -> None:
        if rank != 0:
            return
        best = (trainer.state.best_step, trainer.best_weights) if trainer.best_weights is not None else None
        ckpt.save_checkpoint(out, model_state=model.state_dict(), optimizer=optimizer, carry=trainer.carry,
                             meta={"task": cfg.task, "config": cfg.to_dict(), "task_state": task.state_to_json(data.state),
                                   "trainer": trainer.state_dict(), "lstmkit": __version__,
                                   "torch": torch.__version__, "world_size": world},
                             best=best)

    if meta is None and rank == 0:  # every check has passed: now the run directory may change
        out.mkdir(parents=True, exist_ok=True)
        if force:
            clear_run_dir(out, task)
    distributed.barrier()

    cbs = list(callbacks)
    if rank == 0:
        cbs.append(MetricsCSV(out / "metrics.csv", task.metric_name, task.describe, t.log_every))
        cbs.append(TensorBoard(out / "tensorboard", task.metric_name, task.describe))
        if progress:
            total = t.epochs * len(batches) if t.epochs else None
            if t.max_steps:
                total = min(total, t.max_steps) if total else t.max_steps
            cbs.append(ProgressBar(task.metric_name, task.describe, t.log_every, total, unit=task.unit))
    trainer = Trainer(ddp_model, optimizer, t, batches, task.loss_fn(cfg), evaluate_fn, schedule, cbs, save_fn,
                      stop_fn=lambda tr: task.stop_reason(tr, data, cfg))

    if meta is not None:
        _restore(trainer, model, optimizer, meta, state_tensors, best_tensors, carry=rank == 0)
    if rank == 0:
        (out / "config.toml").write_text(to_toml(cfg))

    reason = trainer.fit()
    in_sync = distributed.ranks_in_sync(model)
    st = trainer.state
    summary = {
        "task": cfg.task, "run_dir": str(out), "stopped": reason, "steps": st.step,
        "epochs": round(st.epoch + st.window / max(len(batches), 1), 4), "tokens": st.tokens,
        "train_seconds": round(st.train_seconds, 2),
        "tokens_per_second": round(st.tokens / max(st.train_seconds, 1e-9) * world, 1),
        "metric": task.metric_name,
        "valid_loss": st.last_eval_loss, "best_valid_loss": st.best_loss, "best_step": st.best_step,
        f"valid_{task.metric_name}": None if st.last_eval_loss is None else task.describe(st.last_eval_loss),
        f"best_valid_{task.metric_name}": None if st.best_loss is None else task.describe(st.best_loss),
        "parameters": sum(p.numel() for p in model.parameters()),
        "world_size": world, "ranks_in_sync": in_sync,
    }
    if rank == 0 and reason != "interrupted":
        summary.update(_finish(task, model, trainer, data, cfg, out))
    if rank == 0:
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        if (out / "metrics.csv").is_file():
            plot_curves(out / "metrics.csv", out / "curve.png", f"{task.metric_name}",
                        f"{cfg.task} {cfg.model.cell} {cfg.model.layers}x{cfg.model.hidden}")
    if not in_sync:
        raise RuntimeError("DDP ranks ended with different parameters")
    return summary


def _finish(task, model, trainer, data, cfg, out: Path) -> dict:
    """The task's own report (test metrics, plots) on the best-validation weights, if any."""
    if trainer.best_weights is None:
        return task.finish(model, data, cfg, out)
    current = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(trainer.best_weights)
    try:
        return task.finish(model, data, cfg, out)
    finally:
        model.load_state_dict(current)


def _restore(trainer, model, optimizer, meta, state_tensors, best_tensors, carry: bool = True) -> None:
    """Load a checkpoint into the trainer. Exact for a single process. Under torchrun only rank 0's
    carried state and RNG are saved, so the other ranks resume from a zero state with their own seeds."""
    model_state, optim_tensors, carried, rng = ckpt.split_tensors(state_tensors)
    try:
        model.load_state_dict(model_state, strict=True)
        optimizer.load_state_dict(ckpt.optimizer_state(meta, optim_tensors))
    except (RuntimeError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0]
        raise UsageError(f"the checkpoint does not fit the model built from its config: {first}") from None
    trainer.load_state_dict(meta["trainer"])
    if best_tensors is not None:
        trainer.best_weights, _, _, _ = ckpt.split_tensors(best_tensors)
    if not carry:
        return
    if meta.get("carry"):
        device = next(model.parameters()).device
        parts = tuple(carried[i].to(device) for i in range(meta["carry"]["n"]))
        trainer.carry = parts if meta["carry"]["tuple"] else parts[0]
    ckpt.restore_rng(meta, rng)


def load_run(run_dir, which: str = "best"):
    """(task, config, task state, model in eval mode, meta) of a run, for generate / evaluate / predict.

    ``which``: "best" (the weights with the best validation loss, when there are any) or
    "last" (the latest checkpoint).
    """
    meta = ckpt.read_meta(run_dir)
    task = get_task(meta["task"])
    try:
        cfg = RunConfig.from_dict(meta["config"], f"{run_dir}/checkpoint.json")
        state = task.state_from_json(meta["task_state"])
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"checkpoint in {str(run_dir)!r} is corrupt: {e}") from None
    key = "best" if which == "best" and "best" in meta["files"] else "state"
    model_state, _, _, _ = ckpt.split_tensors(ckpt.read_tensors(run_dir, meta, key))
    model = task.build_model(cfg, state)
    try:
        model.load_state_dict(model_state, strict=True)
    except RuntimeError as e:
        raise UsageError(f"checkpoint in {str(run_dir)!r} does not fit its config: "
                         f"{str(e).strip().splitlines()[0]}") from None
    set_threads(cfg.train.threads)
    model.to(cfg.train.device).eval()
    return task, cfg, state, model, meta


def describe_time(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(seconds))
