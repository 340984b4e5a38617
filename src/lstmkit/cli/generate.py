"""``lstmkit generate RUN_DIR``: sample text from a trained language model, or music from a music run.

The flags are checked here; the run's task does the rest (``Task.generate_command``).
"""
from __future__ import annotations

from ..errors import UsageError


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="sample text from a language model run, or a MIDI file from a music run")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by lstmkit train")
    p.add_argument("--prime", help="language models: text to start from; only characters (words) the model knows "
                                   "(default: a newline, or 'the'). music: a .mid file (or a .json list of time "
                                   "steps) to continue, at most the model's context (--seq-len) long")
    p.add_argument("--length", type=int, default=500, help="language models: tokens to generate (default 500)")
    p.add_argument("--out", metavar="FILE.mid", help="music: the MIDI file to write; a piano-roll PNG goes next to it")
    p.add_argument("--steps", type=int, help="music: time steps to generate after the prime (default 64)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="divide the logits by this; lower is more conservative, 0 = greedy (default 1.0)")
    p.add_argument("--top-k", type=int, default=0, help="sample only among the k likeliest tokens (0 = all)")
    p.add_argument("--seed", type=int, default=0, help="random seed for sampling")
    p.add_argument("--last", action="store_true", help="use the latest checkpoint, not the best-validation weights")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..train.run import load_run

    if args.length < 0:
        raise UsageError(f"--length must be >= 0; got {args.length}")
    if not args.temperature >= 0:
        raise UsageError(f"--temperature must be >= 0; got {args.temperature}")
    if args.top_k < 0:
        raise UsageError(f"--top-k must be >= 0; got {args.top_k}")
    task, cfg, state, model, _ = load_run(args.run_dir, "last" if args.last else "best")
    return task.generate_command(args, model, cfg, state)
