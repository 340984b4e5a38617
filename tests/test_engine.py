"""The compiled engine (lstmkit.engine) against the reference loop it mirrors.

For every variant and option the engine covers: outputs, final states and every gradient
(parameters, input, initial state) equal the reference's, within RTOL below in float32;
float64 gradcheck through the engine's hand-written backward; the dispatch sends what the
engine does not cover to the reference loop; the cached build is reused; and without the
extension the reference loop runs after one warning.

The first test to need the engine builds it (minutes, once per machine and source version);
the tests skip, with the reason, when no C++ compiler or build is available.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit import engine
from lstmkit.engine import build, function

# float32: engine and reference round differently (fused pointwise pass, BLAS called directly,
# sums in another order). Relative 1e-5 is measured against each tensor's scale (its largest
# magnitude): a weight gradient sums N rows of products, so an element that cancels to near
# zero carries the absolute round-off of its O(scale) terms. Observed: < 1e-6 of the scale.
RTOL = 1e-5


def assert_close_scaled(got, ref, name):
    scale = max(1.0, ref.abs().max().item())
    torch.testing.assert_close(got, ref, rtol=RTOL, atol=RTOL * scale, msg=lambda s: f"{name}: {s}")

# Every registered variant the engine covers, each with structure-changing options on top.
ENGINE_VARIANTS = [v for v in lstmkit.variants() if function.supports(lstmkit.get_variant(v).spec)]
CONFIGS = [
    ("plain", {}),
    ("proj", {"proj_size": 3}),  # LSTM only
    ("bidir2", {"bidirectional": True, "num_layers": 2}),
    ("nobias", {"bias": False}),
    ("reset_before", {"reset_after": False}),  # GRU only
    ("relu", {"nonlinearity": "relu"}),  # RNN only
    ("cifg_nopeep", {"cifg": True, "peepholes": ()}),  # LSTM: a structure no registered variant has
    ("peep_f_only", {"peepholes": ("f",)}),  # LSTM with a forget gate of its own
    ("ln", {"layer_norm": True}),  # LSTM only
    ("ln_proj", {"layer_norm": True, "proj_size": 3, "bias": False}),  # LSTM only
    ("rnn_ln", {"layer_norm": True}),  # RNN only
    ("gru_ln", {"layer_norm": True}),  # GRU only (reset_after)
    ("gru_ln_before", {"layer_norm": True, "reset_after": False, "bidirectional": True}),  # GRU only: two products normalised
    ("rnn_ln_nobias", {"layer_norm": True, "bias": False, "nonlinearity": "relu"}),  # RNN only
]
_ONLY = {"proj": "lstm", "reset_before": "gru", "relu": "rnn", "cifg_nopeep": "lstm", "peep_f_only": "lstm",
         "ln": "lstm", "ln_proj": "lstm", "rnn_ln": "rnn", "rnn_ln_nobias": "rnn", "gru_ln": "gru",
         "gru_ln_before": "gru"}


def _cases():
    for v in ENGINE_VARIANTS:
        fam, spec = lstmkit.get_variant(v).family, lstmkit.get_variant(v).spec
        for cid, cfg in CONFIGS:
            if _ONLY.get(cid, fam) != fam:
                continue
            if cid == "cifg_nopeep" and not (spec.input_gate and spec.forget_gate):
                continue
            if cid == "peep_f_only" and not (spec.forget_gate and not spec.coupled):
                continue
            yield pytest.param(v, cfg, id=f"{v}-{cid}")


@pytest.fixture(scope="module")
def ext():
    """The built extension (building it if needed), or a skip saying why there is none."""
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler on PATH: the engine cannot be built here")
    if engine.mode() == "off":
        pytest.skip("LSTMKIT_ENGINE=0 disables the engine")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            module = engine.load()
    except (build.EngineUnavailable, RuntimeWarning) as e:
        pytest.skip(f"the engine could not be built: {e}")
    assert module is not None
    return module


@pytest.fixture
def engine_calls(monkeypatch):
    """Counts layer-directions the engine runs (function.run is what the dispatch calls)."""
    calls = []
    real = function.run

    def counting(*args, **kwargs):
        calls.append(args[1].family)
        return real(*args, **kwargs)

    monkeypatch.setattr(function, "run", counting)
    return calls


def _make(variant, cfg, dtype, gen, input_size=7, hidden_size=19):
    m = lstmkit.make_layer(variant, input_size, hidden_size, dtype=dtype, **cfg)
    with torch.no_grad():  # random everything, so no parameter sits at a special value
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype) * 0.5)
    return m


def _inputs(m, T, B, dtype, gen, packed):
    x = torch.randn(T, B, m.input_size, generator=gen, dtype=dtype)
    LD = m.num_layers * (2 if m.bidirectional else 1)
    hx = [torch.randn(LD, B, m.proj_size or m.hidden_size, generator=gen, dtype=dtype)]
    if m.spec.family == "lstm":
        hx.append(torch.randn(LD, B, m.hidden_size, generator=gen, dtype=dtype))
    lengths = None
    if packed:  # unequal lengths, longest first, the last sequence a single step (needs 3 <= B <= 5)
        lengths = torch.tensor(sorted([T, T - 2, 1] + [T, T // 2][: B - 3], reverse=True))
    return x, hx, lengths


def _run(m, x, hx, lengths, weight):
    """Forward and backward of a loss touching the output and every final state."""
    m.zero_grad()
    x = x.clone().requires_grad_(True)
    hx = [h.clone().requires_grad_(True) for h in hx]
    inp = x if lengths is None else pack_padded_sequence(x, lengths)
    out, state = m(inp, tuple(hx) if len(hx) == 2 else hx[0])
    y = out if lengths is None else out.data
    states = state if isinstance(state, tuple) else (state,)
    loss = (y * weight[: y.numel()].view_as(y)).sum() + sum((s * s).sum() for s in states)
    loss.backward()
    grads = {n: p.grad for n, p in m.named_parameters()}
    grads.update(x=x.grad, **{f"hx{i}": h.grad for i, h in enumerate(hx)})
    return {"out": y.detach(), **{f"state{i}": s.detach() for i, s in enumerate(states)}, **grads}


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("variant,cfg", list(_cases()))
def test_engine_matches_reference(ext, engine_calls, monkeypatch, gen, variant, cfg, packed):
    dtype = torch.float32
    m = _make(variant, cfg, dtype, gen)
    x, hx, lengths = _inputs(m, 7, 5, dtype, gen, packed)
    weight = torch.randn(10_000, generator=gen, dtype=dtype)
    monkeypatch.setenv("LSTMKIT_ENGINE", "0")
    ref = _run(m, x, hx, lengths, weight)
    assert not engine_calls
    monkeypatch.setenv("LSTMKIT_ENGINE", "1")
    got = _run(m, x, hx, lengths, weight)
    assert len(engine_calls) == m.num_layers * (2 if m.bidirectional else 1)
    assert got.keys() == ref.keys()
    for k in ref:
        assert got[k] is not None, f"{k} got no gradient through the engine"
        assert_close_scaled(got[k], ref[k], k)


@pytest.mark.parametrize("variant,cfg", [
    ("lstm", {"bidirectional": True}), ("fgr", {"bidirectional": True, "num_layers": 2}), ("fgr", {"proj_size": 5}),
    ("fgr", {"cifg": True}), ("gru", {}), ("gru", {"reset_after": False}), ("rnn", {}), ("rnn", {"layer_norm": True}),
    ("gru", {"layer_norm": True}), ("gru", {"layer_norm": True, "reset_after": False}),
])
def test_onednn_step_products_match_reference(ext, engine_calls, monkeypatch, gen, variant, cfg):
    """Every per-step product on oneDNN (forced at every size): FGR's runs as two products without
    C̃'s zero block (FgrDnn in csrc/fgr.h: the sigmoid gates against [h, a], C̃ against h; backward
    dz W_hh and dz_sig R), with C̃'s block left out of its weight gradient too. Outputs and
    gradients equal the reference loop's."""
    monkeypatch.setenv("LSTMKIT_ONEDNN_MIN_FLOPS", "0")
    m = _make(variant, cfg, torch.float32, gen, hidden_size=24)
    x, hx, lengths = _inputs(m, 7, 5, torch.float32, gen, packed=True)
    weight = torch.randn(10_000, generator=gen)
    monkeypatch.setenv("LSTMKIT_ENGINE", "0")
    ref = _run(m, x, hx, lengths, weight)
    monkeypatch.setenv("LSTMKIT_ENGINE", "1")
    got = _run(m, x, hx, lengths, weight)
    assert len(engine_calls) == m.num_layers * (2 if m.bidirectional else 1)
    for k in ref:
        assert_close_scaled(got[k], ref[k], k)


