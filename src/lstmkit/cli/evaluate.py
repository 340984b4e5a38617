"""``lstmkit evaluate RUN_DIR``: loss and bits/char, perplexity or NLL per time step on a split.

A task with an ``evaluate_command(args, model, cfg, state, meta)`` method (music) reports
its own numbers; language models print loss and bpc / perplexity here.
"""
from __future__ import annotations

import math


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a run on its validation or test split")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by lstmkit train")
    p.add_argument("--data", metavar="PATH", help="data to evaluate on (default: the run's own data); "
                                                  "charlm: a text file, wordlm: a PTB-format directory, "
                                                  "music: a .json piano-roll file or a directory of .mid files")
    p.add_argument("--split", choices=("valid", "test"), default="valid",
                   help="valid (default) or test; charlm's test needs --data FILE")
    p.add_argument("--last", action="store_true", help="use the latest checkpoint, not the best-validation weights")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..train.run import load_run

    task, cfg, vocab, model, meta = load_run(args.run_dir, "last" if args.last else "best")
    if hasattr(task, "evaluate_command"):
        return task.evaluate_command(args, model, cfg, vocab, meta)
    ids = task.eval_data(cfg, vocab, args.split, args.data)
    loss = task.evaluate(model, ids, cfg)
    unit = task.unit[:4] if task.unit == "character" else task.unit
    step = meta["trainer"]["train_state"]
    weights = "latest" if args.last or "best" not in meta["files"] else f"best (step {step['best_step']})"
    print(f"{args.split}: loss {loss:.4f} nats/{unit}, {task.metric_name} {task.describe(loss):.4f}"
          + (f", {loss / math.log(2):.4f} bits/{unit}" if task.metric_name == "ppl" else "")
          + f"  ({ids.numel():,} {task.unit}s, {weights} weights)")
    return 0
