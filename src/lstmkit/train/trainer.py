"""A model-agnostic trainer with callbacks, truncated BPTT and exact resumption.

The trainer knows nothing about tasks. It is given:

* ``batches``: an indexable sequence (``len`` = batches per epoch, ``batches[i]`` = the
  i-th batch). Indexing instead of iterating is what makes resuming exact: a checkpoint
  stores (epoch, index), and the resumed run asks for the same next batch.
* ``loss_fn(model, batch, carry) -> StepOutput``: the loss to back-propagate, its value
  per token for logging, the token count, and the recurrent state to carry into the next
  batch (stateful language models; ``None`` otherwise). The carried state is detached
  after every step: that is truncated BPTT, with gradients flowing through one window.
* ``evaluate_fn(model, poll) -> float``: mean validation loss per token. ``poll()``
  raises if the user pressed Ctrl-C, so a long validation stops promptly.

Ctrl-C (SIGINT) only sets a flag; the trainer stops at the next step boundary, where the
model, optimiser, carried state and RNGs are consistent, and the caller saves a
checkpoint there. A second Ctrl-C raises KeyboardInterrupt at once.
"""
from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, NamedTuple

import torch
import torch.distributed
from torch import nn

from ..errors import UsageError
from ..models.lm import detach_state
from .config import TrainConfig
from .schedules import Schedule


