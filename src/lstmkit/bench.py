"""Speed of lstmkit's engine against torch.nn.LSTM / GRU / RNN, and of the reference loop.

    lstmkit bench                                        # every shape, both modes; writes JSON + docs table
    lstmkit bench --reps 5 --shapes 100,32,64,64 --no-doc
    .venv/bin/python benchmarks/speed.py ...             # the same, from the repository root

Every candidate sits behind one interface (a callable running forward, or forward and
backward of ``y.sum()``). Per shape and mode the candidates run interleaved, A B C A B C
..., after a warm-up, and each row reports the median of ``--reps`` runs and its ratio to
``torch.nn.LSTM`` measured in the same interleaved run. FLOPs are counted one way
everywhere: a layer's forward is 2·T·B·G·H·(I + P) (+ 2·T·B·H·P with a projection),
training 3× that. A GEMM section times the per-step recurrent product with MKL and with
oneDNN's prepacked path (the engine picks by size, see ``kOneDnnMinFlops``). A streaming
section times one step at B=1 through ``lstmkit.Stepper`` against ``nn.LSTM`` called with T=1
and ``nn.LSTMCell``, interleaved the same way.

Results go to ``benchmarks/results/speed.json`` and the table between the markers in
``docs/performance.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import lstmkit
from lstmkit import engine

SHAPES = [(100, 32, 64, 64), (100, 32, 256, 256), (100, 64, 512, 512), (500, 16, 128, 128)]
BEGIN, END = "<!-- speed-table:begin -->", "<!-- speed-table:end -->"

# Targets from issue 3, as a multiple of nn.LSTM's time (variants also scale by FLOP ratio).
TARGETS = {"lstm": 1.0, "gru": 0.85, "rnn": 0.4}
VARIANT_SLACK = 1.15


def gates_of(name: str) -> int:
    if name.startswith("nn.") or name in ("gru", "rnn"):
        return {"nn.LSTM": 4, "nn.GRU": 3, "nn.RNN": 1, "gru": 3, "rnn": 1}[name]
    return len(lstmkit.get_variant(name.split()[0].split("/")[0]).spec.gates)


def forward_flops(T, B, I, H, G, P=0, S=0) -> float:
    """A layer's forward FLOPs; S: FGR's sigmoid gates, whose S·H x S·H gate recurrence adds its product."""
    return (2.0 * T * B * G * H * (I + (P or H)) + (2.0 * T * B * H * P if P else 0.0)
            + 2.0 * T * B * (S * H) ** 2)


class Candidate:
    """A named module + how to call it, with the env the engine switch needs."""

    def __init__(self, name, module, engine_mode=None, gates=4, proj=0, family="lstm", layers=1,
                 reference_only=False, gate_recurrence=0):
        self.name, self.module, self.engine_mode = name, module, engine_mode
        self.gates, self.proj, self.family = gates, proj, family
        self.gate_recurrence = gate_recurrence  # FGR: the number of sigmoid gates that recur
        self.layers = layers  # FLOPs are counted per layer
        self.reference_only = reference_only  # a structure the engine has no kernel for (no target)

    def __call__(self, x, train: bool):
        if self.engine_mode is not None:
            os.environ["LSTMKIT_ENGINE"] = self.engine_mode
        if train:
            out, _ = self.module(x)
            out.sum().backward()
        else:
            with torch.no_grad():
                self.module(x)


def candidates(I: int, H: int, with_reference: bool) -> list[Candidate]:
    P = H // 2
    c = [
        Candidate("nn.LSTM", torch.nn.LSTM(I, H)),
        Candidate("lstm", lstmkit.LSTM(I, H), "1"),
        Candidate("peephole", lstmkit.LSTM(I, H, variant="peephole"), "1"),
        Candidate("cifg", lstmkit.LSTM(I, H, variant="cifg"), "1", gates=3),
        Candidate("nog", lstmkit.LSTM(I, H, variant="nog"), "1", gates=3),
        Candidate("fgr", lstmkit.LSTM(I, H, variant="fgr"), "1", gate_recurrence=3),
        Candidate("lstm layer_norm", lstmkit.LSTM(I, H, layer_norm=True), "1"),
        Candidate("nn.LSTM proj", torch.nn.LSTM(I, H, proj_size=P), proj=P),
        Candidate("lstm proj", lstmkit.LSTM(I, H, proj_size=P), "1", proj=P),
        Candidate("nn.GRU", torch.nn.GRU(I, H), gates=3, family="gru"),
        Candidate("gru", lstmkit.GRU(I, H), "1", gates=3, family="gru"),
        Candidate("gru reset_before", lstmkit.GRU(I, H, reset_after=False), "1", gates=3, family="gru"),
        Candidate("nn.RNN", torch.nn.RNN(I, H), gates=1, family="rnn"),
        Candidate("rnn", lstmkit.RNN(I, H), "1", gates=1, family="rnn"),
    ]
    if with_reference:
        c.append(Candidate("lstm reference loop", lstmkit.LSTM(I, H), "0"))
        c.append(Candidate("lstm layer_norm reference loop", lstmkit.LSTM(I, H, layer_norm=True), "0"))
        c += architecture_candidates(I, H)
    return c


def architecture_candidates(I: int, H: int) -> list[Candidate]:
    """Issue 9's structures, which run on the reference path only (docs/performance.md says why),
    next to the reference and engine loops of what they extend. FLOPs are counted as for the
    full structure: MUTs as 3 gates, the clockwork RNN as a full RNN (it computes fewer), the
    grid as 8 gates over [h^T; h^D] (two LSTM transforms of 2H inputs)."""
    ref = dict(engine_mode="0", reference_only=True)
    return [
        Candidate("gru reference loop", lstmkit.GRU(I, H), "0", gates=3, family="gru", reference_only=True),
        *(Candidate(v, lstmkit.GRU(I, H, variant=v), gates=3, family="gru", **ref) for v in ("mut1", "mut2", "mut3")),
        Candidate("rnn reference loop", lstmkit.RNN(I, H), "0", gates=1, family="rnn", reference_only=True),
        Candidate("clockwork 1,2,..,128", lstmkit.ClockworkRNN(I, H), gates=1, family="rnn", **ref),
        Candidate("grid 1 layer", lstmkit.GridLSTM(I, H), gates=8, family="grid", **ref),
        Candidate("lstm 2 layers", lstmkit.LSTM(I, H, num_layers=2), "1", layers=2),
        Candidate("lstm 2 layers reference loop", lstmkit.LSTM(I, H, num_layers=2), "0", layers=2,
                  reference_only=True),
        Candidate("lstm 2 layers depth_gate", lstmkit.LSTM(I, H, num_layers=2, depth_gate=True), layers=2, **ref),
    ]


def time_interleaved(cands, x, train: bool, reps: int, warmup: int) -> dict[str, list[float]]:
    times = {c.name: [] for c in cands}
    for it in range(warmup + reps):
        for c in cands:
            c.module.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            c(x, train)
            dt = time.perf_counter() - t0
            if it >= warmup:
                times[c.name].append(dt)
    return times


def gemm_rates(B: int, H: int, reps: int) -> dict:
    """The step's recurrent product (B×H → 4H): MKL (what the engine calls) vs oneDNN prepacked."""
    h, w = torch.randn(B, H), torch.randn(4 * H, H)
    out = torch.empty(B, 4 * H)
    n = 200
    res = {}
    fns = {"mkl": lambda: torch.mm(h, w.t(), out=out)}
    try:
        wp = torch.ops.mkldnn._reorder_linear_weight(w, B)
        fns["onednn"] = lambda: torch.ops.mkldnn._linear_pointwise(h, wp, None, "none", [], "")
    except Exception:  # not every build has the prepacked op
        pass
    for name, fn in fns.items():
        for _ in range(20):
            fn()
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples.append((time.perf_counter() - t0) / n)
        s = statistics.median(samples)
        res[name] = {"us_per_call": s * 1e6, "gflops": 2.0 * B * H * 4 * H / s / 1e9}
    return res