@pytest.mark.parametrize("variant,cfg", [
    ("lstm", {"proj_size": 2, "bidirectional": True}),
    ("peephole", {}), ("nig", {}), ("nfg", {}), ("nog", {}), ("niaf", {}), ("noaf", {}), ("cifg", {"proj_size": 2}),
    ("fgr", {"proj_size": 2, "bidirectional": True}), ("fgr", {"cifg": True}), ("fgr", {"layer_norm": True, "proj_size": 2}),
    ("fgr", {"layer_norm": True, "cifg": True}),
    ("lstm", {"layer_norm": True, "proj_size": 2}), ("noaf", {"layer_norm": True}), ("nog", {"layer_norm": True}),
    ("cifg", {"layer_norm": True, "bias": False}),
    ("gru", {"bidirectional": True}), ("gru", {"reset_after": False, "bias": False}), ("gru", {"layer_norm": True}),
    ("gru", {"layer_norm": True, "bias": False}), ("gru", {"layer_norm": True, "reset_after": False}),
    ("gru", {"layer_norm": True, "reset_after": False, "bias": False, "bidirectional": True}),
    ("rnn", {"num_layers": 2}), ("rnn", {"nonlinearity": "relu"}), ("rnn", {"layer_norm": True, "bidirectional": True}),
])
def test_gradcheck_through_engine(ext, engine_calls, monkeypatch, gen, variant, cfg):
    """float64 gradcheck of the hand-written backward, on packed input with unequal lengths."""
    monkeypatch.setenv("LSTMKIT_ENGINE", "1")
    dtype = torch.float64
    m = _make(variant, cfg, dtype, gen, input_size=3, hidden_size=5)
    x, hx, lengths = _inputs(m, 4, 3, dtype, gen, packed=True)
    names = [n for n, _ in m.named_parameters()]

    def f(x, *tensors):
        hs, params = tensors[:len(hx)], dict(zip(names, tensors[len(hx):]))
        state = tuple(hs) if len(hs) == 2 else hs[0]
        out, st = torch.func.functional_call(m, params, (pack_padded_sequence(x, lengths), state))
        return (out.data, *(st if isinstance(st, tuple) else (st,)))

    inputs = [x, *hx, *(p.detach() for p in m.parameters())]
    inputs = [t.clone().requires_grad_(True) for t in inputs]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)
    assert engine_calls, "the engine did not run"


