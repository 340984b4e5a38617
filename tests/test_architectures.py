"""Issue 9's architectures: depth-gated LSTM, MUT1-3, the Clockwork RNN and the Grid LSTM.

Each is checked against a reference written from its paper's equations, its degenerate case
(depth gate 0 = stacked LSTM; all clock periods 1 = tanh RNN with a block-masked W_H), float64
gradcheck, a smoke run (every parameter gets a gradient, the loss falls, nothing is NaN), bad
input, and the CLI's --cell. MUT1-3 are registered GRU-family variants, so the registry-wide
suites (test_smoke, test_gradcheck, test_degenerations, ...) cover them too.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from cli_helpers import TINY, run_cli, write_ptb, write_text
from conftest import FP64, random_params_
from cli_helpers import assert_usage_error, train_over
from test_cli_errors import earlier  # noqa: F401  (a fixture)
from test_degenerations import ref_mut
from torch import nn
from torch.autograd import gradcheck
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstmkit
from lstmkit.engine import function

DT = torch.float64
T, B, I, H = 6, 3, 4, 5

pytestmark = pytest.mark.usefixtures("single_thread")


def _states(s):
    return s if isinstance(s, tuple) else (s,)


def _close(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, **FP64)


def _gradcheck(module, x, hx, lengths=None, fast=False):
    """gradcheck of (output, final states) w.r.t. input, initial states and every parameter;
    then every one of them must really influence the result (non-zero gradient)."""
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in module.parameters()]
    states = [s.detach().clone().requires_grad_(True) for s in _states(hx)]
    x = x.detach().clone().requires_grad_(True)
    k = len(states)

    def f(x, *rest):
        h = tuple(rest[:k]) if k > 1 else rest[0]
        inp = x if lengths is None else pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, st = functional_call(module, dict(zip(names, rest[k:])), (inp, h))
        out = out.data if isinstance(out, PackedSequence) else out
        return (out, *_states(st))

    inputs = (x, *states, *params)
    assert gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=fast)
    grads = torch.autograd.grad(sum(o.sum() for o in f(*inputs)), inputs, allow_unused=True)
    for name, g in zip(["input", *(f"state{i}" for i in range(k)), *names], grads):
        assert g is not None and g.abs().sum() > 0, name


def _learns(module, steps=40, lr=0.03):
    """Smoke: a delayed copy (y_t = x_{t-1,0}); every parameter gets a finite, non-zero gradient
    and the held-out loss falls below 70 % of its start."""
    torch.manual_seed(0)
    head = nn.Linear(module.hidden_size, 1)
    params = list(module.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(0)

    def batch(n, g):
        x = torch.randn(10, n, module.input_size, generator=g)
        y = torch.zeros(10, n, 1)
        y[1:, :, 0] = x[:-1, :, 0]
        return x, y

    xe, ye = batch(128, torch.Generator().manual_seed(9))

    def loss_of(x, y):
        return F.mse_loss(head(module(x)[0]), y)

    with torch.no_grad():
        first = loss_of(xe, ye).item()
    for step in range(steps):
        loss = loss_of(*batch(16, gen))
        opt.zero_grad()
        loss.backward()
        for n, p in module.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), n
            if step == 0 and not n.startswith("weight_hh"):  # clockwork: weight_hh is partly masked
                assert p.grad.abs().sum() > 0, n
        opt.step()
    with torch.no_grad():
        last = loss_of(xe, ye).item()
    assert math.isfinite(last) and last < 0.7 * first, (first, last)


@pytest.fixture
def engine_calls(monkeypatch):
    calls = []
    real = function.run
    monkeypatch.setattr(function, "run", lambda *a, **k: calls.append(a[1].family) or real(*a, **k))
    return calls


# ---- depth-gated LSTM (Yao et al. 2015) ------------------------------------------------------


def ref_depth_gated(p: dict, x, h0, c0):
    """A 2-layer depth-gated LSTM from Yao et al.'s equations (no peepholes, torch's gate order):
    layer 0 a plain LSTM; layer 1 with d_t = σ(b_d + W_xd x_t + w_cd ⊙ c_{t-1} + w_ld ⊙ c_t^(0))
    and c_t = d_t ⊙ c_t^(0) + f_t ⊙ c_{t-1} + i_t ⊙ g_t."""
    outs, h, c = [], [h0[0], h0[1]], [c0[0], c0[1]]
    for t in range(x.shape[0]):
        inp = x[t]
        for layer in range(2):
            s = f"_l{layer}"
            z = inp @ p["weight_ih" + s].T + p["bias_ih" + s] + h[layer] @ p["weight_hh" + s].T + p["bias_hh" + s]
            i, f, g, o = z.chunk(4, dim=1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            cell = f * c[layer] + i * g
            if layer == 1:
                d = torch.sigmoid(p["bias_d_l1"] + inp @ p["weight_xd_l1"].T + p["weight_cd_l1"] * c[1]
                                  + p["weight_ld_l1"] * c[0])
                cell = cell + d * c[0]  # c[0] is already layer 0's c_t
            c[layer] = cell
            h[layer] = o * torch.tanh(cell)
            inp = h[layer]
        outs.append(h[1])
    return torch.stack(outs), torch.stack(h), torch.stack(c)


def test_depth_gate_matches_the_paper(gen, loop):
    m = lstmkit.LSTM(I, H, num_layers=2, depth_gate=True, dtype=DT)
    random_params_(m, gen)
    x = torch.randn(T, B, I, generator=gen, dtype=DT)
    h0, c0 = (torch.randn(2, B, H, generator=gen, dtype=DT) for _ in range(2))
    out, (h, c) = m(x, (h0, c0))
    with torch.no_grad():
        expected = ref_depth_gated(dict(m.named_parameters()), x, h0, c0)
    _close((out, h, c), expected)


@pytest.mark.parametrize("variant, kw", [("lstm", {}), ("peephole", {"num_layers": 3, "bidirectional": True}),
                                         ("cifg", {"proj_size": 2}), ("fgr", {"num_layers": 3})])
def test_depth_gate_forced_to_zero_is_the_stacked_lstm(variant, kw, gen, loop):
    kw = {"num_layers": 2, **kw}
    plain = lstmkit.LSTM(I, H, variant=variant, dtype=DT, **kw)
    gated = lstmkit.LSTM(I, H, variant=variant, depth_gate=True, dtype=DT, **kw)
    random_params_(plain, gen)
    random_params_(gated, gen)
    missing, unexpected = gated.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.split("_")[1] in ("xd", "cd", "ld", "d") for k in missing)
    x = torch.randn(T, B, I, generator=gen, dtype=DT)
    lengths = torch.tensor([T, 2, 4])
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    assert not torch.allclose(gated(packed)[0].data, plain(packed)[0].data)  # random depth gates matter
    with torch.no_grad():  # d = σ(-1e4) = 0 exactly: no lower cell gets through
        for k in missing:
            gated.get_parameter(k).fill_(-1e4 if k.startswith("bias_d") else 0.0)
    out_g, st_g, it = gated(packed, return_internals=True)
    out_p, st_p = plain(packed)
    _close((out_g.data, *st_g), (out_p.data, *st_p))
    assert torch.equal(it["d"], torch.zeros_like(it["d"]))


def test_depth_gate_internals_and_cell_update(gen):
    m = lstmkit.LSTM(I, H, num_layers=3, depth_gate=True, variant="peephole", dtype=DT)
    random_params_(m, gen)
    _, _, it = m(torch.randn(T, B, I, generator=gen, dtype=DT), return_internals=True)
    assert torch.equal(it["d"][0], torch.zeros_like(it["d"][0]))  # layer 0 has no cell below
    assert it["d"][1:].std() > 0.05
    for layer in (1, 2):
        c, f, i, g, d = (it[k][layer, 0] for k in ("c", "f", "i", "g", "d"))
        c_prev = torch.cat([torch.zeros_like(c[:1]), c[:-1]])
        torch.testing.assert_close(c, f * c_prev + i * g + d * it["c"][layer - 1, 0], **FP64)


@pytest.mark.parametrize("kw", [{}, {"bidirectional": True, "proj_size": 1, "variant": "peephole"}],
                         ids=["plain", "bidir-proj-peephole"])
def test_depth_gate_gradcheck(kw, gen):
    m = lstmkit.LSTM(3, 2, num_layers=2, depth_gate=True, dtype=DT, **kw)
    random_params_(m, gen)
    D = 2 if kw.get("bidirectional") else 1
    x = torch.randn(3, 2, 3, generator=gen, dtype=DT)
    hx = (torch.randn(2 * D, 2, kw.get("proj_size") or 2, generator=gen, dtype=DT),
          torch.randn(2 * D, 2, 2, generator=gen, dtype=DT))
    _gradcheck(m, x, hx, lengths=torch.tensor([2, 3]), fast=bool(kw))


def test_depth_gate_stepper_equals_forward(gen):
    m = lstmkit.LSTM(I, H, num_layers=3, depth_gate=True, variant="cifg", dtype=DT).eval()
    random_params_(m, gen)
    x = torch.randn(T, I, generator=gen, dtype=DT)
    stepper = m.stepper()
    assert not stepper.uses_engine
    got = torch.stack([stepper.step(x[t]) for t in range(T)])
    with torch.no_grad():
        out, _ = m(x)
    torch.testing.assert_close(got, out, **FP64)


def test_depth_gate_runs_on_the_reference_loop(engine_calls, monkeypatch):
    monkeypatch.delenv("LSTMKIT_ENGINE", raising=False)
    lstmkit.LSTM(I, H, num_layers=2, depth_gate=True)(torch.randn(T, B, I))
    assert engine_calls == []  # layer 0 records its cells for layer 1, which the engine does not keep


def test_depth_gate_bad_input():
    with pytest.raises(ValueError, match="depth_gate.*num_layers >= 2.*num_layers=1"):
        lstmkit.LSTM(I, H, depth_gate=True)
    with pytest.raises(TypeError, match="depth_gate must be a bool"):
        lstmkit.LSTM(I, H, num_layers=2, depth_gate="yes")
    with pytest.raises(ValueError, match="torch.nn has no equivalent of depth_gate"):
        lstmkit.LSTM(I, H, num_layers=2, depth_gate=True).to_torch()
    with pytest.raises(ValueError, match="only torch-shaped variants convert"):
        lstmkit.LSTM.from_torch(nn.LSTM(I, H, num_layers=2), depth_gate=True)


# ---- MUT1-3 (Jozefowicz et al. 2015) ------------------------------------------------------


@pytest.mark.parametrize("kind, ih_rows, hh_rows", [(1, 2, 2), (2, 2, 3), (3, 3, 3)])
def test_mut_shapes_are_the_papers(kind, ih_rows, hh_rows):
    """With I = H the units are exactly the paper's: MUT1's z has no recurrent weights, MUT2's r
    no input weights; one bias per gate."""
    m = lstmkit.GRU(H, H, variant=f"mut{kind}")
    shapes = {k: tuple(v.shape) for k, v in m.named_parameters()}
    assert shapes == {"weight_ih_l0": (ih_rows * H, H), "weight_hh_l0": (hh_rows * H, H),
                      "bias_z_l0": (H,), "bias_r_l0": (H,), "bias_h_l0": (H,)}
    # a layer whose input is not H wide gets the stand-in P x_t (MUT1, MUT2) in weight_ih
    other = lstmkit.GRU(I, H, variant=f"mut{kind}")
    assert other.weight_ih_l0.shape == (3 * H, I)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("width", [H, I], ids=["I=H", "I!=H"])
@pytest.mark.parametrize("kind", [1, 2, 3])
def test_mut_matches_the_papers_equations(kind, width, bias, gen):
    m = lstmkit.GRU(width, H, variant=f"mut{kind}", bias=bias, dtype=DT)
    random_params_(m, gen)
    x = torch.randn(T, B, width, generator=gen, dtype=DT)
    h0 = torch.randn(1, B, H, generator=gen, dtype=DT)
    out, h = m(x, h0)
    with torch.no_grad():
        expected = ref_mut(m.spec, {k.removesuffix("_l0"): v for k, v in m.named_parameters()}, x, h0[0])
    _close((out, h[0]), expected)


@pytest.mark.parametrize("kind", [1, 2, 3])
def test_mut_cell_equals_layer(kind, gen):
    layer = lstmkit.GRU(I, H, variant=f"mut{kind}", dtype=DT)
    random_params_(layer, gen)
    cell = lstmkit.GRUCell(I, H, variant=f"mut{kind}", dtype=DT)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()}, strict=True)
    x = torch.randn(T, B, I, generator=gen, dtype=DT)
    h = torch.zeros(B, H, dtype=DT)
    steps = []
    for t in range(T):
        h = cell(x[t], h)
        steps.append(h)
    torch.testing.assert_close(layer(x)[0], torch.stack(steps), **FP64)


def test_mut_stepper_equals_forward(gen):
    m = lstmkit.GRU(I, H, num_layers=2, variant="mut2", dtype=DT).eval()
    random_params_(m, gen)
    x = torch.randn(T, I, generator=gen, dtype=DT)
    stepper = m.stepper()
    assert not stepper.uses_engine
    got = torch.stack([stepper.step(x[t]) for t in range(T)])
    with torch.no_grad():
        torch.testing.assert_close(got, m(x)[0], **FP64)


def test_mut_runs_on_the_reference_loop_and_refuses_torch(engine_calls, monkeypatch):
    monkeypatch.delenv("LSTMKIT_ENGINE", raising=False)
    for kind in (1, 2, 3):
        m = lstmkit.GRU(I, H, variant=f"mut{kind}")
        m(torch.randn(T, B, I))
        with pytest.raises(ValueError, match="torch.nn has no equivalent"):
            m.to_torch()
        with pytest.raises(ValueError, match=f"mut{kind}.*only torch-shaped variants convert"):
            lstmkit.GRU.from_torch(nn.GRU(I, H), variant=f"mut{kind}")
    assert engine_calls == []
    with pytest.raises(ValueError, match="'mut1' has no option 'reset_after'"):
        lstmkit.GRU(I, H, variant="mut1", reset_after=False)


# ---- Clockwork RNN (Koutník et al. 2014) --------------------------------------------------


def ref_clockwork(periods, bounds, p: dict, x, h):
    """Koutník et al. sec. 3, module by module: module i updates iff t mod T_i = 0, from x_t and the
    modules j >= i (same speed or slower); the others keep their state."""
    outs = []
    for t in range(x.shape[0]):
        new = h.clone()
        for i, period in enumerate(periods):
            if t % period:
                continue
            rows, cols = slice(bounds[i], bounds[i + 1]), slice(bounds[i], None)
            pre = (x[t] @ p["weight_ih"][rows].T + p["bias_ih"][rows] + p["bias_hh"][rows]
                   + h[:, cols] @ p["weight_hh"][rows, cols].T)
            new[:, rows] = torch.tanh(pre)
        h = new
        outs.append(h)
    return torch.stack(outs), h


@pytest.mark.parametrize("periods", [(1, 2, 4), (1, 2, 3), (2, 4), (1, 1, 5, 5)],
                         ids=["exponential", "not-nested", "slow-start", "repeated"])
def test_clockwork_matches_the_paper(periods, gen):
    m = lstmkit.ClockworkRNN(I, 7, periods=periods, dtype=DT)  # 7 units: modules of unequal size
    random_params_(m, gen)  # also the masked part of weight_hh: it must not matter
    x = torch.randn(9, B, I, generator=gen, dtype=DT)
    h0 = torch.randn(1, B, 7, generator=gen, dtype=DT)
    out, h = m(x, h0)
    with torch.no_grad():
        expected = ref_clockwork(periods, m._bounds, {k.removesuffix("_l0"): v for k, v in m.named_parameters()},
                                 x, h0[0])
    _close((out, h[0]), expected)


@pytest.mark.parametrize("kw", [{}, {"num_layers": 2, "batch_first": True}], ids=["1L", "2L-bf"])
def test_clockwork_all_periods_one_is_a_masked_rnn(kw, gen):
    m = lstmkit.ClockworkRNN(I, 6, periods=(1, 1, 1), dtype=DT, **kw)
    random_params_(m, gen)
    ref = nn.RNN(I, 6, dtype=DT, **kw)
    mask = m.block_mask()
    assert torch.equal(mask, torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1],
                                           [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1]], dtype=DT))
    ref.load_state_dict({k: v * mask if k.startswith("weight_hh") else v for k, v in m.state_dict().items()})
    x = torch.randn(B, T, I, generator=gen, dtype=DT) if kw else torch.randn(T, B, I, generator=gen, dtype=DT)
    h0 = torch.randn(m.num_layers, B, 6, generator=gen, dtype=DT)
    _close(m(x, h0), ref(x, h0))
    lengths = torch.tensor([2, T, 4])
    packed = pack_padded_sequence(x, lengths, batch_first=m.batch_first, enforce_sorted=False)
    (a, ha), (b, hb) = m(packed, h0), ref(packed, h0)
    _close((a.data, ha), (b.data, hb))


def test_clockwork_skips_the_work_of_idle_modules():
    """The matrix products' FLOPs are those of the active modules' rows only: with periods
    1, 2, 4, 8 and 4 units each, step t computes 4 * (1 + [2|t] + [4|t] + [8|t]) rows."""
    m = lstmkit.ClockworkRNN(I, 16, periods=(1, 2, 4, 8))
    T16 = 16
    rows = sum(4 * sum(t % p == 0 for p in m.periods) for t in range(T16))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        m(torch.randn(T16, B, I))
    assert counter.get_total_flops() == 2 * B * (I + 16) * rows
    assert rows < 0.5 * T16 * 16  # under half the rows of a full RNN


def test_clockwork_state_carries_over_a_whole_clock_cycle(gen):
    """Two calls split at a multiple of the slowest period equal one call."""
    m = lstmkit.ClockworkRNN(I, 8, periods=(1, 2, 4), dtype=DT)
    x = torch.randn(12, B, I, generator=gen, dtype=DT)
    whole, h_whole = m(x)
    a, h = m(x[:8])
    b, h2 = m(x[8:], h)
    _close((torch.cat([a, b]), h2), (whole, h_whole))


def test_clockwork_masked_weights_get_no_gradient_and_gradcheck(gen):
    m = lstmkit.ClockworkRNN(3, 4, periods=(1, 2), num_layers=2, dtype=DT)
    x = torch.randn(5, 2, 3, generator=gen, dtype=DT)
    out, _ = m(x)
    out.sum().backward()
    assert torch.equal(m.weight_hh_l0.grad * (1 - m.block_mask()), torch.zeros(4, 4, dtype=DT))
    assert m.num_effective_parameters() == sum(p.numel() for p in m.parameters()) - 2 * 4  # 2 masked per layer
    random_params_(m, gen)
    _gradcheck(m, x, torch.randn(2, 2, 4, generator=gen, dtype=DT), lengths=torch.tensor([5, 3]))


def test_clockwork_learns():
    _learns(lstmkit.ClockworkRNN(2, 12, periods=(1, 2, 4)))


@pytest.mark.parametrize("periods, needle", [
    ((1, 0), "positive integers"), ((1, -2), "positive integers"), ((1, 2.5), "positive integers"),
    ((True, 2), "positive integers"), ((), "non-empty"), ("124", "positive integers"),
    ((4, 2, 1), "sorted fastest first"), (tuple(range(1, 10)), "9 periods need at least as many hidden units"),
])
def test_clockwork_bad_periods(periods, needle):
    with pytest.raises(ValueError, match=needle):
        lstmkit.ClockworkRNN(I, 8, periods=periods)


@pytest.mark.parametrize("kw, needle", [({"bidirectional": True}, "bidirectional"), ({"zoneout": 0.1}, "zoneout"),
                                        ({"recurrent_dropout": 0.2}, "recurrent_dropout"),
                                        ({"variant": "rnn"}, "unknown variant 'rnn'")])
def test_clockwork_bad_options(kw, needle):
    with pytest.raises(ValueError, match=needle):
        lstmkit.ClockworkRNN(I, 8, **kw)


# ---- Grid LSTM (Kalchbrenner et al. 2015) --------------------------------------------------


def ref_grid(m, x, h0, c0):
    """Kalchbrenner et al. block by block: H = [h^T; h^D], each dimension's LSTM(H, m, W), the
    priority dimension reading the other's new hidden vector; h^D_{t,0} = W_ih x_t + b_ih."""
    L = m.num_layers

    def lstm(W, b, Hcat, mem):
        i, f, g, o = (Hcat @ W.T + b).chunk(4, dim=1)
        mem = torch.sigmoid(f) * mem + torch.sigmoid(i) * torch.tanh(g)
        h = torch.tanh(torch.sigmoid(o) * mem) if m.spec.paper_output else torch.sigmoid(o) * torch.tanh(mem)
        return h, mem

    hT, mT = list(h0), list(c0)
    outs = []
    for t in range(x.shape[0]):
        hD = x[t] @ m.weight_ih_l0.T + m.bias_ih_l0
        mD = torch.zeros_like(hD)
        for layer in range(L):
            s = "" if m.tied else f"_l{layer}"
            Wt, bt, Wd, bd = (getattr(m, n + s) for n in ("weight_time", "bias_time", "weight_depth", "bias_depth"))
            if m.priority is None:
                Hcat = torch.cat([hT[layer], hD], 1)
                (hT[layer], mT[layer]), (hD, mD) = lstm(Wt, bt, Hcat, mT[layer]), lstm(Wd, bd, Hcat, mD)
            elif m.priority == "depth":
                hT[layer], mT[layer] = lstm(Wt, bt, torch.cat([hT[layer], hD], 1), mT[layer])
                hD, mD = lstm(Wd, bd, torch.cat([hT[layer], hD], 1), mD)
            else:
                hD_new, mD = lstm(Wd, bd, torch.cat([hT[layer], hD], 1), mD)
                hT[layer], mT[layer] = lstm(Wt, bt, torch.cat([hT[layer], hD_new], 1), mT[layer])
                hD = hD_new
        outs.append(hD)
    return torch.stack(outs), torch.stack(hT), torch.stack(mT)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("priority", [None, "depth", "time"])
