"""Callbacks: progress bar, metrics CSV, TensorBoard (when installed), learning-curve plot."""
from __future__ import annotations

import csv
import math
import sys
import time
from pathlib import Path
from typing import Callable

from .trainer import Callback, Trainer
from ..plots import pyplot, save_figure

CSV_FIELDS = ["step", "epoch", "split", "loss", "metric", "metric_value", "lr", "tokens_per_s", "elapsed_s"]


class _Rate:
    """Training loss and tokens/s averaged since the last ``take()``."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.loss_sum, self.tokens, self.steps, self.t0 = 0.0, 0, 0, time.perf_counter()

    def add(self, m: dict):
        self.loss_sum += m["loss"] * m["tokens"]
        self.tokens += m["tokens"]
        self.steps += 1

    def take(self) -> tuple[float, float]:
        loss = self.loss_sum / max(self.tokens, 1)
        rate = self.tokens / max(time.perf_counter() - self.t0, 1e-9)
        self.reset()
        return loss, rate


class MetricsCSV(Callback):
    """``metrics.csv``: a train row every ``log_every`` steps and a valid row per validation.

    On resume, rows past the checkpoint's step (written after it, then lost) are dropped.
    """

    def __init__(self, path: Path, metric_name: str, describe: Callable[[float], float], log_every: int):
        self.path, self.metric_name, self.describe, self.log_every = Path(path), metric_name, describe, log_every
        self.rate = _Rate()

    def on_train_start(self, trainer: Trainer) -> None:
        rows = []
        if self.path.is_file():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= trainer.state.step]
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, CSV_FIELDS)
            w.writeheader()
            w.writerows(rows)
        self.rate.reset()

    def _write(self, trainer: Trainer, split: str, loss: float, rate: float | str = "") -> None:
        st = trainer.state
        epoch = st.epoch + st.window / max(len(trainer.batches), 1)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, CSV_FIELDS).writerow(dict(
                step=st.step, epoch=f"{epoch:.4f}", split=split, loss=f"{loss:.6f}", metric=self.metric_name,
                metric_value=f"{self.describe(loss):.6f}", lr=f"{trainer.lr:.6g}",
                tokens_per_s=f"{rate:.1f}" if rate != "" else "",
                elapsed_s=f"{st.train_seconds + trainer.elapsed():.2f}"))

    def on_step_end(self, trainer: Trainer, metrics: dict) -> None:
        self.rate.add(metrics)
        if self.log_every and trainer.state.step % self.log_every == 0:
            loss, rate = self.rate.take()
            self._write(trainer, "train", loss, rate)
            trainer.last_train = (loss, rate)

    def on_eval_end(self, trainer: Trainer, metrics: dict) -> None:
        self._write(trainer, "valid", metrics["loss"])


class TensorBoard(Callback):
    """Scalars to TensorBoard, only if ``tensorboard`` is installed (else does nothing)."""

    def __init__(self, log_dir: Path, metric_name: str, describe: Callable[[float], float]):
        self.writer = None
        self.metric_name, self.describe = metric_name, describe
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # ModuleNotFoundError, or tensorboard's own import errors
            return
        self.writer = SummaryWriter(str(log_dir))

    def on_step_end(self, trainer: Trainer, metrics: dict) -> None:
        if self.writer:
            self.writer.add_scalar("train/loss", metrics["loss"], trainer.state.step)
            self.writer.add_scalar("train/lr", trainer.lr, trainer.state.step)

    def on_eval_end(self, trainer: Trainer, metrics: dict) -> None:
        if self.writer:
            self.writer.add_scalar("valid/loss", metrics["loss"], trainer.state.step)
            self.writer.add_scalar(f"valid/{self.metric_name}", self.describe(metrics["loss"]), trainer.state.step)

    def on_train_end(self, trainer: Trainer, reason: str) -> None:
        if self.writer:
            self.writer.close()


class ProgressBar(Callback):
    """tqdm bar (on a terminal) with loss, bpc/ppl, units/s and ETA; plain lines otherwise.

    Without a terminal (logs, CI) it prints one line every ``log_every`` steps instead.
    Validation results are always printed as a line. ``unit`` is what the task counts (its
    ``Task.unit``): the rate reads "tok/s", "seq/s", "frame/s", ...
    """

    _SHORT = {"token": "tok", "character": "char", "sequence": "seq"}

    def __init__(self, metric_name: str, describe: Callable[[float], float], log_every: int, total: int | None,
                 stream=None, unit: str = "token"):
        self.metric_name, self.describe, self.log_every, self.total = metric_name, describe, log_every, total
        self.rate_unit = self._SHORT.get(unit, unit) + "/s"
        self.stream = stream or sys.stderr
        self.rate = _Rate()
        self.bar = None

    def on_train_start(self, trainer: Trainer) -> None:
        self.rate.reset()
        if not self.stream.isatty():
            return
        try:
            from tqdm import tqdm
        except ModuleNotFoundError:
            return
        self.bar = tqdm(total=self.total, initial=trainer.state.step, unit="step", file=self.stream,
                        dynamic_ncols=True, leave=True)

    def _fmt(self, loss: float) -> str:
        v = self.describe(loss)
        return f"{self.metric_name} {v:.3f}" if math.isfinite(v) else f"{self.metric_name} inf"

    def on_step_end(self, trainer: Trainer, metrics: dict) -> None:
        self.rate.add(metrics)
        every = max(1, min(self.log_every, 10)) if self.bar else self.log_every
        if not every or trainer.state.step % every:
            return
        loss, rate = self.rate.take()
        st = trainer.state
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {loss:.3f}, {self._fmt(loss)}, {rate:,.0f} {self.rate_unit}, ep {st.epoch + 1}",
                                     refresh=False)
            self.bar.update(st.step - self.bar.n)
        else:
            print(f"step {st.step:>7}  epoch {st.epoch + 1:>3}  train loss {loss:.4f}  {self._fmt(loss)}  "
                  f"lr {trainer.lr:.3g}  {rate:,.0f} {self.rate_unit}  {trainer.elapsed():.0f} s", flush=True)

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, flush=True)

    def on_eval_end(self, trainer: Trainer, metrics: dict) -> None:
        st = trainer.state
        best = " (best)" if st.best_step == st.step else ""
        self._line(f"step {st.step:>7}  epoch {st.epoch + 1:>3}  valid loss {metrics['loss']:.4f}  "
                   f"{self._fmt(metrics['loss'])}  lr {trainer.lr:.3g}{best}")

    def on_train_end(self, trainer: Trainer, reason: str) -> None:
        if self.bar is not None:
            self.bar.close()


def plot_curves(csv_path: Path, png_path: Path, metric_name: str, title: str) -> bool:
    """Learning curves (train and valid loss per step) from metrics.csv; False without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    series: dict[str, tuple[list, list]] = {"train": ([], []), "valid": ([], [])}
    with open(csv_path, newline="") as f:
        for r in csv.DictReader(f):
            xs, ys = series[r["split"]]
            xs.append(int(r["step"]))
            ys.append(float(r["metric_value"]))
    fig, ax = plt.subplots(figsize=(6, 4))
    for split, (xs, ys) in series.items():
        if xs:
            ax.plot(xs, ys, "-" if split == "train" else "o-", label=split, markersize=3)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(metric_name)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, png_path)
    return True
