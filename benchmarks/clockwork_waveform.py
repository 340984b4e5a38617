"""Koutník et al. 2014's sequence-generation experiment (sec. 4.1) on a generated waveform.

The paper trains a network with one output and no input to produce a 320-sample piece of audio
(44.1 kHz music) at its output, one sample per step, and reports the normalised MSE (MSE over
the target's variance) of SRN, LSTM and CW-RNN at equal parameter counts. The audio is not
available here, so the target is a generated waveform of the same length: a sum of three
sinusoids with periods of 160, 37 and 9.3 samples under a slow envelope, scaled to [-1, 1]
(structure at several time scales, which is what the clockwork's periods are for).

Every model gets a constant input of 1 (an input of zeros would leave ``weight_ih`` unused; a
constant is the paper's "no input" up to a bias), reads it for 320 steps from a zero state, and
a linear layer maps its hidden state to the sample. Hidden sizes are chosen so that the trainable
parameters, including the read-out and counting only the clockwork's unmasked ``weight_hh``,
are as close as possible to ``--budget``. Full-sequence BPTT, Adam, gradient norm clipped at 1.

    PYTHONPATH=src python benchmarks/clockwork_waveform.py --budget 500 --steps 1000 --seeds 0 1

writes benchmarks/results/clockwork_waveform.json; docs/architectures.md has the table.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
from torch import nn

import lstmkit

ROOT = Path(__file__).resolve().parents[1]
LENGTH = 320  # the paper's sequence length


def waveform(n: int = LENGTH) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64)
    y = (torch.sin(2 * math.pi * t / 160) + 0.6 * torch.sin(2 * math.pi * t / 37 + 1.0)
         + 0.35 * torch.sin(2 * math.pi * t / 9.3 + 2.0)) * (0.6 + 0.4 * torch.cos(2 * math.pi * t / 320))
    return (y / y.abs().max()).float()


class Generator(nn.Module):
    def __init__(self, kind: str, hidden: int):
        super().__init__()
        self.kind = kind
        if kind == "cw-rnn":
            self.rnn = lstmkit.ClockworkRNN(1, hidden)  # periods 1, 2, 4, ..., 128 (8 modules)
        elif kind == "rnn":
            self.rnn = lstmkit.RNN(1, hidden)
        else:
            self.rnn = lstmkit.LSTM(1, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, T: int) -> torch.Tensor:
        x = torch.ones(T, 1, 1)
        return self.out(self.rnn(x)[0])[:, 0, 0]  # (T,)

    def num_parameters(self) -> int:
        if self.kind == "cw-rnn":
            return self.rnn.num_effective_parameters() + sum(p.numel() for p in self.out.parameters())
        return sum(p.numel() for p in self.parameters())


def size_for(kind: str, budget: int) -> int:
    return min(range(8, 200), key=lambda h: abs(Generator(kind, h).num_parameters() - budget))


def train(kind: str, hidden: int, seed: int, steps: int, lr: float, target: torch.Tensor) -> dict:
    torch.manual_seed(seed)
    model = Generator(kind, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    var = target.var(unbiased=False).item()
    best, t0 = float("inf"), time.perf_counter()
    for _ in range(steps):
        loss = nn.functional.mse_loss(model(len(target)), target)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        best = min(best, loss.item() / var)
    with torch.no_grad():
        y = model(len(target))
    final = nn.functional.mse_loss(y, target).item() / var
    return {"model": kind, "hidden": hidden, "params": model.num_parameters(), "seed": seed, "nmse": final,
            "best_nmse_during_training": best, "seconds": time.perf_counter() - t0,
            "output": [round(v, 4) for v in y.tolist()]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=int, default=500, help="trainable parameters per model (approx.)")
    ap.add_argument("--steps", type=int, default=1000, help="Adam steps on the whole sequence")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--models", nargs="+", default=["cw-rnn", "rnn", "lstm"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "clockwork_waveform.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    target = waveform()
    runs = []
    for kind in args.models:
        hidden = size_for(kind, args.budget)
        for seed in args.seeds:
            r = train(kind, hidden, seed, args.steps, args.lr, target)
            runs.append(r)
            print(f"{kind:7s} H={hidden:3d} params={r['params']:4d} seed={seed} NMSE {r['nmse']:.4f} "
                  f"(best during training {r['best_nmse_during_training']:.4f}) {r['seconds']:.0f} s", flush=True)
    summary = {}
    for kind in args.models:
        vals = [r["nmse"] for r in runs if r["model"] == kind]
        summary[kind] = {"mean": statistics.mean(vals), "std": statistics.pstdev(vals), "min": min(vals),
                         "params": next(r["params"] for r in runs if r["model"] == kind)}
        print(f"{kind:7s} NMSE mean {summary[kind]['mean']:.4f} ± {summary[kind]['std']:.4f} "
              f"(min {summary[kind]['min']:.4f}) over seeds {args.seeds}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary,
                                     "target": [round(v, 4) for v in target.tolist()], "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
