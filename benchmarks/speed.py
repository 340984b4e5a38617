"""Speed benchmark, run from the repository root: the same as ``lstmkit bench`` (see lstmkit/bench.py).

    .venv/bin/python benchmarks/speed.py [--shapes T,B,I,H ...] [--reps N] [--no-doc] ...
"""
import os
from pathlib import Path

from lstmkit.bench import main

if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[1])  # the defaults name benchmarks/results and docs/
    main()
