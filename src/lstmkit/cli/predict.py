"""``lstmkit predict RUN_DIR``: apply a trained forecast or classify run to data, write a CSV.

Dispatches on the run's task: a task that can predict has a ``predict(model, cfg, state,
path, out)`` method, which reads ``path`` (default: the run's own data), writes ``out``
and returns a line to print.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UsageError

DEFAULT_OUT = {"forecast": "forecast.csv", "classify": "predictions.csv"}


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="forecasts (forecast) or labels and probabilities (classify) from a run")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by lstmkit train")
    p.add_argument("--data", metavar="FILE", help="data in the run's format (default: the run's own data); "
                                                  "forecast: a CSV with the trained columns; classify: CSV or NPZ")
    p.add_argument("--out", metavar="FILE.csv", help="where to write (default: RUN_DIR/forecast.csv or "
                                                     "RUN_DIR/predictions.csv)")
    p.add_argument("--last", action="store_true", help="use the latest checkpoint, not the best-validation weights")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..train.run import load_run

    task, cfg, state, model, _ = load_run(args.run_dir, "last" if args.last else "best")
    out = Path(args.out) if args.out else Path(args.run_dir) / DEFAULT_OUT.get(task.name, "predictions.csv")
    if out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a directory; expected a file name")
    if not out.parent.is_dir():
        raise UsageError(f"--out {str(out)!r}: the directory {str(out.parent)!r} does not exist")
    print(task.predict(model, cfg, state, args.data, out))
    return 0
