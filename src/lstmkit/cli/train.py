"""``lstmkit train TASK``: train a model; the run directory gets checkpoints, metrics and curves.

Config resolution: the task's default preset (or ``--preset``), then ``--config FILE``
(TOML), then flags. One table, :data:`FLAGS`, maps each flag to its config field.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import UsageError
from ..registry import variants
from ..tasks import get_task, option_fields, tasks
from ..train import checkpoint as ckpt
from ..train import distributed
from ..train.config import PRESETS, RunConfig, apply_dict, from_preset, load_toml

# (flag, section, field, type, help). Every flag defaults to None = "not given".
FLAGS = [
    ("--cell", "model", "cell", str, "cell variant: " + ", ".join(variants())),
    ("--layers", "model", "layers", int, "stacked recurrent layers"),
    ("--hidden", "model", "hidden", int, "hidden units per layer"),
    ("--embed", "model", "embed", int, "token embedding width (0 = --hidden)"),
    ("--proj", "model", "proj", int, "LSTMP projection width, LSTM cells only (0 = none)"),
    ("--dropout", "model", "dropout", float, "dropout on embeddings, between layers and before the decoder"),
    ("--recurrent-dropout", "model", "recurrent_dropout", float, "variational dropout on h_{t-1}"),
    ("--zoneout", "model", "zoneout", float, "zoneout rate on the recurrent state"),
    ("--init-range", "model", "init_range", float, "initialise every parameter from U(-r, r) (0 = layer default)"),
    ("--data", "data", "path", str, "charlm: a UTF-8 text file; wordlm: a directory with train/valid/test.txt; "
                                    "music: a .json piano-roll file or a directory of .mid files"),
    ("--valid-fraction", "data", "valid_fraction", float, "charlm: fraction of the file (its end) used to validate; "
                                                         "music: of a MIDI directory's pieces, for valid and for test"),
    ("--optimizer", "train", "optimizer", str, "adam, sgd or rmsprop"),
    ("--lr", "train", "lr", float, "initial learning rate"),
    ("--momentum", "train", "momentum", float, "SGD momentum"),
    ("--weight-decay", "train", "weight_decay", float, "L2 weight decay"),
    ("--schedule", "train", "schedule", str, "lr schedule: none, step (decay each epoch from --decay-start) or plateau"),
    ("--decay", "train", "decay", float, "lr multiplier at each decay"),
    ("--decay-start", "train", "decay_start", int, "step schedule: first epoch after which the lr decays"),
    ("--plateau-patience", "train", "plateau_patience", int, "plateau schedule: validations without improvement"),
    ("--clip", "train", "clip", float, "maximum gradient norm (0 = no clipping)"),
    ("--batch-size", "train", "batch_size", int, "sequences per step (per process under torchrun)"),
    ("--seq-len", "train", "seq_len", int, "truncated-BPTT window length in tokens"),
    ("--eval-batch-size", "train", "eval_batch_size", int, "sequences per step when validating"),
    ("--epochs", "train", "epochs", int, "passes over the training data (0 = no limit)"),
    ("--max-steps", "train", "max_steps", int, "stop after this many optimiser steps"),
    ("--time-budget", "train", "time_budget", float, "stop after this many seconds of training"),
    ("--eval-every", "train", "eval_every", int, "steps between validations (0 = each epoch)"),
    ("--early-stopping", "train", "early_stopping", int, "stop after this many validations without improvement"),
    ("--checkpoint-every", "train", "checkpoint_every", int, "steps between checkpoints (0 = at each validation)"),
    ("--log-every", "train", "log_every", int, "steps between progress lines and metrics.csv rows"),
    ("--seed", "train", "seed", int, "random seed (the same seed gives the same run on CPU)"),
    ("--device", "train", "device", str, "cpu, cuda, cuda:1, ..."),
    ("--threads", "train", "threads", int, "torch CPU threads (default 1; 0 = torch's default)"),
]
# What a resumed run may change: when to stop, where the data now lives, where it runs.
RESUMABLE = {("train", "epochs"), ("train", "max_steps"), ("train", "time_budget"), ("data", "path"),
             ("train", "device"), ("train", "log_every"), ("train", "threads")}


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def task_option_flags() -> dict:
    """{flag: (field name, type, help, choices, [tasks that have it])} over every task's Options.

    Two tasks may share an option (e.g. --window) when they give it the same type.
    """
    core = {f for f, *_ in FLAGS} | {"--preset", "--config", "--out", "--resume", "--force", "--bidirectional",
                                     "--tie-weights", "--depth-gate", "--help"}
    flags: dict = {}
    for name in tasks():
        for f in option_fields(get_task(name)):
            flag = "--" + f.name.replace("_", "-")
            kind = type(f.default)
            if flag in core:
                raise ValueError(f"task {name}: option {f.name!r} clashes with the core flag {flag}")
            if flag in flags:
                if flags[flag][1] is not kind:
                    raise ValueError(f"task {name}: option {flag} has type {kind.__name__}, but task "
                                     f"{flags[flag][4][0]} gives it {flags[flag][1].__name__}")
                flags[flag][4].append(name)
            else:
                flags[flag] = (f.name, kind, f.metadata.get("help", ""), f.metadata.get("choices", ()), [name])
    return flags


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model (charlm, wordlm, ...) into a run directory",
                       description="Train a model. Config: preset, then --config TOML, then flags.")
    p.add_argument("task", metavar="TASK", help="what to train: " + ", ".join(tasks()))
    p.add_argument("--preset", help="named preset: " + ", ".join(PRESETS))
    p.add_argument("--config", metavar="FILE", help="TOML config file (applied after the preset, before flags)")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/TASK-DATE-TIME)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite an existing run in --out")
    p.add_argument("--bidirectional", action="store_const", const=True, default=None,
                   help="bidirectional layers (for tasks that see the whole input; not language models)")
    p.add_argument("--depth-gate", action="store_const", const=True, default=None,
                   help="depth-gated LSTM (Yao et al. 2015): each layer's cell takes in the cell below; "
                        "LSTM-family cells, --layers >= 2")
    p.add_argument("--tie-weights", action="store_const", const=True, default=None,
                   help="share the embedding and decoder weights")
    for flag, _, _, kind, help_text in FLAGS:
        p.add_argument(flag, type=kind, default=None, help=help_text)
    for flag, (name, kind, help_text, choices, owners) in task_option_flags().items():
        extra = (f"; one of: {', '.join(map(str, choices))}" if choices else "") + f" [{', '.join(owners)}]"
        if kind is bool:
            p.add_argument(flag, dest="opt_" + name, action=argparse.BooleanOptionalAction, default=None,
                           help=help_text + extra)
        else:
            p.add_argument(flag, dest="opt_" + name, type=kind, default=None, help=help_text + extra)
    p.set_defaults(run=run)


def _overrides(args) -> dict:
    """{(section, field): value} for the flags actually given; UsageError for another task's option."""
    given = {("model", "bidirectional"): args.bidirectional, ("model", "tie_weights"): args.tie_weights,
             ("model", "depth_gate"): args.depth_gate}
    for flag, section, field, _, _ in FLAGS:
        given[(section, field)] = getattr(args, _dest(flag))
    own = {f.name for f in option_fields(get_task(args.task))}
    for flag, (name, _, _, _, owners) in task_option_flags().items():
        value = getattr(args, "opt_" + name, None)
        if value is None:
            continue
        if name not in own:
            have = ", ".join("--" + n.replace("_", "-") for n in sorted(own)) or "none"
            raise UsageError(f"{flag} is an option of {', '.join(owners)}, not of {args.task} "
                             f"(options of {args.task}: {have})")
        given[("options", name)] = value
    return {k: v for k, v in given.items() if v is not None}