def test_grid_matches_the_paper(priority, tied, gen):
    m = lstmkit.GridLSTM(I, H, num_layers=3, priority=priority, tied=tied, dtype=DT)
    random_params_(m, gen)
    x = torch.randn(T, B, I, generator=gen, dtype=DT)
    h0, c0 = (torch.randn(3, B, H, generator=gen, dtype=DT) for _ in range(2))
    out, (h, c) = m(x, (h0, c0))
    with torch.no_grad():
        expected = ref_grid(m, x, h0, c0)
    _close((out, h, c), expected)


def test_grid_paper_output_and_packed(gen):
    m = lstmkit.GridLSTM(I, H, num_layers=2, paper_output=True, dtype=DT)
    random_params_(m, gen)
    x = torch.randn(T, B, I, generator=gen, dtype=DT)
    with torch.no_grad():
        expected = ref_grid(m, x, torch.zeros(2, B, H, dtype=DT), torch.zeros(2, B, H, dtype=DT))
    _close((m(x)[0],), expected[:1])
    lengths = [T, 3, 1]
    out, (h, _) = m(pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False))
    for b, n in enumerate(lengths):  # each sequence alone, unbatched
        out_b, (h_b, _) = m(x[:n, b])
        torch.testing.assert_close(h[:, b], h_b, **FP64)