STREAM_SIZES = (128, 256, 512)


def streaming(sizes, reps: int, n: int = 2000) -> list[dict]:
    """Latency of one step at B=1 (input size = H): lstmkit.Stepper (1 and 2 threads) vs torch.nn."""
    rows = []
    for H in sizes:
        torch.manual_seed(0)
        ours = lstmkit.LSTM(H, H).eval()
        nn_lstm, cell = torch.nn.LSTM(H, H), torch.nn.LSTMCell(H, H)
        x, x3 = torch.randn(1, H), torch.randn(1, 1, H)
        s1, s2 = lstmkit.Stepper(ours, threads=1), lstmkit.Stepper(ours, threads=2)
        state = {"lstm": None, "cell": None}

        def nn_step():
            _, state["lstm"] = nn_lstm(x3, state["lstm"])

        def cell_step():
            state["cell"] = cell(x, state["cell"])

        fns = {"Stepper (1 thread)": lambda: s1.step(x), "Stepper (2 threads)": lambda: s2.step(x),
               "nn.LSTMCell": cell_step, "nn.LSTM (T=1)": nn_step}
        samples = {k: [] for k in fns}
        calls = {}
        with torch.no_grad():
            for k, fn in fns.items():  # calls per sample: about 20 ms' worth, at most n
                t0 = time.perf_counter()
                for _ in range(10):
                    fn()
                calls[k] = max(3, min(n, int(0.02 / ((time.perf_counter() - t0) / 10))))
            for it in range(reps + 1):
                for k, fn in fns.items():
                    m = calls[k]
                    t0 = time.perf_counter()
                    for _ in range(m):
                        fn()
                    if it:
                        samples[k].append((time.perf_counter() - t0) / m)
        base = statistics.median(samples["nn.LSTMCell"])
        for k, v in samples.items():
            med = statistics.median(v)
            rows.append({"H": H, "name": k, "us": med * 1e6, "ratio_to_cell": med / base,
                         "gflops": 2.0 * 4 * H * 2 * H / med / 1e9})
            print(f"streaming H={H:4d} {k:20s} {med * 1e6:8.1f} us  x{med / base:5.2f} of nn.LSTMCell", flush=True)
    return rows


