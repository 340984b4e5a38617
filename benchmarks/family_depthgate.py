"""Issue 9, item 6: the depth-gated LSTM (Yao et al. 2015) on one long-lag task.

The depth gate has no CLI flag (it is `lstmkit.LSTM(..., num_layers >= 2, depth_gate=True)`),
so this script runs the task's own training loop (`lstmkit.train.run.train`, the same
preset, batches, validation, stop-when-solved and test as `lstmkit train`) with the task's
model builder swapped for one whose recurrent layer is a 2-layer depth-gated LSTM. The
forget bias of the preset (5 for the long-lag tasks) goes to both layers, as for `--cell lstm`.

    PYTHONPATH=src python benchmarks/family_depthgate.py --task adding --hidden H --time-budget 240 --out DIR
    PYTHONPATH=src python benchmarks/family_depthgate.py --task adding --count   # matched hidden size

Prints the summary (summary.json in DIR). No `lstmkit evaluate` on the run afterwards: the run's
config says `--cell lstm --layers 2`, which would rebuild the model without depth gates.
"""
from __future__ import annotations

import argparse
import json

from lstmkit.models.longterm import LongTermNet
from lstmkit.tasks import get_task
from lstmkit.train.config import from_preset
from lstmkit.train.run import train

PRESETS = {"adding": ("adding-adam", {"T": 100}), "temporal-order": ("temporal-order-adam", {"symbols": 3})}


def config(task: str, hidden: int, budget: float, threads: int = 1, layers: int = 2):
    preset, opts = PRESETS[task]
    cfg = from_preset(preset)
    for k, v in opts.items():
        setattr(cfg.options, k, v)
    cfg.model.cell, cfg.model.layers, cfg.model.hidden = "lstm", layers, hidden
    cfg.train.time_budget, cfg.train.threads = budget, threads
    return cfg


def use_depth_gate(task_obj) -> None:
    """Make the task build a LongTermNet whose layer is a depth-gated LSTM (the preset's sizes)."""
    def build_model(cfg, state):
        m = cfg.model
        I, O = task_obj.sizes(cfg.options)
        return LongTermNet("lstm", I, m.hidden, O, num_layers=m.layers, readout=task_obj.readout_for(cfg.options),
                           forget_bias=cfg.options.forget_bias, depth_gate=True)
    task_obj.build_model = build_model


def n_params(cfg, depth_gate: bool) -> int:
    t = get_task(cfg.task)
    if depth_gate:
        use_depth_gate(t)
    m = t.build_model(cfg, t.load(cfg, None).state)
    if depth_gate:
        assert any("weight_ld" in n for n, _ in m.named_parameters()), "no depth gate in the model"
    return sum(p.numel() for p in m.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", choices=sorted(PRESETS), default="adding")
    ap.add_argument("--hidden", type=int, default=0)
    ap.add_argument("--time-budget", type=float, default=240)
    ap.add_argument("--out", default="runs/family/depthgate")
    ap.add_argument("--count", action="store_true", help="print the hidden size matched to the preset's LSTM")
    a = ap.parse_args()
    if a.count:
        preset = PRESETS[a.task][0]
        ref = n_params(config(a.task, from_preset(preset).model.hidden, 0, layers=1), False)
        best = min(((h, n_params(config(a.task, h, 0), True)) for h in range(8, 64)), key=lambda hn: abs(hn[1] - ref))
        print(json.dumps({"task": a.task, "lstm_1layer_params": ref, "depth_gated_2layer": {"hidden": best[0], "params": best[1]}}))
        return
    cfg = config(a.task, a.hidden, a.time_budget)
    use_depth_gate(get_task(cfg.task))
    summary = train(cfg, a.out, force=True, progress=False)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