def resolve_config(args) -> RunConfig:
    task = get_task(args.task)
    file_cfg = load_toml(args.config) if args.config else {}
    if file_cfg.get("task", args.task) != args.task:
        raise UsageError(f"config file {args.config!r} is for task {file_cfg['task']!r}, not {args.task!r}")
    preset = args.preset or file_cfg.get("preset") or task.default_preset
    cfg = from_preset(preset)
    if cfg.task != args.task:
        raise UsageError(f"preset {preset!r} is for task {cfg.task!r}, not {args.task!r}; presets for "
                         f"{args.task}: {', '.join(n for n, v in PRESETS.items() if v[0] == args.task) or 'none'}")
    apply_dict(cfg, {k: v for k, v in file_cfg.items() if k != "preset"}, f"config file {args.config!r}")
    over = _overrides(args)
    nested: dict = {}
    for (section, field), value in over.items():
        nested.setdefault(section, {})[field] = value
    # --max-steps or --time-budget alone means "train until then", not "and at most the preset's epochs"
    if (("train", "max_steps") in over or ("train", "time_budget") in over) and ("train", "epochs") not in over:
        nested.setdefault("train", {})["epochs"] = 0
    apply_dict(cfg, nested, "command line")
    return cfg


def resume_config(args, out: Path) -> RunConfig:
    """The run's own config, with only the RESUMABLE fields changed by flags."""
    meta = ckpt.read_meta(out)
    if meta["task"] != args.task:
        raise UsageError(f"{str(out)!r} holds a {meta['task']} run; it cannot be resumed as {args.task}")
    cfg = RunConfig.from_dict(meta["config"], f"{out}/checkpoint.json")
    if args.preset and args.preset != cfg.preset:
        raise UsageError(f"{str(out)!r} was trained from preset {cfg.preset!r}, not {args.preset!r}")
    if args.config:
        raise UsageError("--config cannot be combined with --resume: a resumed run keeps its own config")
    nested: dict = {}
    for (section, field), value in _overrides(args).items():
        current = getattr(getattr(cfg, section), field)
        if (section, field) in RESUMABLE:
            nested.setdefault(section, {})[field] = value
        elif value != current:
            flag = "--" + ("data" if field == "path" else field.replace("_", "-"))
            what = "variant" if field == "cell" else "setting"
            raise UsageError(f"{str(out)!r} holds a run with {section}.{field} = {current!r} ({what}); it cannot be "
                             f"resumed with {flag} {value!r} (only --epochs, --max-steps, --time-budget, --data, "
                             f"--device, --threads may change)")
    if ("train", "max_steps") in _overrides(args) or ("train", "time_budget") in _overrides(args):
        if ("train", "epochs") not in _overrides(args):
            nested.setdefault("train", {})["epochs"] = 0
    apply_dict(cfg, nested, "command line")
    return cfg


