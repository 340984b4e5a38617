"""``lstmkit demo``: why LSTMs exist, in under a minute on two cores.

Each sequence starts with one of K marker symbols, followed by ``lag`` random distractor
symbols; the network must name the marker at the end ("I grew up in France ... I speak
fluent ___"). A plain tanh RNN must carry the marker through ``lag`` multiplications by
its recurrent Jacobian, and its gradient vanishes; the LSTM's cell state carries it
additively. Both are trained identically and evaluated on fresh sequences.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from .. import make_layer


def long_lag_batch(batch: int, lag: int, markers: int, distractors: int, generator: torch.Generator):
    """One-hot inputs (batch, lag + 1, markers + distractors) and marker targets (batch,)."""
    target = torch.randint(markers, (batch,), generator=generator)
    symbols = markers + torch.randint(distractors, (batch, lag + 1), generator=generator)
    symbols[:, 0] = target
    return nn.functional.one_hot(symbols, markers + distractors).float(), target


class Classifier(nn.Module):
    def __init__(self, cell: str, vocab: int, hidden: int, classes: int):
        super().__init__()
        self.rnn = make_layer(cell, vocab, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.rnn(x)  # (B, T, H)
        return self.head(out[:, -1])


def train_and_score(cell: str, lag: int, steps: int, seed: int, markers: int = 4, distractors: int = 4) -> float:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = Classifier(cell, markers + distractors, 32, markers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        x, y = long_lag_batch(32, lag, markers, distractors, gen)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    with torch.no_grad():
        x, y = long_lag_batch(1000, lag, markers, distractors, gen)
        return (model(x).argmax(1) == y).float().mean().item()


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="show a plain RNN failing a long time lag that an LSTM bridges")
    p.add_argument("--quick", action="store_true", help="fewer training steps (about 10 s)")
    p.add_argument("--lag", type=int, default=40, help="distractor steps between the marker and the question")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.set_defaults(run=run)


def run(args) -> int:
    if args.lag < 1:
        raise ValueError(f"--lag must be >= 1; got {args.lag}")
    steps = 120 if args.quick else 400
    print(f"Remember the first of {args.lag + 1} symbols ({steps} Adam steps of 32 sequences each, "
          f"chance = 25%):")
    for cell in ("rnn", "lstm", "gru"):
        t0 = time.perf_counter()
        acc = train_and_score(cell, args.lag, steps, args.seed)
        print(f"  {cell:<5} test accuracy {acc:6.1%}   ({time.perf_counter() - t0:4.1f} s)")
    return 0