def test_grid_tied_equals_untied_with_equal_layers(gen):
    tied = lstmkit.GridLSTM(I, H, num_layers=3, tied=True, dtype=DT)
    untied = lstmkit.GridLSTM(I, H, num_layers=3, dtype=DT)
    random_params_(tied, gen)
    shared = {k: v for k, v in tied.state_dict().items() if k.startswith(("weight_time", "weight_depth", "bias_t",
                                                                            "bias_depth"))}
    state = {k: v for k, v in tied.state_dict().items() if k not in shared}
    state.update({f"{k}_l{layer}": v for k, v in shared.items() for layer in range(3)})
    untied.load_state_dict(state, strict=True)
    x = torch.randn(T, B, I, generator=gen, dtype=DT)
    _close((tied(x)[0], *tied(x)[1]), (untied(x)[0], *untied(x)[1]))
    assert sum(p.numel() for p in tied.parameters()) < sum(p.numel() for p in untied.parameters())


@pytest.mark.parametrize("priority, tied", [(None, False), ("depth", True), ("time", False)])
def test_grid_gradcheck(priority, tied, gen):
    m = lstmkit.GridLSTM(3, 2, num_layers=2, priority=priority, tied=tied, dtype=DT)
    random_params_(m, gen)
    x = torch.randn(3, 2, 3, generator=gen, dtype=DT)
    hx = tuple(torch.randn(2, 2, 2, generator=gen, dtype=DT) for _ in range(2))
    _gradcheck(m, x, hx, lengths=torch.tensor([3, 2]))


