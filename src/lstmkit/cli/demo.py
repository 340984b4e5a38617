"""``lstmkit demo``: why LSTMs exist, then a character model of Python's own source code.

Part 1, a long time lag. Each sequence starts with one of K marker symbols, followed by
``lag`` random distractor symbols; the network must name the marker at the end ("I grew
up in France ... I speak fluent ___"). A plain tanh RNN must carry the marker through
``lag`` multiplications by its recurrent Jacobian, and its gradient vanishes (Hochreiter
1991; Bengio et al. 1994); the LSTM's cell state carries it additively (Hochreiter &
Schmidhuber 1997). All cells are trained identically and scored on fresh sequences.

Part 2, a character-level LSTM language model trained by the same trainer as ``lstmkit
train charlm`` on the Python standard library's source files (every machine with Python
has them), then sampled.

Everything goes into a run directory (plots, the char model's run, samples, summary).
Built-in data only; nothing is downloaded.
"""
from __future__ import annotations

import json
import math
import sysconfig
import time
from pathlib import Path

import torch
from torch import nn

from .. import make_layer
from ..errors import UsageError
from ..plots import pyplot, save_figure

# Part 1's recipe. The forget-gate bias matters here: at lag 60 the only learning signal
# is 60 steps back, and with the usual bias 1 (f ~ 0.73) it shrinks by 0.73^60 ~ 1e-8
# before the LSTM has learnt to remember, so some seeds stall at 50%. A bias of 3
# (f ~ 0.95; opening the forget gate at the start goes back to Gers et al. 2000) keeps
# 0.95^60 ~ 5% of it.
LAG_RECIPE = dict(hidden=32, batch=128, lr=3e-3, clip=1.0, forget_bias=3.0, markers=4, distractors=4)
FULL = dict(lag=60, steps=200, eval_every=25, chars=400_000, char_seconds=60)
QUICK = dict(lag=30, steps=100, eval_every=25, chars=100_000, char_seconds=8)


def long_lag_batch(batch: int, lag: int, markers: int, distractors: int, generator: torch.Generator):
    """One-hot inputs (batch, lag + 1, markers + distractors) and marker targets (batch,)."""
    target = torch.randint(markers, (batch,), generator=generator)
    symbols = markers + torch.randint(distractors, (batch, lag + 1), generator=generator)
    symbols[:, 0] = target
    return nn.functional.one_hot(symbols, markers + distractors).float(), target


class Classifier(nn.Module):
    def __init__(self, cell: str, vocab: int, hidden: int, classes: int, **layer_kwargs):
        super().__init__()
        self.rnn = make_layer(cell, vocab, hidden, batch_first=True, **layer_kwargs)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.rnn(x)  # (B, T, H)
        return self.head(out[:, -1])


def train_and_score(cell: str, lag: int, steps: int, seed: int, eval_every: int = 0, recipe: dict = LAG_RECIPE):
    """Train one cell on the long-lag task; returns (final accuracy, [(step, accuracy), ...])."""
    r = recipe
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    kwargs = {"forget_bias": r["forget_bias"]} if cell == "lstm" else {}
    model = Classifier(cell, r["markers"] + r["distractors"], r["hidden"], r["markers"], **kwargs)
    opt = torch.optim.Adam(model.parameters(), lr=r["lr"])
    test_gen = torch.Generator().manual_seed(seed + 1000)
    x_test, y_test = long_lag_batch(1000, lag, r["markers"], r["distractors"], test_gen)

    def accuracy():
        with torch.no_grad():
            return (model(x_test).argmax(1) == y_test).float().mean().item()

    curve = [(0, accuracy())]
    for step in range(1, steps + 1):
        x, y = long_lag_batch(r["batch"], lag, r["markers"], r["distractors"], gen)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), r["clip"])
        opt.step()
        if eval_every and (step % eval_every == 0 or step == steps):
            curve.append((step, accuracy()))
    acc = curve[-1][1] if curve[-1][0] == steps else accuracy()
    return acc, curve


