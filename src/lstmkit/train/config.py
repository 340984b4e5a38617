"""Typed run configuration: dataclasses with commented defaults, named presets, TOML, flags.

Resolution order (timm's): the task's default preset (or ``--preset``), then a TOML
file (``--config``), then command-line flags. The resolved config is saved in the run
directory as ``config.toml``, which ``--config`` reads back.

A TOML config looks like::

    task = "charlm"
    preset = "char-small"
    [model]
    cell = "peephole"
    hidden = 256
    [train]
    lr = 0.002
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..registry import get_variant, variants


@dataclass
class ModelConfig:
    cell: str = "lstm"  # any of lstmkit.variants(): lstm, peephole, cifg, gru, rnn, ...
    layers: int = 2  # stacked recurrent layers
    hidden: int = 128  # hidden units per layer (H)
    embed: int = 0  # token embedding width; 0 = same as hidden
    proj: int = 0  # LSTMP projection width (Sak et al. 2014), LSTM family only; 0 = none
    bidirectional: bool = False  # only for tasks that see the whole input; never for language models
    depth_gate: bool = False  # depth gates between stacked LSTM layers (Yao et al. 2015): LSTM family, layers >= 2
    dropout: float = 0.0  # on embeddings, between layers and before the decoder (Zaremba et al. 2014)
    recurrent_dropout: float = 0.0  # variational dropout on h_{t-1} (Gal & Ghahramani 2016)
    zoneout: float = 0.0  # zoneout rate on h and c (Krueger et al. 2016)
    tie_weights: bool = False  # decoder weight = embedding weight (Press & Wolf 2017)
    init_range: float = 0.0  # > 0: every parameter ~ U(-r, r) (Zaremba); 0: the layer's own init


@dataclass
class DataConfig:
    path: str = ""  # charlm: a UTF-8 text file; wordlm: a directory with train/valid/test.txt
    valid_fraction: float = 0.1  # charlm: the last fraction of the file is the validation split


@dataclass
class TrainConfig:
    optimizer: str = "adam"  # "adam", "sgd" or "rmsprop" (torch defaults: alpha 0.99, eps 1e-8)
    lr: float = 2e-3  # initial learning rate
    momentum: float = 0.0  # SGD momentum (0 = plain SGD)
    weight_decay: float = 0.0  # L2 penalty added by the optimizer
    schedule: str = "none"  # "none", "step" (decay each epoch from decay_start) or "plateau"
    decay: float = 0.5  # lr multiplier at each decay
    decay_start: int = 0  # step schedule: decay at the end of every epoch >= this one (Zaremba: 4)
    plateau_patience: int = 0  # plateau schedule: validations without improvement before a decay
    clip: float = 5.0  # maximum global gradient norm (Pascanu et al. 2013); 0 = no clipping
    batch_size: int = 32  # sequences per step (per process under torchrun)
    seq_len: int = 64  # truncated-BPTT window: tokens per step and sequence
    eval_batch_size: int = 10  # sequences per step when validating and testing
    loss_reduction: str = "mean"  # "mean" per token, or "sum-time": summed over the window, mean over batch (Zaremba's code)
    epochs: int = 10  # passes over the training split; 0 = no limit (then max_steps or time_budget)
    max_steps: int = 0  # stop after this many optimiser steps; 0 = no limit
    time_budget: float = 0.0  # stop after this many seconds of training in this invocation; 0 = no limit
    eval_every: int = 0  # optimiser steps between validations; 0 = at the end of each epoch
    early_stopping: int = 0  # stop after this many validations without improvement; 0 = off
    checkpoint_every: int = 0  # optimiser steps between checkpoints; 0 = at each validation
    log_every: int = 50  # optimiser steps between rows of metrics.csv
    seed: int = 0  # seeds torch, random and numpy; the same seed gives the same loss curve on CPU
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", ...
    threads: int = 1  # torch CPU threads; 0 = torch's default. The recurrent loop is latency-bound: more
    # threads help only wide layers, and on a busy machine spinning OpenMP threads cost up to 50x


@dataclass
class RunConfig:
    task: str = "charlm"  # a registered task: lstmkit info lists them
    preset: str = ""  # the preset this config started from, for the record
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    options: object = None  # the task's own settings: an instance of its Options dataclass, or None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if self.options is None:
            d.pop("options")
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "config") -> "RunConfig":
        cfg = cls()
        apply_dict(cfg, d, where)
        return cfg


SECTIONS = ("model", "data", "train")  # the sections every task has; a task's Options are [options]

# Named presets: (task, summary, overrides by section). minGPT-style dicts on top of the defaults.
PRESETS: dict[str, tuple[str, str, dict]] = {
    "char-small": ("charlm", "2x128 LSTM, Adam 2e-3, windows of 64 characters: minutes on a laptop CPU", {
        "model": dict(layers=2, hidden=128),
        "train": dict(optimizer="adam", lr=2e-3, batch_size=32, seq_len=64, epochs=10, clip=5.0),
    }),
    # Sized for the reference run, 15 minutes on 2 CPU cores: a 2x256 model got through less
    # than one epoch of Tiny Shakespeare in that time; 2x128 sees about four times as much text.
    "char-shakespeare": ("charlm", "2x128 LSTM, Adam 2e-3, windows of 100, plateau decay: Tiny Shakespeare in 15 CPU minutes", {
        "model": dict(layers=2, hidden=128, dropout=0.0),
        "train": dict(optimizer="adam", lr=2e-3, batch_size=32, seq_len=100, epochs=50, clip=5.0,
                      eval_every=250, schedule="plateau", decay=0.5, plateau_patience=2),
    }),
    "ptb-small": ("wordlm", "Zaremba et al. 2014 small, non-regularised: 2x200, SGD lr 1 halved after epoch 4, 13 epochs", {
        "model": dict(layers=2, hidden=200, dropout=0.0, init_range=0.1),
        "train": dict(optimizer="sgd", lr=1.0, momentum=0.0, schedule="step", decay=0.5, decay_start=4,
                      clip=5.0, batch_size=20, seq_len=20, eval_batch_size=20, loss_reduction="sum-time",
                      epochs=13),
    }),
    "ptb-medium": ("wordlm", "Zaremba et al. 2014 medium: 2x650, dropout 0.5, SGD lr 1 / 1.2 after epoch 6, 39 epochs", {
        "model": dict(layers=2, hidden=650, dropout=0.5, init_range=0.05),
        "train": dict(optimizer="sgd", lr=1.0, momentum=0.0, schedule="step", decay=1 / 1.2, decay_start=6,
                      clip=5.0, batch_size=20, seq_len=35, eval_batch_size=20, loss_reduction="sum-time",
                      epochs=39),
    }),
}

OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULES = ("none", "step", "plateau")
REDUCTIONS = ("mean", "sum-time")


def register_preset(name: str, task: str, summary: str, overrides: dict) -> None:
    """Add a named preset (task modules call this on import, next to register_task)."""
    if name in PRESETS:
        raise ValueError(f"preset {name!r} is already registered")
    PRESETS[name] = (task, summary, overrides)


def default_options(task: str):
    """A fresh instance of the task's Options dataclass, or None when the task has none."""
    from ..tasks import get_task  # tasks import this module: resolve at call time
    options = get_task(task).Options
    return options() if options is not None else None