def run(args) -> int:
    from ..train.run import train

    if args.resume and args.force:
        raise UsageError("--resume and --force contradict each other: resume continues a run, force replaces it")
    if args.resume and not args.out:
        raise UsageError("--resume needs --out RUN_DIR, the run to continue")
    get_task(args.task)
    if args.out:
        out = Path(args.out)
    elif distributed.world_size() > 1:
        raise UsageError("under torchrun give --out RUN_DIR, so every process writes to the same run")
    else:
        out = Path("runs") / f"{args.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = resume_config(args, out) if args.resume else resolve_config(args)
    rank = int(__import__("os").environ.get("RANK", "0"))
    if rank == 0:
        verb = "resuming" if args.resume else "training"
        m = cfg.model
        print(f"{verb} {cfg.task} ({cfg.preset or 'no preset'}): {m.layers}x{m.hidden} {m.cell} on "
              f"{cfg.data.path or 'built-in or generated data'} -> {out}", flush=True)
    summary = train(cfg, out, resume=args.resume, force=args.force)
    if rank != 0:
        return 0
    task = get_task(cfg.task)
    name = task.metric_name
    if summary["stopped"] == "interrupted":
        print(f"lstmkit train: interrupted at step {summary['steps']}; checkpoint saved in {out}. "
              f"Continue with: lstmkit train {cfg.task} --out {out} --resume", file=sys.stderr)
        return 130
    best = summary.get(f"best_valid_{name}")
    loss_text = f"{summary['best_valid_loss']:.4f}" + (" nats/" + task.unit[:4] if task.loss_in_nats else "")
    best_text = f"best valid {name} {best:.4f} (loss {loss_text})" \
        if best is not None else "no validation split"
    print(f"done ({summary['stopped']}): {summary['steps']} steps, {summary['epochs']} epochs, "
          f"{summary['train_seconds']:.0f} s, {summary['tokens_per_second']:,.0f} {task.unit}s/s; {best_text}")
    print(f"run directory: {out}  (checkpoint.json, metrics.csv, curve.png, summary.json)")
    if task.next_commands:
        print("next: " + "    ".join(f"lstmkit {c} {out}" for c in task.next_commands))
    return 0
