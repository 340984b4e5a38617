"""``lstmkit gradflow``: ‖∂L/∂h_t‖ and ‖∂L/∂x_t‖ against the lag T − t, at initialisation and after training.

For each cell of ``--cells`` (any registered variant): build the adding-problem network
(1 layer, ``--hidden`` units), measure the gradient norms at initialisation, train it on
the adding problem for ``--train-steps`` Adam steps, and measure again. Then the
exploding case: a tanh RNN whose recurrent weights are large (W_hh ~ N(0, g²/H), g =
``--gain``), measured at initialisation and trained by SGD with and without norm clipping.

Writes into ``--out DIR``: gradflow.csv, gradflow.png, exploding.csv, exploding.png,
summary.json. See :mod:`lstmkit.inspect.gradflow` for how the norms are measured.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from pathlib import Path

import torch
from torch import nn

from ..errors import UsageError
from ..registry import variants
from ..plots import pyplot, save_figure


def add_parser(sub) -> None:
    p = sub.add_parser("gradflow", help="gradient norms against the time lag: vanishing and exploding gradients",
                       description="Measure ||dL/dh_t|| and ||dL/dx_t|| against the lag T - t on the adding "
                                   "problem, at initialisation and after training; plus an exploding case.")
    p.add_argument("--cells", default="rnn,lstm,gru", help="comma-separated variants: " + ", ".join(variants()))
    p.add_argument("--T", type=int, default=100, help="sequence length (the loss is read at step T)")
    p.add_argument("--hidden", type=int, default=32, help="hidden units")
    p.add_argument("--batch", type=int, default=64, help="sequences the norms are averaged over")
    p.add_argument("--train-steps", type=int, default=300, help="Adam steps on the adding problem before the "
                                                                "second measurement (0: only at initialisation)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate for the training")
    p.add_argument("--forget-bias", type=float, default=1.0, help="initial forget-gate bias of LSTM-family cells "
                                                                  "(1: the library default; the long-lag recipes use 5)")
    p.add_argument("--gain", type=float, default=3.0, help="exploding case: W_hh ~ N(0, gain^2 / H); 0 skips it")
    p.add_argument("--explode-steps", type=int, default=100, help="exploding case: SGD steps with and without clipping")
    p.add_argument("--explode-lr", type=float, default=0.1, help="exploding case: SGD learning rate")
    p.add_argument("--clip", type=float, default=1.0, help="exploding case: the gradient-norm clipping threshold")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", metavar="DIR", help="output directory (default runs/gradflow-DATE-TIME)")
    p.set_defaults(run=run)


def _check(args) -> list[str]:
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    if not cells:
        raise UsageError("--cells is empty; expected a comma-separated list of: " + ", ".join(variants()))
    for c in cells:
        if c not in variants():
            raise UsageError(f"unknown cell {c!r} in --cells; expected one of: {', '.join(variants())}")
    if len(set(cells)) != len(cells):
        raise UsageError(f"--cells names a cell twice: {args.cells}")
    if args.T < 10:
        raise UsageError(f"--T must be >= 10 (the adding problem marks one of the first ten steps); got {args.T}")
    for flag in ("hidden", "batch"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag} must be >= 1; got {getattr(args, flag)}")
    for flag in ("train_steps", "explode_steps", "threads"):
        if getattr(args, flag) < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= 0; got {getattr(args, flag)}")
    for flag in ("lr", "explode_lr", "clip"):
        v = getattr(args, flag)
        if not (v > 0 and math.isfinite(v)):
            raise UsageError(f"--{flag.replace('_', '-')} must be a positive number; got {v}")
    if not math.isfinite(args.forget_bias):
        raise UsageError(f"--forget-bias must be a finite number; got {args.forget_bias}")
    if not (args.gain >= 0 and math.isfinite(args.gain)):
        raise UsageError(f"--gain must be >= 0; got {args.gain}")
    return cells


def _net(cell: str, hidden: int, seed: int, forget_bias: float = 1.0):
    from ..models.longterm import LongTermNet
    torch.manual_seed(seed)
    return LongTermNet(cell, 2, hidden, 1, readout="last", forget_bias=forget_bias)


def _train_adding(net, T: int, steps: int, lr: float, seed: int, *, optimizer: str = "adam", clip: float = 1.0,
                  batch: int = 64):
    """Train ``net`` on the adding problem (fixed length T); returns [(step, loss, grad norm before clipping)]."""
    from ..data import longterm as gen
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(net.parameters(), lr=lr)
    log = []
    for step in range(1, steps + 1):
        x, y, lengths = gen.adding_batch(gen.rng_for(seed, gen.TRAIN, step), batch, T, jitter=False)
        out = net(torch.from_numpy(x), torch.from_numpy(lengths))[:, 0]
        loss = nn.functional.mse_loss(out, torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        norm = float(nn.utils.clip_grad_norm_(net.parameters(), clip if clip > 0 else float("inf")))
        log.append((step, loss.item(), norm))
        if not (math.isfinite(log[-1][1]) and math.isfinite(norm)):
            break  # diverged: the log shows where
        opt.step()
    return log


def _write_csv(path: Path, header: list[str], rows: list) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)


def _fmt(v) -> str:
    return "" if v is None else f"{v:.6g}"


def run(args) -> int:
    from ..inspect.gradflow import adding_sequences, decay_per_step, gradient_flow, large_recurrent_weights_
    from ..train.run import set_threads

    cells = _check(args)
    out = Path(args.out) if args.out else Path("runs") / f"gradflow-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {str(out)!r} already exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    set_threads(args.threads)
    x, target = adding_sequences(args.batch, args.T, args.seed)

    # ---- each cell at initialisation and after training ----------------------------------------
    rows, summary = [], {"T": args.T, "hidden": args.hidden, "train_steps": args.train_steps,
                         "forget_bias": args.forget_bias, "lr": args.lr, "cells": {}}
    curves = {}
    for cell in cells:
        net = _net(cell, args.hidden, args.seed, args.forget_bias)
        stages = [("init", gradient_flow(net, x, target))]
        train_loss = None
        if args.train_steps:
            log = _train_adding(net, args.T, args.train_steps, args.lr, args.seed)
            train_loss = sum(loss for _, loss, _ in log[-20:]) / len(log[-20:])
            stages.append(("trained", gradient_flow(net, x, target)))
        summary["cells"][cell] = {}
        for stage, g in stages:
            curves[(cell, stage)] = g
            for k in range(args.T):
                rows.append([cell, stage, k, _fmt(g["grad_h"][k]), _fmt(g["grad_x"][k]),
                             _fmt(g["grad_c"][k] if g["grad_c"] else None)])
            factor = decay_per_step(g["grad_h"], 1)
            summary["cells"][cell][stage] = {
                "loss": g["loss"], "grad_h_lag0": g["grad_h"][0], "grad_h_last": g["grad_h"][-1],
                "ratio_last_to_lag0": g["grad_h"][-1] / g["grad_h"][0] if g["grad_h"][0] else None,
                "factor_per_step": factor}
            print(f"{cell:<9} {stage:<8} loss {g['loss']:.4f}  ||dL/dh|| lag 0 {g['grad_h'][0]:.3g}, "
                  f"lag {args.T - 1} {g['grad_h'][-1]:.3g}  (x{factor:.3f} per step)", flush=True)
        if train_loss is not None:
            summary["cells"][cell]["train_loss_last20"] = train_loss
    _write_csv(out / "gradflow.csv", ["cell", "stage", "lag", "grad_h", "grad_x", "grad_c"], rows)

    # ---- exploding: large recurrent weights, with and without clipping ---------------------------
    explode = None
    if args.gain > 0:
        net = _net("rnn", args.hidden, args.seed)
        large_recurrent_weights_(net, args.gain, args.seed)
        g = curves[("rnn-large", "init")] = gradient_flow(net, x, target)
        factor = decay_per_step(g["grad_h"], 1)
        print(f"rnn W_hh ~ N(0, {args.gain:g}^2/H): ||dL/dh|| lag 0 {g['grad_h'][0]:.3g}, lag {args.T - 1} "
              f"{g['grad_h'][-1]:.3g} (x{factor:.3f} per step)", flush=True)
        logs = {}
        for clip in (0.0, args.clip):
            trial = _net("rnn", args.hidden, args.seed)
            large_recurrent_weights_(trial, args.gain, args.seed)
            logs[clip] = _train_adding(trial, args.T, args.explode_steps, args.explode_lr, args.seed + 1,
                                       optimizer="sgd", clip=clip)
        erows = [["lag", "", k, _fmt(g["grad_h"][k]), "", ""] for k in range(args.T)]
        for clip, log in logs.items():
            erows += [["train", clip, s, "", _fmt(loss), _fmt(norm)] for s, loss, norm in log]
        _write_csv(out / "exploding.csv", ["part", "clip", "lag_or_step", "grad_h", "loss", "grad_norm"], erows)
        explode = {"gain": args.gain, "factor_per_step": factor, "grad_h_lag0": g["grad_h"][0],
                   "grad_h_last": g["grad_h"][-1], "sgd_lr": args.explode_lr}
        for clip, log in logs.items():
            key = "no_clip" if clip == 0 else f"clip_{clip:g}"
            finite = [loss for _, loss, _ in log if math.isfinite(loss)]
            explode[key] = {"steps_run": len(log), "diverged": len(finite) < len(log) or len(log) < args.explode_steps,
                            "max_grad_norm": max(n for _, _, n in log),
                            "final_loss": log[-1][1], "max_loss": max(finite) if finite else None}
            print(f"  SGD lr {args.explode_lr:g}, {'no clipping' if clip == 0 else f'clip {clip:g}'}: "
                  f"{len(log)} steps, largest gradient norm {explode[key]['max_grad_norm']:.3g}, "
                  f"final loss {log[-1][1]:.4g}", flush=True)
        summary["exploding"] = explode
        _plot_exploding(g, logs, args, out / "exploding.png")

    _plot(curves, cells, args, out / "gradflow.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {out}/ (gradflow.csv, gradflow.png" + (", exploding.csv, exploding.png" if explode else "")
          + ", summary.json)")
    return 0


def _pyplot():
    return pyplot("lstmkit gradflow's plots")


def _positive(v):
    return [a if a and a > 0 else float("nan") for a in v]


def _plot(curves: dict, cells: list[str], args, path: Path) -> None:
    plt = _pyplot()
    stages = ["init"] + (["trained"] if args.train_steps else [])
    fig, axes = plt.subplots(1, len(stages), figsize=(6 * len(stages), 4.2), squeeze=False, sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lags = list(range(args.T))
    for ax, stage in zip(axes[0], stages):
        for i, cell in enumerate(cells):
            g = curves[(cell, stage)]
            c = colors[i % len(colors)]
            ax.semilogy(lags, _positive(g["grad_h"]), color=c, label=f"{cell} ‖∂L/∂h_t‖")
            ax.semilogy(lags, _positive(g["grad_x"]), color=c, linestyle="--", alpha=0.7, label=f"{cell} ‖∂L/∂x_t‖")
        title = "at initialisation" if stage == "init" else f"after {args.train_steps} Adam steps on adding"
        ax.set_title(f"{title} (T = {args.T})")
        ax.set_xlabel("lag T − t (steps back from the loss)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("gradient norm (mean over sequences)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _plot_exploding(g: dict, logs: dict, args, path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    axes[0].semilogy(range(args.T), _positive(g["grad_h"]), color="C3")
    axes[0].set_title(f"tanh RNN, W_hh ~ N(0, {args.gain:g}²/H): ‖∂L/∂h_t‖")
    axes[0].set_xlabel("lag T − t")
    for clip, log in logs.items():
        label = "no clipping" if clip == 0 else f"clipped at {clip:g}"
        steps = [s for s, _, _ in log]
        axes[1].semilogy(steps, _positive([loss for _, loss, _ in log]), label=label)
        axes[2].semilogy(steps, _positive([n for _, _, n in log]), label=label)
    axes[1].set_title(f"training loss (SGD lr {args.explode_lr:g}, adding T = {args.T})")
    axes[2].set_title("gradient norm before clipping")
    for ax in axes[1:]:
        ax.set_xlabel("step")
        ax.legend()
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    save_figure(fig, path)
