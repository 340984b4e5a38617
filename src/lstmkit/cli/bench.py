"""``lstmkit bench``: the engine's speed against torch.nn, interleaved medians (lstmkit/bench.py)."""
from __future__ import annotations


def add_parser(sub) -> None:
    from .. import bench
    p = sub.add_parser("bench", help="time the engine against torch.nn.LSTM/GRU/RNN (writes JSON and a docs table)",
                       description="Candidates run interleaved after a warm-up; each row is a median and its "
                                   "ratio to torch.nn.LSTM in the same run. Run it from the repository root "
                                   "to update docs/performance.md, or give --no-doc.")
    bench.add_arguments(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from .. import bench
    bench.run_from_args(args)
    return 0
