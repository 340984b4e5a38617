"""The long-time-lag suite (Hochreiter & Schmidhuber 1997, section 5): tasks x cells x seeds.

Each run is one ``lstmkit train TASK ... --cell CELL --seed SEED --out RUNS/NAME-CELL-sSEED``
(the task's default recipe plus the suite entry's flags), run as a subprocess, up to
``--jobs`` at a time. Then the summaries are collected into ``--json`` (every run: its
command, whether and when it was solved, test errors) and ``--md`` (one table per suite
entry, the paper's numbers beside ours), which docs/longterm.md quotes.

    python benchmarks/longterm.py --only adding-100,temporal-2,reber --cells lstm,rnn --seeds 0,1,2
    python benchmarks/longterm.py --collect runs/longterm   # tables from finished runs only

Run directories that already hold a finished run (summary.json) are not run again, so an
interrupted suite continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> (task, extra flags, the paper's result for LSTM as text)
SUITE = {
    "reber": ("reber", [], "100% of trials; best 8,440 sequences (section 5.1)"),
    "continual-reber": ("continual-reber", [], "Gers et al. 2000: LSTM without forget gates fails; with them it learns"),
    "lag-2a": ("lag", ["--experiment", "2a", "--lag", "100"], "see the paper's section 5.2 (not quoted here: not checked against the paper)"),
    "lag-2b": ("lag", ["--experiment", "2b", "--lag", "100"], "see the paper's section 5.2 (not quoted here: not checked against the paper)"),
    "lag-2c": ("lag", ["--experiment", "2c", "--lag", "100", "--distractors", "100"],
               "see the paper's section 5.2 (not quoted here: not checked against the paper)"),
    "adding-100": ("adding", ["--T", "100"], "74,000 sequences; 1/2560 test errors (section 5.4)"),
    # T >= 500: chrono initialisation (docs/longterm.md: a fixed forget bias stayed at the trivial solution)
    "adding-500": ("adding", ["--T", "500", "--chrono", "500"], "209,000 sequences; 0/2560 test errors (section 5.4)"),
    "adding-1000": ("adding", ["--T", "1000", "--chrono", "1000"], "853,000 sequences; 1/2560 test errors (section 5.4)"),
    "multiplication-100": ("multiplication", ["--T", "100"],
                           "see the paper's section 5.5 (not quoted here: not checked against the paper)"),
    "temporal-2": ("temporal-order", ["--symbols", "2"], "31,390 sequences (section 5.6)"),
    "temporal-3": ("temporal-order", ["--symbols", "3"], "571,100 sequences (section 5.6)"),
    "copy-100": ("copy", ["--T", "100"], "Arjovsky et al. 2016: LSTM at T = 1000 stays at the memoryless baseline"),
}


def command(name: str, cell: str, seed: int, runs: Path, extra: list[str]) -> list[str]:
    task, flags, _ = SUITE[name]
    return [sys.executable, "-m", "lstmkit", "train", task, *flags, "--cell", cell, "--seed", str(seed),
            "--out", str(runs / f"{name}-{cell}-s{seed}"), *extra]


def run_one(cmd: list[str], log: Path) -> int:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    with open(log, "w") as f:
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode


def _read_run(d: Path) -> dict | None:
    s_path = d / "summary.json"
    if not s_path.is_file():
        return None
    import tomllib
    s = json.loads(s_path.read_text())
    if "task" not in s or "test_errors" not in s:  # not a long-lag training run (e.g. lstmkit gradflow's)
        return None
    cfg = tomllib.loads((d / "config.toml").read_text()) if (d / "config.toml").is_file() else {}
    return {"dir": str(d), "task": s["task"], "cell": cfg.get("model", {}).get("cell", "?"),
            "seed": cfg.get("train", {}).get("seed"), "options": cfg.get("options", {}),
            "stopped": s["stopped"], "solved": s.get("solved"), "sequences_to_solve": s.get("sequences_to_solve"),
            "sequences_seen": s["tokens"], "steps": s["steps"], "seconds": s["train_seconds"],
            "valid_errors": s.get("valid_errors"), "valid_size": s.get("valid_size"),
            "test_errors": s.get("test_errors"), "test_size": s.get("test_size"), "test_loss": s.get("test_loss"),
            "command": (d / "command.txt").read_text().strip() if (d / "command.txt").is_file() else None}


def entry_of(r: dict) -> str:
    """The suite entry a run belongs to, from its task and options."""
    o = r["options"]
    if r["task"] in ("adding", "multiplication", "copy"):
        return f"{r['task']}-{o.get('T')}"
    if r["task"] == "temporal-order":
        return f"temporal-{o.get('symbols')}"
    if r["task"] == "lag":
        return f"lag-{o.get('experiment')}"
    return r["task"]


def markdown(results: list[dict]) -> str:
    by: dict = {}
    for r in results:
        by.setdefault(entry_of(r), []).append(r)
    lines = []
    for name in [*SUITE, *sorted(set(by) - set(SUITE))]:
        if name not in by:
            continue
        paper = SUITE[name][2] if name in SUITE else ""
        lines += [f"### {name}", "", f"Paper (LSTM): {paper}", "",
                  "| cell | seed | solved | sequences until solved | sequences seen | test errors | stopped | time (s) |",
                  "|---|---:|---|---:|---:|---:|---|---:|"]
        for r in sorted(by[name], key=lambda r: (r["cell"], r["seed"] or 0)):
            solved = "yes" if r["solved"] else "no"
            until = f"{r['sequences_to_solve']:,}" if r["sequences_to_solve"] else "—"
            test = f"{r['test_errors']}/{r['test_size']}" if r["test_errors"] is not None else "—"
            init = f" (chrono {r['options']['chrono']})" if r["options"].get("chrono") else ""
            lines.append(f"| {r['cell']}{init} | {r['seed']} | {solved} | {until} | {r['sequences_seen']:,} | {test} | "
                         f"{r['stopped']} | {r['seconds']:.0f} |")
        cells = sorted({r["cell"] for r in by[name]})
        rates = ", ".join(f"{c} {sum(bool(r['solved']) for r in by[name] if r['cell'] == c)}/"
                          f"{sum(r['cell'] == c for r in by[name])}" for c in cells)
        lines += ["", f"Success rate: {rates}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(SUITE), help="comma-separated suite entries: " + ", ".join(SUITE))
    p.add_argument("--cells", default="lstm,rnn", help="comma-separated cell variants")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--runs", default="runs/longterm", help="where the run directories go")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    p.add_argument("--extra", default="", help="extra flags for every run, e.g. '--time-budget 1800'")
    p.add_argument("--collect", nargs="*", metavar="DIR", help="only tabulate the finished runs under these directories")
    p.add_argument("--json", default="benchmarks/results/longterm.json")
    p.add_argument("--md", default="benchmarks/results/longterm.md")
    args = p.parse_args(argv)

    if args.collect is None:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in SUITE]
        if unknown:
            p.error(f"unknown suite entries {unknown}; expected: {', '.join(SUITE)}")
        runs = Path(args.runs)
        runs.mkdir(parents=True, exist_ok=True)
        todo = []
        for name in names:
            for cell in args.cells.split(","):
                for seed in map(int, args.seeds.split(",")):
                    cmd = command(name, cell, seed, runs, args.extra.split())
                    d = runs / f"{name}-{cell}-s{seed}"
                    if (d / "summary.json").is_file():
                        continue
                    todo.append((cmd, d))

        def go(item):
            cmd, d = item
            t0 = time.time()
            rc = run_one(cmd, d.with_suffix(".log"))
            text = " ".join(c if c != sys.executable else "python" for c in cmd)
            if d.is_dir():
                (d / "command.txt").write_text(text + "\n")
            print(f"[{rc}] {time.time() - t0:6.0f} s  {text}", flush=True)
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            list(pool.map(go, todo))
        dirs = [runs]
    else:
        dirs = [Path(d) for d in args.collect]
    results = [r for base in dirs for d in sorted(base.iterdir()) if d.is_dir() and (r := _read_run(d))]
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    Path(args.md).write_text(markdown(results) + "\n")
    print(f"{len(results)} runs -> {args.json}, {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