def machine() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(shapes, reps: int, warmup: int, reference_up_to: int, stream_sizes=STREAM_SIZES, only=None) -> dict:
    torch.manual_seed(0)
    assert engine.available(), "the engine is unavailable (LSTMKIT_ENGINE=0 or no compiler)"
    results = {"machine": machine(), "threads": torch.get_num_threads(), "torch": torch.__version__,
               "cpu_capability": torch.backends.cpu.get_cpu_capability(), "reps": reps, "warmup": warmup,
               "engine_build": dict(engine.build.last_build), "time": time.strftime("%Y-%m-%d %H:%M"),
               "rows": [], "gemm": [], "streaming": []}
    results["streaming"] = streaming(stream_sizes, reps)
    for T, B, I, H in shapes:
        cands = candidates(I, H, with_reference=T * B * H <= reference_up_to)
        if only:  # a subset, always with the nn.LSTM baseline the ratios refer to
            cands = [c for c in cands if c.name == "nn.LSTM" or c.name in only]
        x = torch.randn(T, B, I)
        for train in (True, False):
            mode = "train" if train else "infer"
            times = time_interleaved(cands, x, train, reps, warmup)
            base = statistics.median(times["nn.LSTM"])
            for c in cands:
                med = statistics.median(times[c.name])
                fl = forward_flops(T, B, I, H, c.gates, c.proj, c.gate_recurrence) * (3 if train else 1) * c.layers
                row = {"shape": [T, B, I, H], "mode": mode, "name": c.name, "ms": med * 1e3,
                       "ratio": med / base, "gflops": fl / med / 1e9,
                       "spread_ms": [min(times[c.name]) * 1e3, max(times[c.name]) * 1e3]}
                row["target"] = target_for(c, T, B, I, H)
                results["rows"].append(row)
                print(f"{str((T, B, I, H)):20s} {mode:5s} {c.name:22s} {med * 1e3:9.2f} ms  "
                      f"x{med / base:5.2f}  {row['gflops']:6.1f} GF/s", flush=True)
        g = gemm_rates(B, H, reps)
        results["gemm"].append({"shape": [T, B, I, H], **g})
        print(f"{str((T, B, I, H)):20s} step GEMM {B}x{H}->{4 * H}: " +
              ", ".join(f"{k} {v['us_per_call']:.1f} us {v['gflops']:.0f} GF/s" for k, v in g.items()), flush=True)
    os.environ.pop("LSTMKIT_ENGINE", None)
    return results