@pytest.mark.parametrize("variant,cfg", [("lstm", {"proj_size": 3, "num_layers": 2}), ("gru", {"reset_after": False}),
                                         ("rnn", {"bidirectional": True}), ("fgr", {"num_layers": 2})])
def test_no_grad_matches_and_keeps_nothing(ext, engine_calls, monkeypatch, gen, variant, cfg):
    monkeypatch.setenv("LSTMKIT_ENGINE", "1")
    m = _make(variant, cfg, torch.float32, gen)
    x = torch.randn(6, 4, 7, generator=gen)
    out_grad, _ = m(x)
    applied = []
    monkeypatch.setattr(function.Direction, "apply", lambda *a: applied.append(a))
    with torch.no_grad():
        out, _ = m(x)
    assert not applied, "under no_grad the engine must not build an autograd node"
    assert out.grad_fn is None
    torch.testing.assert_close(out, out_grad.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("reverse", [False, True])
def test_fgr_gate_state_through_engine(ext, gen, reverse):
    """FGR's third state, the previous sigmoid gates a (B, S·H), which the layer API starts at zero
    and does not return: a nonzero a_0 and a loss on a_n, engine against the reference step in
    float64, then gradcheck of every input and parameter including ``weight_gr``."""
    from lstmkit.layers.loop import run_direction
    spec = lstmkit.get_variant("fgr").spec
    m = _make("fgr", {"proj_size": 3}, torch.float64, gen, input_size=3, hidden_size=4)
    p = {k: v.detach() for k, v in m._params()[0][0].items()}
    batch_sizes = [3, 3, 2, 1]
    xw = spec.input_projection(torch.randn(sum(batch_sizes), 3, generator=gen, dtype=torch.float64), p)
    state = tuple(torch.randn(3, w, generator=gen, dtype=torch.float64) for w in spec.state_widths(4, 3))
    names = list(p)

    def run(fn, xw, *tensors):
        st, params = tensors[:3], dict(zip(names, tensors[3:]))
        out, final = fn(spec, params, xw, batch_sizes, st, reverse=reverse)
        return (out, *final)

    def engine_run(spec, params, xw, batch_sizes, st, reverse):
        return function.run(ext, spec, params, xw, batch_sizes, st, reverse)

    def reference_run(spec, params, xw, batch_sizes, st, reverse):
        out, final, _ = run_direction(spec, params, xw, batch_sizes, st, reverse=reverse)
        return out, final

    inputs = [t.clone().requires_grad_(True) for t in (xw, *state, *p.values())]
    got, ref = run(engine_run, *inputs), run(reference_run, *inputs)
    assert len(got) == 4 and got[3].shape == (3, 3 * 4)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda *t: run(engine_run, *t), inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
def test_fgr_gate_state_with_unit_split_threads(ext, gen, reverse):
    """The same in float32 with H = 64 and 2 threads, where each thread owns some units of h and of
    every a-block (forward_split / backward_split in csrc/lstm.cpp): engine against the reference
    step in outputs, final states and the gradients of everything."""
    from lstmkit.layers.loop import run_direction
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        spec = lstmkit.get_variant("fgr").spec
        m = _make("fgr", {}, torch.float32, gen, input_size=5, hidden_size=64)
        with torch.no_grad():
            for q in m.parameters():
                q.mul_(0.2)  # moderate weights: randn * 0.5 saturates every gate at H = 64
        p = {k: v.detach() for k, v in m._params()[0][0].items()}
        batch_sizes = [36] * 3 + [20, 7]  # 2·36·256·256 ≈ 4.7 MFLOP per full step: split, on the panels
        xw = spec.input_projection(torch.randn(sum(batch_sizes), 5, generator=gen), p)
        state = tuple(torch.randn(36, w, generator=gen) * 0.5 for w in spec.state_widths(64, 0))
        weights = [torch.randn(t.shape, generator=gen) for t in (xw[:, :64], *state)]

        def grads(run):
            inputs = [t.clone().requires_grad_(True) for t in (xw, *state, *p.values())]
            out, final = run(spec, dict(zip(p, inputs[4:])), inputs[0], batch_sizes, tuple(inputs[1:4]))
            loss = sum((a * w).sum() for a, w in zip((out, *final), weights))
            loss.backward()
            return [out.detach(), *(f.detach() for f in final), *(t.grad for t in inputs)]

        got = grads(lambda *a: function.run(ext, *a, reverse))
        ref = grads(lambda *a: run_direction(*a, reverse=reverse)[:2])
        for i, (g, r) in enumerate(zip(got, ref)):
            if r is None:  # weight_ih and bias_ih: xw is given, so they get no gradient on either path
                assert g is None
                continue
            assert_close_scaled(g, r, f"tensor {i}")
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("variant,kwargs,why", [
    ("mut1", {}, "MUT1 (reference_only)"),
    ("lstm", {"return_internals": True}, "return_internals"),
])
def test_uncovered_options_use_the_reference(ext, engine_calls, monkeypatch, variant, kwargs, why):
    monkeypatch.setenv("LSTMKIT_ENGINE", "1")
    call = {k: kwargs.pop(k) for k in list(kwargs) if k == "return_internals"}
    m = lstmkit.make_layer(variant, 4, 6, **kwargs).train()
    m(torch.randn(3, 2, 4), **call)
    assert not engine_calls, f"{why} must run on the reference loop"


def test_other_dtypes_use_the_reference(ext, engine_calls):
    m = lstmkit.LSTM(4, 6, dtype=torch.bfloat16)
    m(torch.randn(3, 2, 4, dtype=torch.bfloat16))
    assert not engine_calls


# bfloat16 keeps 8 significant bits: each rounding is off by up to 2^-9 relative, and a product
# of K terms rounded on input drifts by ~sqrt(K) of those. Against the float32 result, 3e-2 of
# each tensor's scale holds those errors with room while catching a wrong dtype path (~1).
BF16_RTOL = 3e-2


@pytest.mark.parametrize("variant", ["lstm", "peephole", "gru", "rnn"])
def test_autocast_bf16(ext, engine_calls, monkeypatch, gen, variant):
    """Under CPU autocast both paths run the input projection in bf16 and the recurrence in
    float32, and both stay within bf16 error of the float32 result. Default init: with the
    large random weights of the other tests a tanh RNN is chaotic and amplifies any rounding."""
    torch.manual_seed(0)
    for layers in (1, 2):
        m = lstmkit.make_layer(variant, 16, 24, num_layers=layers, bidirectional=True)
        x, hx, _ = _inputs(m, 9, 3, torch.float32, gen, packed=False)
        weight = torch.randn(9 * 3 * 48, generator=gen)

        def run(autocast):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                return _run(m, x, hx, None, weight)

        monkeypatch.setenv("LSTMKIT_ENGINE", "0")
        ref, exact = run(True), run(False)
        monkeypatch.setenv("LSTMKIT_ENGINE", "1")
        engine_calls.clear()
        got = run(True)
        assert len(engine_calls) == 2 * layers, "the engine must run every layer-direction under autocast"
        assert got["out"].dtype == torch.float32 and got["state0"].dtype == torch.float32
        if layers == 1:  # the same bf16 projection, then float32 on both paths (deeper layers round
            assert_close_scaled(got["out"], ref["out"], "out")  # their inputs to bf16, which can flip)
        for name in got:
            scale = max(1.0, exact[name].abs().max().item())
            for which, res in (("engine", got), ("reference", ref)):
                torch.testing.assert_close(res[name], exact[name], rtol=BF16_RTOL, atol=BF16_RTOL * scale,
                                           msg=lambda s, n=name, w=which: f"{w} {n} vs float32: {s}")


@pytest.mark.parametrize("variant", ["lstm", "lstm-proj", "gru", "gru-reset-before", "rnn", "fgr"])
def test_autocast_bf16_recurrent_products(ext, engine_calls, monkeypatch, gen, variant):
    """Steps large enough for oneDNN (forced here at every size) take bf16 inputs under autocast,
    and the recurrent weight gradients are bf16 products: the result moves off the float32-product
    engine by bf16 rounding, and stays within bf16 error of the float32 run in every output and
    gradient."""
    torch.manual_seed(0)
    kw = {"lstm-proj": dict(proj_size=12), "gru-reset-before": dict(reset_after=False)}.get(variant, {})
    m = lstmkit.make_layer(variant.split("-")[0], 16, 24, num_layers=2, **kw)
    x, hx, _ = _inputs(m, 9, 5, torch.float32, gen, packed=False)
    weight = torch.randn(9 * 5 * 24, generator=gen)

    def run(autocast, onednn):
        monkeypatch.setenv("LSTMKIT_ONEDNN", "1" if onednn else "0")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return _run(m, x, hx, None, weight)

    monkeypatch.setenv("LSTMKIT_ENGINE", "1")
    monkeypatch.setenv("LSTMKIT_ONEDNN_MIN_FLOPS", "0")
    exact, fp32_products, got = run(False, True), run(True, False), run(True, True)
    assert engine_calls, "the engine must run"
    moved = [name for name in got if not torch.equal(got[name], fp32_products[name])]
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert "weight_hh_l0" in moved and "out" in moved, f"bf16 products changed only {moved}"
    else:  # an AVX2-only CPU: no bf16 kernels, so the recurrent products stay float32 (and must not fail);
        # oneDNN's float32 products round differently from the panel kernel's, hence not bit-equal
        for name in got:
            torch.testing.assert_close(got[name], fp32_products[name], rtol=1e-4, atol=1e-5,
                                       msg=lambda s, n=name: f"{n}: without bf16 kernels the products must stay float32: {s}")
    for name in got:
        scale = max(1.0, exact[name].abs().max().item())
        torch.testing.assert_close(got[name], exact[name], rtol=BF16_RTOL, atol=BF16_RTOL * scale,
                                   msg=lambda s, n=name: f"{n} vs float32: {s}")


def test_env_var(ext, engine_calls, monkeypatch):
    m = lstmkit.GRU(4, 6)
    x = torch.randn(3, 2, 4)
    monkeypatch.setenv("LSTMKIT_ENGINE", "0")
    m(x)
    assert not engine_calls
    monkeypatch.delenv("LSTMKIT_ENGINE")
    m(x)
    assert engine_calls == ["gru"]
    monkeypatch.setenv("LSTMKIT_ENGINE", "maybe")
    with pytest.raises(ValueError, match="LSTMKIT_ENGINE"):
        m(x)


def test_cached_build_is_reused(ext):
    """A fresh process finds the compiled module in the cache and does not compile again."""
    so = build.build_dir() / f"{build.module_name()}.so"
    assert so.exists()
    mtime = so.stat().st_mtime_ns
    code = ("import json; from lstmkit.engine import build; build.compile_and_load(); "
            "print(json.dumps(build.last_build))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LSTMKIT_ENGINE": "1"})
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["dir"] == str(build.build_dir())
    assert info["compiled"] is False
    assert info["so_mtime_ns"] == mtime == so.stat().st_mtime_ns


