"""The streaming stepper (lstmkit.Stepper): one step per call equals the module's forward.

For every variant the engine covers (and, through the reference step, those it does not):
stepping a sequence one step at a time gives the module's eval-mode forward outputs and final
state, with one or several streams, one or two threads, float32 and float64; reset() restarts;
bidirectional modules are refused. Also: the engine's oneDNN products (forced on at every size
here) give the reference loop's outputs and gradients.
"""
from __future__ import annotations

import pytest
import torch

import lstmkit
from lstmkit.engine import function
from test_engine import _make, assert_close_scaled, ext  # noqa: F401  (the fixture)

CONFIGS = [
    ("plain", {}),
    ("proj", {"proj_size": 5}),  # LSTM only
    ("deep", {"num_layers": 3}),
    ("nobias", {"bias": False}),
    ("reset_before", {"reset_after": False}),  # GRU only
    ("relu", {"nonlinearity": "relu"}),  # RNN only
    ("cifg_nopeep", {"cifg": True, "peepholes": ()}),  # LSTM, a structure no registered variant has
]
_ONLY = {"proj": "lstm", "reset_before": "gru", "relu": "rnn", "cifg_nopeep": "lstm"}
COVERED = [v for v in lstmkit.variants() if function.supports_streaming(lstmkit.get_variant(v).spec)]


def _cases():
    for v in COVERED:
        fam, spec = lstmkit.get_variant(v).family, lstmkit.get_variant(v).spec
        for cid, cfg in CONFIGS:
            if _ONLY.get(cid, fam) != fam or (cid == "cifg_nopeep" and not (spec.input_gate and spec.forget_gate)):
                continue
            yield pytest.param(v, cfg, id=f"{v}-{cid}")


def _stream(stepper, x):
    return torch.stack([stepper.step(x[t]) for t in range(x.shape[0])])


def _check(m, stepper, x, hx=None, tol=None):
    with torch.no_grad():
        ref, state = m.eval()(x, hx)
    got = _stream(stepper, x)
    states = state if isinstance(state, tuple) else (state,)
    mine = stepper.state if isinstance(stepper.state, tuple) else (stepper.state,)
    for name, a, b in [("out", got, ref), *((f"state{i}", s, r) for i, (s, r) in enumerate(zip(mine, states)))]:
        if tol is None:
            assert_close_scaled(a, b, name)
        else:
            torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=lambda s, n=name: f"{n}: {s}")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("variant,cfg", list(_cases()))
def test_stepper_equals_forward(ext, gen, variant, cfg, batch, threads):
    m = _make(variant, cfg, torch.float32, gen, input_size=7, hidden_size=37)  # 37: odd, several panels
    with torch.no_grad():  # weights ~ N(0, 0.25²): a 3-layer tanh RNN at 0.5 is chaotic and amplifies round-off
        for p in m.parameters():
            p.mul_(0.5)
    x = torch.randn(9, batch, 7, generator=gen)
    stepper = lstmkit.Stepper(m, batch, threads=threads, engine=True)
    assert stepper.uses_engine
    _check(m, stepper, x)


@pytest.mark.parametrize("variant,cfg", [("peephole", {"proj_size": 3, "num_layers": 2}), ("gru", {"reset_after": False}),
                                         ("rnn", {"num_layers": 2})])
def test_stepper_float64_and_given_state(ext, gen, variant, cfg):
    m = _make(variant, cfg, torch.float64, gen, input_size=4, hidden_size=11)
    x = torch.randn(6, 2, 4, generator=gen, dtype=torch.float64)
    L, P = m.num_layers, m.proj_size or m.hidden_size
    hx = torch.randn(L, 2, P, generator=gen, dtype=torch.float64)
    if m.spec.family == "lstm":
        hx = (hx, torch.randn(L, 2, m.hidden_size, generator=gen, dtype=torch.float64))
    stepper = m.stepper(2)
    assert stepper.uses_engine
    stepper.reset(hx)
    _check(m, stepper, x, hx, tol=1e-12)
    stepper.reset()  # back to zeros: the same as a fresh forward
    _check(m, stepper, x, tol=1e-12)