def test_grid_learns():
    _learns(lstmkit.GridLSTM(2, 8, num_layers=2, priority="depth"))


@pytest.mark.parametrize("kw, needle", [({"priority": "diagonal"}, "priority must be None, 'depth' or 'time'"),
                                        ({"bidirectional": True}, "bidirectional"), ({"proj_size": 2}, "proj_size"),
                                        ({"tied": "yes"}, "tied must be a bool"),
                                        ({"variant": "lstm"}, "unknown variant 'lstm'")])
def test_grid_bad_options(kw, needle):
    with pytest.raises((ValueError, TypeError), match=needle):
        lstmkit.GridLSTM(I, H, num_layers=2, **kw)


def test_grid_internals(gen):
    m = lstmkit.GridLSTM(I, H, num_layers=2, dtype=DT)
    out, (h, c), it = m(torch.randn(T, B, I, generator=gen, dtype=DT), return_internals=True)
    assert set(it) == {"h", "c", "h_depth", "c_depth"}
    assert it["h"].shape == (2, 1, T, B, H)
    torch.testing.assert_close(it["h_depth"][-1, 0], out, rtol=0, atol=0)
    torch.testing.assert_close(it["h"][:, 0, -1], h, rtol=0, atol=0)


# ---- the registry and the CLI ------------------------------------------------------------


