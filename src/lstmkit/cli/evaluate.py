"""``lstmkit evaluate RUN_DIR``: loss and bits/char, perplexity or NLL per time step on a split.

The run's task reports (``Task.evaluate_command``): language models loss and bpc /
perplexity, music the NLL per time step.
"""
from __future__ import annotations



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

    task, cfg, state, model, meta = load_run(args.run_dir, "last" if args.last else "best")
    return task.evaluate_command(args, model, cfg, state, meta)