def preset_names(task: str | None = None) -> list[str]:
    return [n for n, (t, _, _) in PRESETS.items() if task is None or t == task]


def from_preset(name: str) -> RunConfig:
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; expected one of: {', '.join(PRESETS)}")
    task, _, overrides = PRESETS[name]
    cfg = RunConfig(task=task, preset=name, options=default_options(task))
    apply_dict(cfg, overrides, f"preset {name}")
    return cfg


def apply_dict(cfg: RunConfig, d: dict, where: str) -> None:
    """Set ``cfg``'s fields from a nested dict {task, preset, model: {...}, ...}, checking names and types."""
    for key, value in sorted(d.items(), key=lambda kv: kv[0] != "task"):  # the task first: it decides [options]
        if key in ("task", "preset"):
            if not isinstance(value, str):
                raise UsageError(f"{where}: {key} must be a string; got {value!r}")
            if key == "task" and (value != cfg.task or cfg.options is None):
                cfg.options = default_options(value)
            setattr(cfg, key, value)
        elif key in SECTIONS or key == "options":
            if not isinstance(value, dict):
                raise UsageError(f"{where}: [{key}] must be a table")
            if key == "options" and cfg.options is None:
                if value:
                    raise UsageError(f"{where}: task {cfg.task!r} has no [options]")
                continue
            section = getattr(cfg, key)
            names = [f.name for f in dataclasses.fields(section)]
            for k, v in value.items():
                if k not in names:
                    raise UsageError(f"{where}: unknown key {key}.{k}; expected one of: {', '.join(names)}")
                setattr(section, k, _coerce(getattr(section, k), v, f"{where}: {key}.{k}"))
        else:
            raise UsageError(f"{where}: unknown key {key!r}; expected task, preset or a "
                             f"[{'], ['.join(SECTIONS + ('options',))}] table")