@pytest.mark.parametrize("name, cls", [("clockwork", lstmkit.ClockworkRNN), ("grid", lstmkit.GridLSTM)])
def test_architectures_in_the_registry(name, cls):
    v = lstmkit.get_variant(name)
    assert v.family == v.spec.family == name and v.torch_equivalent is None
    layer = lstmkit.make_layer(name, 3, 8, num_layers=2, dropout=0.1, recurrent_dropout=0.0, zoneout=0.0)
    assert type(layer) is cls and layer.num_layers == 2
    assert not function.supports(layer.spec)
    with pytest.raises(TypeError, match="no one-step path"):
        lstmkit.Stepper(layer)


@pytest.mark.parametrize("cell", ["mut1", "mut2", "mut3", "clockwork", "grid"])
def test_cli_trains_with_the_new_cells(cell, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LSTMKIT_ENGINE", "0")
    data = write_text(tmp_path)
    rc, out, err = run_cli("train", "charlm", "--data", data, *TINY, "--layers", 2, "--cell", cell,
                           "--max-steps", 2, "--out", tmp_path / "run", capsys=capsys)
    assert rc == 0, err
    assert f"2x16 {cell}" in out
    rc, out, err = run_cli("generate", tmp_path / "run", "--length", 20, "--last", capsys=capsys)
    if cell == "clockwork":  # one token per call would restart its clocks: refused, one line
        assert rc == 2 and "clocks restart" in err and err.count("\n") == 1, err
    else:
        assert rc == 0, err


@pytest.mark.parametrize("cell", ["mut3", "clockwork", "grid"])
def test_cli_wordlm_with_the_new_cells(cell, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LSTMKIT_ENGINE", "0")
    data = write_ptb(tmp_path)
    run = tmp_path / "run"
    rc, out, err = run_cli("train", "wordlm", "--data", data, "--hidden", 8, "--layers", 2, "--seq-len", 5,
                           "--batch-size", 4, "--cell", cell, "--max-steps", 2, "--eval-every", 2, "--out", run,
                           capsys=capsys)
    assert rc == 0, err
    rc, out, err = run_cli("evaluate", run, "--split", "test", capsys=capsys)
    assert rc == 0, err
    assert "perplexity" in out or "ppl" in out, out


@pytest.mark.parametrize("cell, flags, needle", [
    ("clockwork", ["--zoneout", 0.1], "ClockworkRNN does not support zoneout"),
    ("grid", ["--recurrent-dropout", 0.1], "GridLSTM does not support recurrent_dropout"),
    ("mut1", ["--proj", 4], "--proj needs an LSTM-family cell"),
])
def test_cli_refuses_options_the_cell_lacks(cell, flags, needle, tmp_path, earlier, capsys):
    data = write_text(tmp_path)
    assert_usage_error(train_over(earlier, capsys, "charlm", "--data", data, *TINY, "--cell", cell, *flags), needle)


def test_cli_depth_gate_trains_charlm_and_adding(tmp_path, capsys, monkeypatch):
    """``--depth-gate`` builds the depth-gated LSTM (its weight_xd_l1, ...) for charlm and a long-lag task."""
    import json as _json
    monkeypatch.setenv("LSTMKIT_ENGINE", "0")
    data = write_text(tmp_path)
    run = tmp_path / "lm"
    rc, out, err = run_cli("train", "charlm", "--data", data, *TINY, "--layers", 2, "--depth-gate",
                           "--max-steps", 2, "--out", run, capsys=capsys)
    assert rc == 0, err
    meta = _json.loads((run / "checkpoint.json").read_text())
    assert meta["config"]["model"]["depth_gate"] is True
    from lstmkit.train.run import load_run
    _, _, _, model, _ = load_run(run)
    names = {n for n, _ in model.named_parameters()}
    assert {"rnn.weight_xd_l1", "rnn.weight_cd_l1", "rnn.weight_ld_l1", "rnn.bias_d_l1"} <= names
    rc, _, err = run_cli("generate", run, "--length", 5, capsys=capsys)
    assert rc == 0, err
    rc, _, err = run_cli("train", "adding", "--T", 10, "--hidden", 8, "--layers", 2, "--depth-gate",
                         "--max-steps", 2, "--out", tmp_path / "add", capsys=capsys)
    assert rc == 0, err


@pytest.mark.parametrize("argv, needle", [
    (["charlm", "--layers", "1"], "--layers >= 2"),
    (["charlm", "--layers", "2", "--cell", "gru"], "LSTM-family cell"),
    (["translate", "--layers", "2"], "not available for task translate"),
])
def test_cli_depth_gate_bad_input(argv, needle, tmp_path, capsys):
    data = write_text(tmp_path)
    extra = ["--data", data] if argv[0] == "charlm" else []
    rc, _, err = run_cli("train", *argv, *extra, "--depth-gate", "--max-steps", 1, "--out", tmp_path / "r",
                         capsys=capsys)
    assert rc == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()