@pytest.mark.parametrize("variant,kwargs", [("fgr", {}), ("lstm", {"layer_norm": True, "num_layers": 2}),
                                            ("gru", {"zoneout": 0.3}), ("lstm", {"zoneout": (0.2, 0.4)})])
def test_uncovered_modules_step_on_the_reference(ext, gen, variant, kwargs):
    m = _make(variant, kwargs, torch.float32, gen, input_size=5, hidden_size=8)
    stepper = lstmkit.Stepper(m)
    assert not stepper.uses_engine
    _check(m, stepper, torch.randn(6, 1, 5, generator=gen))
    with pytest.raises(RuntimeError, match="does not cover"):
        lstmkit.Stepper(m, engine=True)


def test_one_stream_takes_1d_input_and_reset_restarts(ext, gen):
    m = _make("lstm", {"num_layers": 2}, torch.float32, gen, input_size=5, hidden_size=16)
    stepper = lstmkit.Stepper(m)
    x = torch.randn(4, 5, generator=gen)
    first = torch.stack([stepper.step(x[t]) for t in range(4)])
    assert first.shape == (4, 16)
    stepper.reset()
    again = torch.stack([stepper.step(x[t]) for t in range(4)])
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    with torch.no_grad():
        ref, _ = m.eval()(x)
    assert_close_scaled(first, ref, "out")


def test_refusals(ext):
    with pytest.raises(ValueError, match="bidirectional"):
        lstmkit.Stepper(lstmkit.LSTM(3, 4, bidirectional=True))
    stepper = lstmkit.GRU(3, 4).stepper(2)
    with pytest.raises(RuntimeError, match="expected"):
        stepper.step(torch.randn(3, 3))
    with pytest.raises(RuntimeError, match="dtype|Double|double"):
        stepper.step(torch.randn(2, 3, dtype=torch.float64))
    with pytest.raises(TypeError):
        lstmkit.Stepper(torch.nn.LSTM(3, 4))


def test_stepper_packs_a_copy(ext, gen):
    """The packed weights do not follow later changes to the module until repack()."""
    m = _make("rnn", {}, torch.float32, gen, input_size=3, hidden_size=6)
    stepper = lstmkit.Stepper(m)
    x = torch.randn(3, 1, 3, generator=gen)
    before = _stream(stepper, x)
    with torch.no_grad():
        m.weight_hh_l0.mul_(0.5)
    stepper.reset()
    torch.testing.assert_close(_stream(stepper, x), before, rtol=0, atol=0)
    stepper.repack()
    _check(m, stepper, x)


@pytest.mark.parametrize("variant,cfg", [("lstm", {"proj_size": 3, "num_layers": 2}), ("peephole", {"bidirectional": True}),
                                         ("lstm", {"layer_norm": True, "num_layers": 2}),
                                         ("gru", {}), ("gru", {"reset_after": False}), ("rnn", {})])
def test_onednn_products_match_reference(ext, monkeypatch, gen, variant, cfg):
    """With the oneDNN threshold at 0 every float32 product (input projection under no_grad, the
    per-step recurrent product always) goes to oneDNN; outputs and gradients still match."""
    from test_engine import _inputs, _run

    m = _make(variant, cfg, torch.float32, gen)
    x, hx, lengths = _inputs(m, 7, 5, torch.float32, gen, packed=True)
    weight = torch.randn(10_000, generator=gen)
    monkeypatch.setenv("LSTMKIT_ENGINE", "0")
    ref = _run(m, x, hx, lengths, weight)
    with torch.no_grad():
        ref_out, _ = m(x)
    monkeypatch.setenv("LSTMKIT_ENGINE", "1")
    monkeypatch.setenv("LSTMKIT_ONEDNN_MIN_FLOPS", "0")
    got = _run(m, x, hx, lengths, weight)
    for k in ref:
        assert_close_scaled(got[k], ref[k], k)
    with torch.no_grad():
        out, _ = m(x)
    assert_close_scaled(out, ref_out, "no_grad out")