@pytest.mark.parametrize("family", ["lstm-ln", "fgr"])
def test_engine_ab_runs_two_builds_in_one_process(ext, family):
    """benchmarks/engine_ab.py imports two cached builds side by side (Stream is module-local, so a
    second module does not clash with the first) and times them; here the same build twice, in a
    fresh process, with the family whose backward has the most arguments, and FGR's widened state."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "engine_ab.py"
    d = str(build.build_dir())
    proc = subprocess.run([sys.executable, str(script), d, d, "--shape", "4", "3", "32", "--family", family,
                           "--mode", "train", "--reps", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "B/A" in proc.stdout
    bad = subprocess.run([sys.executable, str(script), d, str(Path(d) / "missing")], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode != 0 and "no engine build" in bad.stderr


def test_another_checkout_reuses_the_build(ext, tmp_path):
    """A second checkout of the same sources (a worktree, a CI clone) loads the cached module:
    the build compiles staged copies, not paths inside either checkout."""
    so = build.build_dir() / f"{build.module_name()}.so"
    mtime = so.stat().st_mtime_ns
    package = tmp_path / "checkout" / "lstmkit"
    shutil.copytree(Path(lstmkit.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import json; from lstmkit.engine import build; build.compile_and_load(); "
            "print(json.dumps({**build.last_build, 'file': build.__file__}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LSTMKIT_ENGINE": "1", "PYTHONPATH": str(package.parent)})
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["file"].startswith(str(package))
    assert info["compiled"] is False and info["so_mtime_ns"] == mtime


def test_build_dir_follows_sources_and_cache_var(monkeypatch, tmp_path):
    monkeypatch.setenv("LSTMKIT_CACHE", str(tmp_path))
    assert build.build_dir().parent == tmp_path
    assert build.build_dir().name == f"engine-{build.digest()}"


def test_fallback_warns_once_and_matches(monkeypatch, gen):
    """Without the extension (simulated: the loader raises) the reference loop runs, after one warning."""
    def unavailable():
        raise build.EngineUnavailable("simulated: no compiler")

    monkeypatch.setattr(build, "compile_and_load", unavailable)
    monkeypatch.setattr(engine, "_module", None)
    monkeypatch.setattr(engine, "_failure", None)
    monkeypatch.delenv("LSTMKIT_ENGINE", raising=False)
    m = _make("peephole", {"num_layers": 2}, torch.float32, gen)
    x = torch.randn(5, 3, 7, generator=gen)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out1, _ = m(x)
        out2, _ = m(x)
    msgs = [w for w in caught if "engine is unavailable" in str(w.message)]
    assert len(msgs) == 1 and issubclass(msgs[0].category, RuntimeWarning)
    assert "simulated" in str(msgs[0].message)
    monkeypatch.setenv("LSTMKIT_ENGINE", "0")
    ref, _ = m(x)
    torch.testing.assert_close(out1, ref, rtol=0, atol=0)
    torch.testing.assert_close(out2, ref, rtol=0, atol=0)
    monkeypatch.setenv("LSTMKIT_ENGINE", "1")
    with pytest.raises(build.EngineUnavailable, match="LSTMKIT_ENGINE=1"):
        m(x)
