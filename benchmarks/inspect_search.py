"""The interpretable-cell search of `lstmkit inspect` on a whole text, without writing a page.

    python benchmarks/inspect_search.py RUN_DIR TEXT [--top 3] [--quantities c,h]

A page holds one byte per cell, quantity and character, so `lstmkit inspect` keeps its text
short (--max-tokens); this runs the same search (lstmkit.inspect.search_cells) on a text of
any length and prints the best cells per feature, for docs/inspect.md.
"""
from __future__ import annotations

import argparse
import time

import torch

from lstmkit.data.text import read_text
from lstmkit.inspect import record, search_cells, token_features
from lstmkit.train.run import load_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("text")
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--quantities", default="", help="comma-separated, e.g. c,h (default: all recorded)")
    args = ap.parse_args()
    task, cfg, vocab, model, _ = load_run(args.run_dir)
    text = read_text(args.text)
    ids = torch.tensor(vocab.encode(text, args.text)).view(-1, 1)
    start = time.perf_counter()
    rec = record(model, ids, module="rnn")
    quantities = args.quantities.split(",") if args.quantities else None
    found = search_cells(rec, token_features(list(text)), top=args.top, quantities=quantities)
    print(f"{args.text}: {len(text):,} characters, {rec.num_layers}x{rec.width('c')} {rec.variant}, "
          f"recorded and searched in {time.perf_counter() - start:.1f} s")
    for feature, matches in found.items():
        cells = ", ".join(f"{m.label()} r={m.r:+.2f}" for m in matches) or "(constant on this text)"
        print(f"  {feature:15s} {cells}")


if __name__ == "__main__":
    main()