def stdlib_corpus(max_chars: int) -> tuple[str, int]:
    """Python source from the standard library (sorted, so the same on every run): (text, files)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, total, files = [], 0, 0
    for path in sorted(root.glob("[a-z]*.py")):  # public modules, at most 30,000 characters of each
        try:
            text = path.read_text(encoding="utf-8")[:30_000]
        except (OSError, UnicodeDecodeError):
            continue
        parts.append(text)
        total += len(text)
        files += 1
        if total >= max_chars:
            break
    if total < 20_000:
        raise UsageError(f"found only {total} characters of Python source under {root}; the demo needs 20,000")
    return "".join(parts)[:max_chars], files


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="a plain RNN fails a long time lag that an LSTM bridges; then a char model")
    p.add_argument("--quick", action="store_true", help="a shorter lag and fewer steps (under 30 s)")
    p.add_argument("--lag", type=int, default=None, help="distractor steps between the marker and the question "
                                                        f"(default {FULL['lag']}, quick {QUICK['lag']})")
    p.add_argument("--steps", type=int, default=None, help="training steps per cell on the long-lag task")
    p.add_argument("--char-seconds", type=float, default=None,
                   help=f"training time of the character model (default {FULL['char_seconds']}, "
                        f"quick {QUICK['char_seconds']})")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/demo-DATE-TIME)")
    p.set_defaults(run=run)


def _plot_lag(curves: dict, lag: int, path: Path) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for cell, curve in curves.items():
        ax.plot([s for s, _ in curve], [a for _, a in curve], "o-", markersize=3, label=cell)
    ax.axhline(1 / LAG_RECIPE["markers"], color="grey", linestyle=":", label="chance")
    ax.set_xlabel("training step (128 sequences each)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Name the first symbol after {lag} distractors")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def run(args) -> int:
    from ..train.config import from_preset
    from ..train.run import load_run, set_threads, train

    s = dict(QUICK if args.quick else FULL)
    for key in ("lag", "steps", "char_seconds"):
        if getattr(args, key) is not None:
            if getattr(args, key) < 1:
                raise UsageError(f"--{key.replace('_', '-')} must be >= 1; got {getattr(args, key)}")
            s[key] = getattr(args, key)
    out = Path(args.out) if args.out else Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {str(out)!r} already exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    set_threads(1)
    from .. import engine
    if engine.mode() != "off":
        engine.load()  # a fresh machine builds the engine here (once), not inside a timed run
    t_start = time.perf_counter()

    # ---- part 1 ---------------------------------------------------------------------------
    r = LAG_RECIPE
    print(f"1. Remember the first of {s['lag'] + 1} symbols: {r['markers']} possible markers, then {s['lag']} "
          f"random distractors.\n   {s['steps']} Adam steps of {r['batch']} sequences per cell; "
          f"chance = {1 / r['markers']:.0%}.", flush=True)
    results, curves = {}, {}
    for cell in ("rnn", "lstm", "gru"):
        t0 = time.perf_counter()
        acc, curve = train_and_score(cell, s["lag"], s["steps"], args.seed, s["eval_every"])
        results[cell], curves[cell] = acc, curve
        verdict = "remembers" if acc > 0.9 else ("forgets" if acc < 0.5 else "partly")
        note = {"lstm": f"  forget-gate bias {r['forget_bias']:g}",
                "gru": "  update gate starts at 0.5, no bias head start"}.get(cell, "")
        print(f"   {cell:<5} test accuracy {acc:6.1%}  {verdict:<9} ({time.perf_counter() - t0:4.1f} s){note}",
              flush=True)
    _plot_lag(curves, s["lag"], out / "long_lag.png")

    # ---- part 2 ---------------------------------------------------------------------------
    text, files = stdlib_corpus(s["chars"])
    corpus = out / "stdlib.txt"
    corpus.write_text(text, encoding="utf-8")
    cfg = from_preset("char-small")
    cfg.data.path = str(corpus)
    cfg.train.epochs, cfg.train.time_budget = 0, s["char_seconds"]
    cfg.train.eval_every, cfg.train.log_every = 100, 25
    cfg.train.eval_batch_size = 32
    cfg.train.seed = args.seed
    m = cfg.model
    print(f"\n2. A {m.layers}x{m.hidden} LSTM character model of Python's standard library ({files} files, "
          f"{len(text):,} characters), trained for {s['char_seconds']:g} s:", flush=True)
    summary = train(cfg, out / "charlm", progress=not args.quick)
    task, _, vocab, model, _ = load_run(out / "charlm")
    samples = [task.generate(model, vocab, prime, 240, temperature=0.7, seed=args.seed + i)
               for i, prime in enumerate(("def ", "class "))]
    print(f"   {summary['steps']} steps of 32 x 64 characters; validation {summary['best_valid_bpc']:.2f} bits/char "
          f"(uniform over its {len(vocab)} characters: {math.log2(len(vocab)):.2f}). Samples (temperature 0.7):")
    for sample in samples:
        print("   ---\n" + "\n".join("   " + line for line in sample.splitlines()))
    (out / "samples.txt").write_text("\n\n---\n\n".join(samples) + "\n", encoding="utf-8")
    corpus.unlink()  # a copy of the standard library is not worth keeping

    total = time.perf_counter() - t_start
    (out / "summary.json").write_text(json.dumps({
        "long_lag": {"lag": s["lag"], "steps": s["steps"], "recipe": r, "accuracy": results, "curves": curves},
        "charlm": {k: summary[k] for k in ("steps", "best_valid_bpc", "train_seconds", "parameters")},
        "seconds": round(total, 1)}, indent=1) + "\n")
    print(f"\nDone in {total:.0f} s. Plots, samples and the char model's run are in {out}/ "
          f"(long_lag.png, charlm/curve.png, samples.txt, summary.json)")
    return 0
