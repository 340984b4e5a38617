"""bfloat16 autocast against float32: training speed at (100, 64, 512, 512) and a short training run's loss.

    .venv/bin/python benchmarks/bf16.py [--reps 5] [--threads 2] [--steps 60]

Issue 3's targets: bf16 autocast training at least 1.5x faster than fp32 torch.nn.LSTM, and
the loss of a short training run within 2 % of fp32. Speed: forward + backward of a sum, the
candidates interleaved after a warm-up, medians. Loss: a 2x256 LSTM language model on Tiny
Shakespeare characters (or, without the shared data, a synthetic copy task), the same seed
and batches in fp32 and under autocast, Adam 2e-3; the last 10 steps' mean loss is compared.
Writes benchmarks/results/bf16.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import lstmkit

ROOT = Path(__file__).resolve().parents[1]
TEXT = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


def speed(reps: int) -> dict:
    T, B, I, H = 100, 64, 512, 512
    torch.manual_seed(0)
    x = torch.randn(T, B, I)
    ours, ref = lstmkit.LSTM(I, H), torch.nn.LSTM(I, H)

    def step(m, bf16):
        m.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y, _ = m(x)
        y.float().sum().backward()

    cands = {"nn.LSTM fp32": (ref, False), "nn.LSTM bf16 autocast": (ref, True),
             "lstm fp32": (ours, False), "lstm bf16 autocast": (ours, True)}
    times = {k: [] for k in cands}
    for it in range(reps + 1):  # the first round is the warm-up
        for k, (m, bf16) in cands.items():
            t0 = time.perf_counter()
            step(m, bf16)
            if it:
                times[k].append(time.perf_counter() - t0)
    base = statistics.median(times["nn.LSTM fp32"])
    return {k: {"ms": statistics.median(v) * 1e3, "ratio_to_nn_lstm_fp32": statistics.median(v) / base}
            for k, v in times.items()}


def batches(steps: int, B: int = 32, T: int = 100):
    g = torch.Generator().manual_seed(0)
    if TEXT.is_file():
        text = TEXT.read_text(encoding="utf-8")
        chars = sorted(set(text))
        ids = torch.tensor([chars.index(c) for c in text[:400_000]])
        starts = torch.randint(0, len(ids) - T - 1, (steps, B), generator=g)
        return len(chars), [(ids[s[:, None] + torch.arange(T)].t(), ids[s[:, None] + torch.arange(1, T + 1)].t())
                            for s in starts], "Tiny Shakespeare characters"
    V = 16  # synthetic: predict the token 5 steps back
    out = []
    for _ in range(steps):
        x = torch.randint(0, V, (T, B), generator=g)
        out.append((x, torch.cat([x[:1].expand(5, B), x[:-5]])))
    return V, out, "a synthetic 5-step copy task"


def loss_curves(steps: int) -> dict:
    V, data, what = batches(steps)
    res = {"data": what}
    for name, bf16 in (("fp32", False), ("bf16 autocast", True)):
        torch.manual_seed(0)
        emb, rnn, dec = torch.nn.Embedding(V, 256), lstmkit.LSTM(256, 256, 2), torch.nn.Linear(256, V)
        params = [*emb.parameters(), *rnn.parameters(), *dec.parameters()]
        opt = torch.optim.Adam(params, lr=2e-3)
        losses = []
        for x, y in data:
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                h, _ = rnn(emb(x))
                logits = dec(h)
            loss = F.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            losses.append(loss.item())
        res[name] = {"first": losses[0], "last10_mean": statistics.fmean(losses[-10:]), "curve": losses}
    a, b = res["fp32"]["last10_mean"], res["bf16 autocast"]["last10_mean"]
    res["relative_difference"] = abs(b - a) / a
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="timed rounds after one warm-up round")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the targets' setting: 2)")
    ap.add_argument("--steps", type=int, default=60, help="training steps of the loss comparison")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "bf16.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = {"threads": args.threads, "time": time.strftime("%Y-%m-%d %H:%M"), "speed": speed(args.reps),
           "loss": loss_curves(args.steps)}
    for k, v in res["speed"].items():
        print(f"{k:24s} {v['ms']:8.1f} ms  x{v['ratio_to_nn_lstm_fp32']:.2f} of nn.LSTM fp32")
    L = res["loss"]
    print(f"loss on {L['data']}: fp32 {L['fp32']['last10_mean']:.4f}, bf16 {L['bf16 autocast']['last10_mean']:.4f} "
          f"(last 10 of {args.steps} steps): {100 * L['relative_difference']:.2f} % apart")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
