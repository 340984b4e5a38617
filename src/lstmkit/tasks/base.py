"""The contract between a task and the trainer, the run directory and the CLI.

A task turns a :class:`~lstmkit.train.config.RunConfig` into data, a model, batches, a
loss and an evaluation; :func:`lstmkit.train.run.train` does the rest (optimiser, loop,
checkpoints, curves). Everything a trained model needs besides its weights (a
vocabulary, a normaliser fitted on the training split, class names) is the task's
*state*: ``load`` fits it, ``state_to_json`` / ``state_from_json`` carry it through
``checkpoint.json``, and ``build_model`` takes it.

Task-specific settings live in the task's ``Options`` dataclass (a comment on each
default, as in ``config.py``). They are the ``[options]`` table of a TOML config and
become ``lstmkit train TASK --flag`` options: field ``time_column`` is ``--time-column``.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path


def option(default, help: str, choices: tuple = ()):
    """A field of a task's Options dataclass: its default, its --help text and its allowed values.

    Example::

        @dataclass
        class Options:
            horizon: int = option(1, "steps ahead to forecast")
            fill: str = option("none", "what to do with empty cells", ("none", "ffill", "interpolate", "drop"))
    """
    return dataclasses.field(default=default, metadata={"help": help, "choices": tuple(choices)})


class Task(ABC):
    name = ""  # what `lstmkit train NAME` takes
    summary = ""  # one line for `lstmkit info`
    default_preset = ""  # a preset of this task (config.register_preset), used without --preset
    metric_name = "loss"  # what describe() returns: "bpc", "ppl", "nll", "mse", ...
    unit = "token"  # what StepOutput.count counts ("character", "word", "sequence", "frame", ...)
    loss_in_nats = True  # the loss is a negative log-likelihood per unit (False: e.g. a squared error)
    data_help = ""  # what --data means for this task
    Options = None  # a dataclass of task-specific settings, or None
    next_commands: tuple = ("evaluate",)  # subcommands `lstmkit train` suggests for the finished run
    supports_depth_gate = False  # whether build_model passes cfg.model.depth_gate to its layer
    run_files: tuple = ()  # file names finish() writes into the run directory (--force deletes them)

    def check_config(self, cfg) -> None:
        """UsageError for settings this task cannot use (called before any file is read)."""
        return None

    @abstractmethod
    def load(self, cfg, state=None):
        """The data: an object with ``state``, ``train`` and ``valid`` (``valid`` may be None).

        ``state`` is given when a run is resumed or evaluated: reuse it instead of fitting a new one.
        """

    def check_sizes(self, cfg, data, world: int = 1) -> None:
        """UsageError when the data cannot fill one batch (called before the run directory changes)."""
        return None

    @abstractmethod
    def state_to_json(self, state) -> dict:
        """The task state as JSON-able builtins (it is stored in checkpoint.json, never pickled)."""

    @abstractmethod
    def state_from_json(self, d: dict):
        """Inverse of :meth:`state_to_json`."""

    @abstractmethod
    def build_model(self, cfg, state):
        """A fresh ``nn.Module`` for this config and state (its weights are then trained or loaded)."""

    @abstractmethod
    def batches(self, cfg, data, rank: int = 0, world: int = 1):
        """An indexable sequence of training batches for one epoch (see ``train/trainer.py``)."""

    @abstractmethod
    def loss_fn(self, cfg):
        """``loss_fn(model, batch, carry) -> StepOutput``."""

    @abstractmethod
    def evaluate(self, model, split, cfg, poll=lambda: None) -> float:
        """Mean loss per counted unit on one split (``data.valid``, or what ``eval_data`` returns)."""

    @abstractmethod
    def describe(self, loss: float) -> float:
        """The reported metric (``metric_name``) for a mean loss."""

    def stop_reason(self, trainer, data, cfg) -> str | None:
        """Asked before every training step: a non-empty string stops the run with that reason.

        E.g. "solved" once the latest validation met the task's success criterion (the
        long-time-lag tasks), or "budget" once a budget of training sequences is spent.
        """
        return None

    def finish(self, model, data, cfg, out: Path) -> dict:
        """After training, on the best weights: test metrics, plots, files in the run directory.

        Returns entries for summary.json; whatever it prints is shown by ``lstmkit train``.
        """
        return {}

    def evaluate_command(self, args, model, cfg, state, meta) -> int:
        """``lstmkit evaluate``: the loss and metric on ``args.split`` (or other data, ``args.data``)."""
        split = self.eval_data(cfg, state, args.split, args.data)
        loss = self.evaluate(model, split, cfg)
        print(f"{args.split}: loss {loss:.4f}, {self.metric_name} {self.describe(loss):.4f}")
        return 0

    def generate_command(self, args, model, cfg, state) -> int:
        """``lstmkit generate``: what this task generates (text, a MIDI file); by default nothing."""
        from ..errors import UsageError
        raise UsageError(f"task {self.name} does not generate; `lstmkit generate` is for language models and music")

    def predict(self, model, cfg, state, path: str | None, out: Path) -> str:
        """``lstmkit predict``: write predictions for ``path`` (or the run's own test data) to ``out``;
        returns a line for the user. Only the time-series tasks predict."""
        from ..errors import UsageError
        raise UsageError(f"lstmkit predict works on forecast and classify runs; this is a {self.name} run")

    def eval_data(self, cfg, state, split: str, path: str | None):
        """The split ``lstmkit evaluate`` evaluates on (``path``: other data given with --data)."""
        from ..errors import UsageError
        raise UsageError(f"task {self.name} has no `lstmkit evaluate`; its metrics are in the run's summary.json")
