"""A/B two builds of the compiled engine in one process: one layer-direction's C++ loop, interleaved.

    git stash; .venv/bin/python -m lstmkit.engine          # build A, note its "dir"
    git stash pop; .venv/bin/python -m lstmkit.engine      # build B, note its "dir"
    .venv/bin/python benchmarks/engine_ab.py DIR_A DIR_B --shape 100 32 256 256 --mode infer --family lstm

This machine's speed drifts by 10-50 % within minutes (a shared VM), so two processes timed one
after the other cannot settle a 5 % change. Here both builds (each cached under its own digest in
``$LSTMKIT_CACHE``) are imported side by side and called in ABBA order, so drift hits both
alike, and caches warmed by one call help the other equally. Only the loop is timed: the input
projection ``xw`` is a fixed random tensor, so the builds' C++ code is the only difference.
``--family lstm-ln`` adds layer norm's parameters; ``gru-before`` is Cho et al.'s GRU (reset_after=False); ``lstm-proj`` has proj_size = H/2;
``fgr`` is Greff's full gate recurrence with peepholes (its weight ``[W_hh | R]`` with C̃'s zero block). Prints the medians and their ratio B/A.
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import statistics
import time

import torch

from lstmkit.engine import function as F

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
FLAGS = {"lstm": 1 | 2 | 4 | 16 | 32, "gru": 1, "rnn": 0}  # lstm; gru reset_after; rnn tanh


def load_build(directory: str):
    """Import the engine module cached in `directory` (its name carries the build's digest)."""
    so = glob.glob(f"{directory}/lstmkit_engine_*.so")
    if not so:
        raise SystemExit(f"no engine build in {directory} (expected lstmkit_engine_*.so; run python -m lstmkit.engine)")
    name = so[0].rsplit("/", 1)[-1][:-3]
    spec = importlib.util.spec_from_file_location(name, so[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def loop_call(ext, family: str, T: int, B: int, H: int, train: bool, seed: int = 0):
    """A closure running one layer-direction's forward (and, with `train`, backward) on `ext`."""
    ln = family == "lstm-ln"
    proj = family == "lstm-proj"
    fgr = family == "fgr"
    fam = {"lstm-ln": "lstm", "lstm-proj": "lstm", "gru-before": "gru", "fgr": "lstm"}.get(family, family)
    g = torch.Generator().manual_seed(seed)
    G = GATES[fam]
    xw = torch.randn(T * B, G * H, generator=g)
    P = H // 2 if proj else H  # the recurrent input's width
    p = {"weight_hh": torch.randn(G * H, P, generator=g) / P ** 0.5, "bias_hh": 0.1 * torch.randn(G * H, generator=g)}
    if proj:
        p["weight_hr"] = torch.randn(P, H, generator=g) / H ** 0.5
    if fgr:  # as function.fgr_weight: R (3H, 3H) in the sigmoid gates' rows i, f, o; zeros in C̃'s
        r = torch.randn(3 * H, 3 * H, generator=g) / (3 * H) ** 0.5
        p["weight_hh"] = torch.cat([p["weight_hh"], torch.cat([r[:2 * H], torch.zeros(H, 3 * H), r[2 * H:]])], dim=1)
        p.update({k: 0.1 * torch.randn(H, generator=g) for k in ("weight_ci", "weight_cf", "weight_co")})
    if ln:
        p.update(weight_ln_hh=1 + 0.1 * torch.randn(G * H, generator=g), weight_ln_c=1 + 0.1 * torch.randn(H, generator=g),
                 bias_ln_c=0.1 * torch.randn(H, generator=g))
    params = [p.get(k) for k in F.PARAMS[fam]]
    states = (torch.zeros(B, P + 3 * H * fgr), torch.zeros(B, H)) if fam == "lstm" else (torch.zeros(B, H),)
    flags = 0 if family == "gru-before" else FLAGS[fam] | 64 * fgr  # gru flag 1 = reset_after; 64: FGR
    cfg = F.Config(fam, flags, [B] * T, False, False)

    def run():
        out, _, saved = F.forward(ext, cfg, xw, states, params, train)
        if train:
            getattr(ext, f"{fam}_backward")(cfg.flags, torch.ones_like(out), *map(torch.zeros_like, states),
                                            list(saved), params, cfg.batch_sizes, False, False)
    return run


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_a")
    ap.add_argument("build_b")
    ap.add_argument("--shape", nargs=3, type=int, default=[100, 32, 256], metavar=("T", "B", "H"))
    ap.add_argument("--mode", choices=["infer", "train"], default="infer")
    ap.add_argument("--family", choices=[*GATES, "lstm-ln", "lstm-proj", "gru-before", "fgr"], default="lstm")
    ap.add_argument("--reps", type=int, default=30, help="timed calls per build (median reported)")
    args = ap.parse_args(argv)
    T, B, H = args.shape
    train = args.mode == "train"
    fa, fb = (loop_call(load_build(d), args.family, T, B, H, train) for d in (args.build_a, args.build_b))
    times = {fa: [], fb: []}
    for f in (fa, fb, fa, fb):  # warm-up
        f()
    with torch.no_grad():
        for i in range(args.reps):
            for f in ((fa, fb) if i % 2 == 0 else (fb, fa)):  # ABBA
                t = time.perf_counter()
                f()
                times[f].append(time.perf_counter() - t)
    ma, mb = (statistics.median(times[f]) * 1e3 for f in (fa, fb))
    print(f"{args.family} {args.mode} T={T} B={B} H={H} ({torch.get_num_threads()} threads): "
          f"A {ma:.2f} ms, B {mb:.2f} ms, B/A {mb / ma:.3f}")


if __name__ == "__main__":
    main()