def _any_rank(*flags: bool) -> tuple[bool, ...]:
    """Each flag OR-ed over all processes (a no-op without torch.distributed)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return flags
    t = torch.tensor([float(f) for f in flags])
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())


class StepOutput(NamedTuple):
    loss: torch.Tensor  # what backward() is called on
    value: float  # mean loss per token (nats), for logging
    count: int  # tokens (predictions) in the batch
    carry: object = None  # recurrent state for the next batch, or None


class Diverged(UsageError):
    """The training loss became NaN or infinite (reported like bad input: one line, exit code 2)."""


class Interrupted(Exception):
    """Raised inside the trainer by ``poll()`` after Ctrl-C."""


@dataclass
class TrainState:
    """Progress counters: everything besides tensors that resuming needs."""

    step: int = 0  # optimiser steps taken
    epoch: int = 0  # epochs completed
    window: int = 0  # batches done in the current epoch
    tokens: int = 0  # training tokens seen
    evals: int = 0  # validations run
    best_loss: float | None = None  # best validation loss so far
    best_step: int = 0  # step at which it was reached
    bad_evals: int = 0  # validations since the best one (early stopping)
    last_eval_step: int = -1  # step of the latest validation
    last_eval_loss: float | None = None
    train_seconds: float = 0.0  # wall-clock seconds in training, summed over invocations


class Callback:
    """Hooks, all optional. ``trainer.state`` holds the counters; metrics are floats."""

    def on_train_start(self, trainer: "Trainer") -> None: ...
    def on_step_end(self, trainer: "Trainer", metrics: dict) -> None: ...
    def on_eval_end(self, trainer: "Trainer", metrics: dict) -> None: ...
    def on_epoch_end(self, trainer: "Trainer") -> None: ...
    def on_checkpoint(self, trainer: "Trainer") -> None: ...
    def on_train_end(self, trainer: "Trainer", reason: str) -> None: ...


class Trainer:
    """Runs the optimisation loop. See the module docstring for the contract.

    Args:
        model: the module to train (possibly wrapped in DistributedDataParallel).
        optimizer: a torch optimizer over ``model``'s parameters.
        config: the TrainConfig (stopping, clipping, evaluation and checkpoint cadence).
        batches, loss_fn, evaluate_fn: as in the module docstring.
        schedule: the lr schedule (its ``lr`` is applied to every param group).
        callbacks: Callback objects, called in order.
        save_fn: ``save_fn(trainer)`` writes a checkpoint; called at each validation (or
            every ``checkpoint_every`` steps), at the end and on Ctrl-C.
        stop_fn: ``stop_fn(trainer) -> str | None``, asked before every step (and at each
            epoch boundary): a non-empty string stops training and is the reason ``fit``
            returns, e.g. "solved" when a task's success criterion was met at the latest
            validation. Called on every process; under torchrun it must agree across ranks.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig, batches,
                 loss_fn: Callable[..., StepOutput], evaluate_fn: Callable | None = None,
                 schedule: Schedule | None = None, callbacks=(), save_fn: Callable | None = None,
                 stop_fn: Callable[["Trainer"], str | None] | None = None):
        self.model, self.optimizer, self.config = model, optimizer, config
        self.batches, self.loss_fn, self.evaluate_fn = batches, loss_fn, evaluate_fn
        self.schedule = schedule or Schedule(config.lr)
        self.callbacks = list(callbacks)
        self.save_fn = save_fn
        self.stop_fn = stop_fn
        self.state = TrainState()
        self.carry = None  # recurrent state carried between batches of an epoch
        self.best_weights: dict | None = None  # CPU copy of the best model's state_dict
        self.interrupted = False
        self._start = time.perf_counter()
        self._set_lr(self.schedule.lr)

    # ---- public -----------------------------------------------------------------------

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def elapsed(self) -> float:
        """Seconds spent training in this invocation."""
        return time.perf_counter() - self._start

    def poll(self) -> None:
        if self.interrupted:
            raise Interrupted

    def fit(self) -> str:
        """Train until a stopping rule fires; returns why: "epochs", "max steps",
        "time budget", "early stopping", "interrupted", or the reason ``stop_fn`` gave."""
        self._start = time.perf_counter()
        seconds_before = self.state.train_seconds
        previous = self._install_sigint()
        for cb in self.callbacks:
            cb.on_train_start(self)
        try:
            reason = self._loop()
            if reason != "interrupted" and self.evaluate_fn and self.state.last_eval_step != self.state.step:
                self._validate()
                if self.stop_fn is not None:  # e.g. "solved" by this last validation
                    reason = self.stop_fn(self) or reason
        except Interrupted:
            reason = "interrupted"
        finally:
            self._restore_sigint(previous)
            self.state.train_seconds = seconds_before + self.elapsed()
        self.save()
        for cb in self.callbacks:
            cb.on_train_end(self, reason)
        return reason

    def save(self) -> None:
        if self.save_fn is not None:
            self.save_fn(self)
            for cb in self.callbacks:
                cb.on_checkpoint(self)

    # ---- the loop ---------------------------------------------------------------------

    def _loop(self) -> str:
        cfg, st = self.config, self.state
        while True:
            reason = self.stop_fn(self) if self.stop_fn is not None else None
            if reason:
                return reason
            if cfg.epochs and st.epoch >= cfg.epochs:
                return "epochs"
            if hasattr(self.batches, "set_epoch"):  # batches reshuffled per epoch, reproducibly on resume
                self.batches.set_epoch(st.epoch)
            while st.window < len(self.batches):
                reason = self._stop_reason()
                if reason:
                    return reason
                self._step(self.batches[st.window])
                if cfg.eval_every and st.step % cfg.eval_every == 0 and self.evaluate_fn:
                    self._validate(save=not cfg.checkpoint_every)
                    if self._early_stop():
                        return "early stopping"
                if cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0:
                    self.save()
            reason = self._stop_reason(epoch_end=True)
            if reason:
                return reason
            self._end_epoch()
            if self._early_stop():
                return "early stopping"

    def _stop_reason(self, epoch_end: bool = False) -> str | None:
        cfg = self.config
        # Ctrl-C and the clock differ between processes: under torchrun every rank must
        # agree to stop at the same step, or the others would wait forever in all-reduce.
        interrupted, out_of_time = _any_rank(self.interrupted,
                                             bool(cfg.time_budget) and self.elapsed() >= cfg.time_budget)
        if interrupted:
            self.interrupted = True
            return "interrupted"
        if epoch_end:  # the epoch's batches are done: finish the epoch before honouring limits
            return None
        reason = self.stop_fn(self) if self.stop_fn is not None else None
        if reason:
            return reason
        if cfg.max_steps and self.state.step >= cfg.max_steps:
            return "max steps"
        if out_of_time:
            return "time budget"
        return None

    def _step(self, batch) -> None:
        cfg, st = self.config, self.state
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        out = self.loss_fn(self.model, batch, self.carry)
        out.loss.backward()
        grad_norm = None
        if cfg.clip > 0:  # rescale the whole gradient when its norm exceeds clip (Pascanu et al. 2013)
            grad_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip))
        self.optimizer.step()
        self.carry = detach_state(out.carry)  # truncated BPTT: no gradient into the previous window
        st.step += 1
        st.window += 1
        st.tokens += out.count
        metrics = {"loss": out.value, "tokens": out.count, "grad_norm": grad_norm}
        if not math.isfinite(out.value):
            raise Diverged(f"training diverged: the loss became {out.value} at step {st.step}; "
                           f"try a smaller --lr or --clip")
        for cb in self.callbacks:
            cb.on_step_end(self, metrics)

    def _validate(self, save: bool = False) -> float:
        st = self.state
        model = getattr(self.model, "module", self.model)  # DDP: evaluate the wrapped module
        loss = float(self.evaluate_fn(model, self.poll))
        st.evals += 1
        st.last_eval_step, st.last_eval_loss = st.step, loss
        if st.best_loss is None or loss < st.best_loss:
            st.best_loss, st.best_step, st.bad_evals = loss, st.step, 0
            self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            st.bad_evals += 1
        self._set_lr(self.schedule.validated(loss))
        for cb in self.callbacks:
            cb.on_eval_end(self, {"loss": loss})
        if save:
            self.save()
        return loss

    def _end_epoch(self) -> None:
        cfg, st = self.config, self.state
        if not cfg.eval_every and self.evaluate_fn:
            self._validate()
        st.epoch += 1
        st.window = 0
        self.carry = None  # each epoch starts from the zero state, at the start of the text
        self._set_lr(self.schedule.epoch_end(st.epoch))
        for cb in self.callbacks:
            cb.on_epoch_end(self)
        if not cfg.checkpoint_every:
            self.save()

    def _early_stop(self) -> bool:
        return bool(self.config.early_stopping) and self.state.bad_evals >= self.config.early_stopping

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    # ---- Ctrl-C -------------------------------------------------------------------------

    def _install_sigint(self):
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            if self.interrupted:  # second Ctrl-C: stop now
                raise KeyboardInterrupt
            self.interrupted = True

        return signal.signal(signal.SIGINT, handler)

    @staticmethod
    def _restore_sigint(previous) -> None:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)

    # ---- (de)serialising the non-tensor state -------------------------------------------

    def state_dict(self) -> dict:
        return {"train_state": asdict(self.state), "schedule": self.schedule.state_dict()}

    def load_state_dict(self, d: dict) -> None:
        self.state = TrainState(**d["train_state"])
        self.schedule.load_state_dict(d["schedule"])
        self._set_lr(self.schedule.lr)


