"""Kalchbrenner et al. 2015's k-bit parity (sec. 4.1 and appendix) with a tied 1-LSTM.

The paper gives the whole k-bit string to the network at once, through one projection into the
bottom block, and lets a Grid LSTM with only the depth dimension (a "1-LSTM") compute along its
layers; the answer (the XOR of the bits) is read from the top. lstmkit's GridLSTM over one time
step is exactly that: with T = 1 the time transforms see a zero state and only the depth
transforms carry information upwards, h^D_0 = W_ih x + b_ih. The baseline is lstmkit.LSTM with
the same depth and width over the same single step: a stacked LSTM whose layers have no memory
cell along depth (each layer's cell starts from zero), i.e. a gated feed-forward network.

Training: fresh uniformly random strings every step (no fixed training set, as in the paper),
logistic loss on the top vector through a linear read-out, Adam. Test accuracy on 10,000 fresh
strings. ``--seeds`` repeats the run.

    PYTHONPATH=src python benchmarks/grid_parity.py --bits 16 --layers 4 --hidden 64 --lr 1e-2 --steps 3000 --seeds 0 1

writes benchmarks/results/grid_parity.json; docs/architectures.md has the table.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

import lstmkit

ROOT = Path(__file__).resolve().parents[1]


def batch(n: int, k: int, gen: torch.Generator):
    bits = torch.randint(0, 2, (n, k), generator=gen)
    return bits.float().unsqueeze(0) * 2 - 1, (bits.sum(1) % 2).float()  # x (1, n, k) in {-1, 1}, y (n,)


class Net(nn.Module):
    def __init__(self, kind: str, bits: int, layers: int, hidden: int):
        super().__init__()
        if kind == "tied-grid":
            self.body = lstmkit.GridLSTM(bits, hidden, num_layers=layers, tied=True)
        elif kind == "grid":
            self.body = lstmkit.GridLSTM(bits, hidden, num_layers=layers)
        else:
            self.body = lstmkit.LSTM(bits, hidden, num_layers=layers)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.head(self.body(x)[0][0])[:, 0]  # logits (n,)


def run(kind: str, args, seed: int) -> dict:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = Net(kind, args.bits, args.layers, args.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    t0, curve = time.perf_counter(), []
    x_test, y_test = batch(10_000, args.bits, torch.Generator().manual_seed(10_000 + seed))

    def accuracy() -> float:
        with torch.no_grad():
            return ((net(x_test) > 0).float() == y_test).float().mean().item()

    for step in range(1, args.steps + 1):
        x, y = batch(args.batch, args.bits, gen)
        loss = nn.functional.binary_cross_entropy_with_logits(net(x), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            curve.append((step, accuracy()))
            print(f"{kind:10s} seed {seed} step {step:5d} loss {loss.item():.4f} test acc {curve[-1][1]:.4f}",
                  flush=True)
    return {"model": kind, "seed": seed, "params": sum(p.numel() for p in net.parameters()),
            "test_accuracy": curve[-1][1], "curve": curve, "seconds": time.perf_counter() - t0}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bits", type=int, default=32)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--models", nargs="+", default=["tied-grid", "lstm"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "grid_parity.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs = [run(kind, args, seed) for kind in args.models for seed in args.seeds]
    for r in runs:
        print(f"{r['model']:10s} seed {r['seed']} params {r['params']:6d} test accuracy {r['test_accuracy']:.4f} "
              f"({r['seconds']:.0f} s)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
