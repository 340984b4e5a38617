"""The markdown tables of docs/results.md's time-series section, from the run directories that
benchmarks/timeseries_runs.sh writes: ``python benchmarks/timeseries_table.py [RUNS_DIR]``."""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def summary(d: Path) -> dict:
    return json.loads((d / "summary.json").read_text())


def main(runs: Path) -> None:
    print("| series | cell | seed | MAE | RMSE | MASE | naive MASE | seasonal-naive MASE | steps | seconds |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for d in sorted(p for p in runs.glob("ref-forecast-*") if (p / "summary.json").is_file()):
        s = summary(d)
        name = d.name[len("ref-forecast-"):]
        series, cell = name.split("-")[0], s["test"]
        model = next(k for k in cell if not k.startswith(("naive", "seasonal")))
        seed = name.rsplit("-s", 1)[1] if "-s" in name else "0"
        m, naive = cell[model], cell["naive (last value)"]
        snaive = next((v for k, v in cell.items() if k.startswith("seasonal")), None)
        label = model + (" (no residual)" if "noresidual" in name else "")
        print(f"| {series} | {label} | {seed} | {m['mae']:.2f} | {m['rmse']:.2f} | **{m['mase']:.3f}** | "
              f"{naive['mase']:.3f} | {snaive['mase'] if snaive else float('nan'):.3f} | {s['steps']} | "
              f"{s['train_seconds']:.0f} |")
    print()
    print("| run | seed | test accuracy | macro-F1 | errors / 370 | steps | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    accs: dict = {}
    for d in sorted(p for p in runs.glob("ref-classify-jv-*") if (p / "summary.json").is_file()):
        s = summary(d)
        name = d.name[len("ref-classify-jv-"):]
        seed = name.rsplit("-s", 1)[1] if "-s" in name else "0"
        accs.setdefault(name.rsplit("-s", 1)[0], []).append(s["test_accuracy"])
        errors = round((1 - s["test_accuracy"]) * s["test_sequences"])
        print(f"| {name.rsplit('-s', 1)[0]} | {seed} | **{100 * s['test_accuracy']:.1f} %** | "
              f"{s['test_macro_f1']:.3f} | {errors} | {s['steps']} | {s['train_seconds']:.0f} |")
    for k, v in accs.items():
        if len(v) > 1:
            print(f"\n{k}: mean test accuracy {100 * statistics.mean(v):.1f} % over {len(v)} seeds "
                  f"(min {100 * min(v):.1f}, max {100 * max(v):.1f})")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs"))