def target_for(c: Candidate, T: int, B: int, I: int, H: int):
    """The target ratio to nn.LSTM for a candidate, or None where the issue sets none."""
    if c.name.startswith("nn.") or "reference" in c.name or c.reference_only or c.layers > 1:
        return None
    if c.family != "lstm":
        return TARGETS[c.family]
    if c.name == "lstm":
        return TARGETS["lstm"]
    # Other variants: 1.15x nn.LSTM scaled by their FLOP ratio to lstm (peepholes count as nothing;
    # fgr's gate recurrence adds its S·H x S·H product).
    return VARIANT_SLACK * forward_flops(T, B, I, H, c.gates, c.proj, c.gate_recurrence) / forward_flops(T, B, I, H, 4)


def table(results: dict) -> str:
    lines = [f"Machine: {results['machine']}, {results['threads']} threads, torch {results['torch']} "
             f"(CPU capability {results['cpu_capability']}); median of {results['reps']} interleaved runs "
             f"after {results['warmup']} warm-up, measured {results['time']}.", ""]
    shapes = []
    for r in results["rows"]:
        if r["shape"] not in shapes:
            shapes.append(r["shape"])
    names = []
    for r in results["rows"]:
        if r["name"] not in names:
            names.append(r["name"])
    head = "| candidate | " + " | ".join(f"{tuple(s)} {m}" for s in shapes for m in ("train", "infer")) + " |"
    lines += ["Time in ms and ratio to `torch.nn.LSTM` in the same run (target in brackets; "
              "**bold** = target missed):", "", head, "|---" * (1 + 2 * len(shapes)) + "|"]
    by = {(tuple(r["shape"]), r["mode"], r["name"]): r for r in results["rows"]}
    for n in names:
        cells = []
        for s in shapes:
            for m in ("train", "infer"):
                r = by.get((tuple(s), m, n))
                if r is None:
                    cells.append("—")
                    continue
                cell = f"{r['ms']:.1f} ({r['ratio']:.2f}×)"
                if r["target"] is not None:
                    cell = f"**{cell}** [≤{r['target']:.2f}]" if r["ratio"] > r["target"] else f"{cell} [≤{r['target']:.2f}]"
                cells.append(cell)
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "Achieved GF/s (same FLOP count for every candidate; training = 3× forward):", "",
              head, "|---" * (1 + 2 * len(shapes)) + "|"]
    for n in names:
        cells = [f"{by[(tuple(s), m, n)]['gflops']:.0f}" if (tuple(s), m, n) in by else "—"
                 for s in shapes for m in ("train", "infer")]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "One step's recurrent GEMM (B×H → 4H) in isolation, µs per call and GF/s:", "",
              "| shape | MKL `sgemm` | oneDNN prepacked (nn.LSTM's library; the engine's from 8 MFLOP per step) |", "|---|---|---|"]
    for g in results["gemm"]:
        cells = [f"{g[k]['us_per_call']:.1f} µs, {g[k]['gflops']:.0f} GF/s" if k in g else "—" for k in ("mkl", "onednn")]
        lines.append(f"| {tuple(g['shape'])} | " + " | ".join(cells) + " |")
    if results.get("streaming"):
        lines += ["", "Streaming: one step at B=1 (input size H), µs per step and ratio to `nn.LSTMCell` "
                  "(target: ≤15 µs at H=256):", "",
                  "| H | " + " | ".join(dict.fromkeys(r["name"] for r in results["streaming"])) + " |",
                  "|---" * (1 + len(dict.fromkeys(r["name"] for r in results["streaming"]))) + "|"]
        for H in dict.fromkeys(r["H"] for r in results["streaming"]):
            cells = [f"{r['us']:.1f} ({r['ratio_to_cell']:.2f}×)" for r in results["streaming"] if r["H"] == H]
            lines.append(f"| {H} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_doc(results: dict, path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path} lacks the markers {BEGIN} / {END}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{table(results)}\n{END}{tail}", encoding="utf-8")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by ``lstmkit bench`` and ``benchmarks/speed.py``)."""
    ap.add_argument("--shapes", nargs="*", default=None, help="T,B,I,H ... (default: the issue's four)")
    ap.add_argument("--reps", type=int, default=5, help="timed runs per candidate (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs per candidate first")
    ap.add_argument("--reference-up-to", type=int, default=100 * 32 * 256,
                    help="time the Python reference loop only where T*B*H is at most this (it is slow)")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/speed.json"),
                    help="where the results go (default: benchmarks/results/speed.json)")
    ap.add_argument("--doc", type=Path, default=Path("docs/performance.md"),
                    help="the doc whose table is regenerated (default: docs/performance.md)")
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite the table in the doc")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--only", nargs="*", default=None,
                    help="time only these candidates (and the nn.LSTM baseline), e.g. mut1 'grid 1 layer'")
    ap.add_argument("--stream-sizes", nargs="*", type=int, default=list(STREAM_SIZES),
                    help="hidden sizes for the streaming latency (none: skip it)")


def parse_shapes(values) -> list[tuple[int, int, int, int]]:
    from .errors import UsageError
    shapes = []
    for s in values:
        try:
            shape = tuple(int(v) for v in s.split(","))
        except ValueError:
            shape = ()
        if len(shape) != 4 or min(shape) < 1:
            raise UsageError(f"--shapes takes T,B,I,H with four positive integers; got {s!r}")
        shapes.append(shape)
    return shapes


def run_from_args(args) -> dict:
    """Run the benchmark as ``args`` say; writes the JSON (and the doc's table unless --no-doc)."""
    from .errors import UsageError
    if args.reps < 1 or args.warmup < 0:
        raise UsageError(f"--reps must be >= 1 and --warmup >= 0; got {args.reps} and {args.warmup}")
    if not args.no_doc and not args.doc.is_file():
        raise UsageError(f"--doc {str(args.doc)!r} does not exist (run from the repository root, or give --no-doc)")
    if not engine.available():
        raise UsageError("the benchmark times the compiled engine, which is unavailable "
                         "(LSTMKIT_ENGINE=0, or no C++ compiler)")
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = parse_shapes(args.shapes) if args.shapes else SHAPES
    results = run(shapes, args.reps, args.warmup, args.reference_up_to, args.stream_sizes, args.only)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    if not args.no_doc:
        write_doc(results, args.doc)
    print(f"wrote {args.json}" + ("" if args.no_doc else f" and {args.doc}"), file=sys.stderr)
    return results


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    run_from_args(ap.parse_args(argv))


if __name__ == "__main__":
    main()