def _coerce(default, value, what: str):
    """``value`` converted to the type of the field's default, or a UsageError."""
    kind = type(default)
    if kind is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{what} must be true or false; got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{what} must be an integer; got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{what} must be a number; got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise UsageError(f"{what} must be a string; got {value!r}")
    return value


def load_toml(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"config file {path!r} does not exist")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise UsageError("reading TOML configs on Python 3.10 needs the tomli package") from None
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"config file {path!r} is not valid TOML: {e}") from None


def to_toml(cfg: RunConfig) -> str:
    """The config as TOML (flat tables of str/int/float/bool: all a RunConfig holds)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return repr(v)
    lines = ["# lstmkit resolved run config: `lstmkit train --config` reads it back",
             f"task = {value(cfg.task)}", f"preset = {value(cfg.preset)}"]
    sections = SECTIONS + (("options",) if cfg.options is not None else ())
    for s in sections:
        lines += ["", f"[{s}]"] + [f"{k} = {value(v)}" for k, v in dataclasses.asdict(getattr(cfg, s)).items()]
    return "\n".join(lines) + "\n"


def validate(cfg: RunConfig) -> None:
    """UsageError naming the first bad value (sizes, rates, names)."""
    m, t, d = cfg.model, cfg.train, cfg.data
    if m.cell not in variants():
        raise UsageError(f"unknown cell {m.cell!r}; expected one of: {', '.join(variants())}")
    positive = {"--layers": m.layers, "--hidden": m.hidden, "--batch-size": t.batch_size,
                "--seq-len": t.seq_len, "--eval-batch-size": t.eval_batch_size}
    for flag, v in positive.items():
        if v < 1:
            raise UsageError(f"{flag} must be >= 1; got {v}")
    nonneg = {"--embed": m.embed, "--proj": m.proj, "--epochs": t.epochs, "--max-steps": t.max_steps,
              "--eval-every": t.eval_every, "--early-stopping": t.early_stopping,
              "--checkpoint-every": t.checkpoint_every, "--threads": t.threads, "--decay-start": t.decay_start,
              "--plateau-patience": t.plateau_patience, "--log-every": t.log_every}
    for flag, v in nonneg.items():
        if v < 0:
            raise UsageError(f"{flag} must be >= 0; got {v}")
    if m.depth_gate and (get_variant(m.cell).family != "lstm" or m.layers < 2):
        raise UsageError(f"--depth-gate needs an LSTM-family cell and --layers >= 2; got --cell {m.cell} with "
                         f"--layers {m.layers}")
    if m.proj and get_variant(m.cell).family != "lstm":
        raise UsageError(f"--proj needs an LSTM-family cell; {m.cell!r} is a {get_variant(m.cell).family}")
    if m.proj >= m.hidden:
        raise UsageError(f"--proj must be smaller than --hidden={m.hidden}; got {m.proj}")
    for flag, v in (("--dropout", m.dropout), ("--recurrent-dropout", m.recurrent_dropout),
                    ("--zoneout", m.zoneout), ("valid_fraction", d.valid_fraction)):
        if not (0 <= v < 1) or math.isnan(v):
            raise UsageError(f"{flag} must be in [0, 1); got {v}")
    for flag, v in (("--lr", t.lr), ("--decay", t.decay)):
        if not v > 0 or math.isinf(v):
            raise UsageError(f"{flag} must be a positive number; got {v}")
    for flag, v in (("--momentum", t.momentum), ("--weight-decay", t.weight_decay), ("--clip", t.clip),
                    ("--time-budget", t.time_budget), ("--init-range", m.init_range)):
        if not v >= 0 or math.isinf(v):
            raise UsageError(f"{flag} must be >= 0; got {v}")
    for flag, v, allowed in (("--optimizer", t.optimizer, OPTIMIZERS), ("--schedule", t.schedule, SCHEDULES),
                             ("loss_reduction", t.loss_reduction, REDUCTIONS)):
        if v not in allowed:
            raise UsageError(f"unknown {flag.lstrip('-')} {v!r}; expected one of: {', '.join(allowed)}")
    if cfg.options is not None:
        for f in dataclasses.fields(cfg.options):
            choices, v = f.metadata.get("choices", ()), getattr(cfg.options, f.name)
            if choices and v not in choices:
                raise UsageError(f"unknown {f.name.replace('_', '-')} {v!r}; expected one of: "
                                 f"{', '.join(map(str, choices))}")
    if t.epochs == 0 and t.max_steps == 0 and t.time_budget == 0:
        raise UsageError("nothing to train: --epochs, --max-steps and --time-budget are all 0")
