"""Variants that must reduce to one another, hand-written references from the papers'
equations, and layer-level identities (cell stepping, reversal, internals, packing)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import ALL_VARIANTS, FP64, LSTM_VARIANTS, cell_for, family, random_params_, random_state
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmkit
from lstmkit.cells import MUTSpec

DT = torch.float64
T, B, I, H = 5, 3, 4, 3

pytestmark = pytest.mark.usefixtures("single_thread")


def _states(state):
    return state if isinstance(state, tuple) else (state,)


def _assert_all_close(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape
        torch.testing.assert_close(u, v, **FP64)


# ---- independent references, written from the equations in the papers --------------------


def ref_lstm(spec, p: dict, x, h, c):
    """Greff et al. 2015 sec. 2 (+ FGR sec. 3, LSTMP, Ba et al.'s layer norm), one step at a
    time, from the spec's *options* only; (T, B, I) -> outputs (T, B, P or H), h_T, c_T."""
    own = [g for g, present in (("i", spec.input_gate), ("f", spec.forget_gate and not spec.coupled),
                                ("g", True), ("o", spec.output_gate)) if present]
    Hh = c.shape[1]
    sig = [g for g in "ifo" if g in own]
    ln = spec.layer_norm
    W = dict(zip(own, p["weight_ih"].split(Hh)))
    U = dict(zip(own, p["weight_hh"].split(Hh)))
    zero = torch.zeros(len(own) * Hh, dtype=x.dtype)
    b = dict(zip(own, (p.get("bias_ih", zero) + p.get("bias_hh", zero)).split(Hh)))
    prev = {g: torch.zeros_like(c) for g in sig}
    outs = []
    for t in range(x.shape[0]):
        if ln:  # LN over the whole stacked vector, then split; bias after normalising
            xs = F.layer_norm(x[t] @ p["weight_ih"].T, (len(own) * Hh,), p["weight_ln_ih"]).split(Hh, 1)
            hs = F.layer_norm(h @ p["weight_hh"].T, (len(own) * Hh,), p["weight_ln_hh"]).split(Hh, 1)
            pre = {g: xs[k] + hs[k] + b[g] for k, g in enumerate(own)}
        else:
            pre = {g: x[t] @ W[g].T + h @ U[g].T + b[g] for g in own}
        if spec.gate_recurrence:
            R = p["weight_gr"]
            for r, g in enumerate(sig):
                for k, gk in enumerate(sig):
                    pre[g] = pre[g] + prev[gk] @ R[r * Hh:(r + 1) * Hh, k * Hh:(k + 1) * Hh].T

        def peep(g, cell):
            return pre[g] + p[f"weight_c{g}"] * cell if g in spec.peepholes else pre[g]

        i = torch.sigmoid(peep("i", c)) if spec.input_gate else torch.ones_like(c)
        if spec.coupled:
            f = 1 - i
        else:
            f = torch.sigmoid(peep("f", c)) if spec.forget_gate else torch.ones_like(c)
        g = torch.tanh(pre["g"]) if spec.input_activation else pre["g"]
        c = f * c + i * g
        o = torch.sigmoid(peep("o", c)) if spec.output_gate else torch.ones_like(c)
        c_out = F.layer_norm(c, (Hh,), p["weight_ln_c"], p["bias_ln_c"]) if ln else c
        m = o * (torch.tanh(c_out) if spec.output_activation else c_out)
        h = m @ p["weight_hr"].T if "weight_hr" in p else m
        prev = {"i": i, "f": f, "o": o}
        outs.append(h)
    return torch.stack(outs), h, c


def ref_gru(spec, p: dict, x, h):
    """Cho et al. 2014 eq. 5-8 (reset_after=False) or the cuDNN/torch form (True)."""
    Hh = h.shape[1]
    zero = torch.zeros(3 * Hh, dtype=x.dtype)
    Wr, Wz, Wn = p["weight_ih"].split(Hh)
    Ur, Uz, Un = p["weight_hh"].split(Hh)
    bir, biz, bin_ = p.get("bias_ih", zero).split(Hh)
    bhr, bhz, bhn = p.get("bias_hh", zero).split(Hh)
    outs = []
    for t in range(x.shape[0]):
        r = torch.sigmoid(x[t] @ Wr.T + bir + h @ Ur.T + bhr)
        z = torch.sigmoid(x[t] @ Wz.T + biz + h @ Uz.T + bhz)
        if spec.reset_after:
            n = torch.tanh(x[t] @ Wn.T + bin_ + r * (h @ Un.T + bhn))
        else:
            n = torch.tanh(x[t] @ Wn.T + bin_ + (r * h) @ Un.T + bhn)
        h = (1 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs), h


def ref_mut(spec, p: dict, x, h):
    """Jozefowicz et al. 2015's MUT1-3 listings (z weights the new value). Where the paper adds
    x_t unweighted and I != H, the layer's stand-in P x_t takes its place (see lstmkit.cells.mut)."""
    k, Hh = spec.kind, h.shape[1]
    rows, free = {1: "zr", 2: "zn", 3: "zrn"}[k], {1: "n", 2: "r", 3: None}[k]
    if free and x.shape[2] != Hh:
        rows = "".join(g for g in "zrn" if g in rows or g == free)
    Wx = dict(zip(rows, p["weight_ih"].split(Hh)))
    Wh = dict(zip({1: "rn", 2: "zrn", 3: "zrn"}[k], p["weight_hh"].split(Hh)))
    bz, br, bh = (p.get(f"bias_{g}", 0) for g in "zrh")
    outs = []
    for t in range(x.shape[0]):
        xt = x[t]
        xhat = xt @ Wx[free].T if free and x.shape[2] != Hh else xt
        if k == 1:
            z = torch.sigmoid(xt @ Wx["z"].T + bz)
            r = torch.sigmoid(xt @ Wx["r"].T + h @ Wh["r"].T + br)
            n = torch.tanh((r * h) @ Wh["n"].T + torch.tanh(xhat) + bh)
        elif k == 2:
            z = torch.sigmoid(xt @ Wx["z"].T + h @ Wh["z"].T + bz)
            r = torch.sigmoid(xhat + h @ Wh["r"].T + br)
            n = torch.tanh((r * h) @ Wh["n"].T + xt @ Wx["n"].T + bh)
        else:
            z = torch.sigmoid(xt @ Wx["z"].T + torch.tanh(h) @ Wh["z"].T + bz)
            r = torch.sigmoid(xt @ Wx["r"].T + h @ Wh["r"].T + br)
            n = torch.tanh((r * h) @ Wh["n"].T + xt @ Wx["n"].T + bh)
        h = n * z + h * (1 - z)
        outs.append(h)
    return torch.stack(outs), h


def ref_rnn(spec, p: dict, x, h):
    act = torch.tanh if spec.nonlinearity == "tanh" else torch.relu
    outs = []
    for t in range(x.shape[0]):
        h = act(x[t] @ p["weight_ih"].T + p.get("bias_ih", 0) + h @ p["weight_hh"].T + p.get("bias_hh", 0))
        outs.append(h)
    return torch.stack(outs), h


REF_CASES = (
    [pytest.param(v, {}, id=v) for v in ALL_VARIANTS]
    + [pytest.param(v, {"proj_size": 2}, id=f"{v}-proj") for v in LSTM_VARIANTS]
    + [pytest.param(v, {"layer_norm": True, "proj_size": 2}, id=f"{v}-ln-proj") for v in LSTM_VARIANTS]
    + [pytest.param(v, {"bias": False}, id=f"{v}-nobias") for v in ["nig", "fgr", "gru", "rnn"]]
    + [pytest.param("gru", {"reset_after": False}, id="gru-reset_before"),
       pytest.param("rnn", {"nonlinearity": "relu"}, id="rnn-relu")]
)


@pytest.mark.parametrize("variant, kw", REF_CASES)
def test_matches_reference_equations(variant, kw, gen, loop):
    m = lstmkit.make_layer(variant, I, H, dtype=DT, **kw)
    random_params_(m, gen)
    x = torch.randn(T, B, I, generator=gen, dtype=DT)
    hx = random_state(m, B, gen)
    p = {k.removesuffix("_l0"): v for k, v in m.named_parameters()}
    out, state = m(x, hx)
    with torch.no_grad():
        if family(variant) == "lstm":
            expected = ref_lstm(m.spec, p, x, hx[0][0], hx[1][0])
        elif family(variant) == "gru":
            ref = ref_mut if isinstance(m.spec, MUTSpec) else ref_gru
            expected = ref(m.spec, p, x, hx[0])
        else:
            expected = ref_rnn(m.spec, p, x, hx[0])
    _assert_all_close((out, *(s[0] for s in _states(state))), expected)


def test_nig_has_no_input_gate(gen):
    m = lstmkit.LSTM(I, H, variant="nig", dtype=DT)
    assert m.weight_ih_l0.shape == (3 * H, I) and m.weight_hh_l0.shape == (3 * H, H)
    assert m.bias_ih_l0.shape == (3 * H,)
    assert not hasattr(m, "weight_ci_l0")  # no gate to peep into
    _, _, internals = m(torch.randn(T, B, I, generator=gen, dtype=DT), return_internals=True)
    assert "i" not in internals and {"f", "g", "o", "c", "h"} <= set(internals)
    # i = 1: C_t = f_t C_{t-1} + C~_t
    c, f, g = internals["c"][0, 0], internals["f"][0, 0], internals["g"][0, 0]
    c_prev = torch.cat([torch.zeros_like(c[:1]), c[:-1]])
    torch.testing.assert_close(c, f * c_prev + g, **FP64)


def test_cifg_couples_forget_to_input(gen):
    m = lstmkit.LSTM(I, H, num_layers=2, bidirectional=True, variant="cifg", dtype=DT)
    random_params_(m, gen)
    assert m.weight_ih_l0.shape == (3 * H, I)  # i, g, o: the forget gate has no weights
    assert not hasattr(m, "weight_cf_l0")
    _, _, internals = m(torch.randn(T, B, I, generator=gen, dtype=DT), return_internals=True)
    assert torch.equal(internals["f"], 1 - internals["i"])
    assert internals["i"].std() > 0.05  # non-trivial gates


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_internals_obey_the_state_update(variant, gen):
    """c_t = f c_{t-1} + i g and h_t = o tanh(c_t) (absent gates = 1); GRU's h interpolation."""
    m = lstmkit.make_layer(variant, I, H, dtype=DT)
    random_params_(m, gen)
    hx = random_state(m, B, gen)
    _, _, it = m(torch.randn(T, B, I, generator=gen, dtype=DT), hx, return_internals=True)
    it = {k: v[0, 0] for k, v in it.items()}  # (T, B, W)
    h_prev = torch.cat([hx[0] if isinstance(hx, tuple) else hx, it["h"][:-1]])
    if family(variant) == "lstm":
        spec = m.spec
        one = torch.ones_like(it["c"])
        i, f, o = (it.get(k, one) for k in "ifo")
        c_prev = torch.cat([hx[1], it["c"][:-1]])
        torch.testing.assert_close(it["c"], f * c_prev + i * it["g"], **FP64)
        act = torch.tanh(it["c"]) if spec.output_activation else it["c"]
        torch.testing.assert_close(it["h"], o * act, **FP64)
        assert set(it) == set(spec.gates) | {"c", "h"} | ({"f"} if spec.coupled else set())
    elif family(variant) == "gru":
        if isinstance(m.spec, MUTSpec):  # Jozefowicz et al.: h_{t+1} = n ⊙ z + h_t ⊙ (1 - z)
            torch.testing.assert_close(it["h"], it["z"] * it["n"] + (1 - it["z"]) * h_prev, **FP64)
        else:
            torch.testing.assert_close(it["h"], (1 - it["z"]) * it["n"] + it["z"] * h_prev, **FP64)
        assert set(it) == {"r", "z", "n", "h"}
    else:
        assert set(it) == {"h"}


# ---- degenerations between variants ------------------------------------------------------


@pytest.mark.parametrize("general, special, zeroed", [
    ("peephole", "lstm", "weight_c"),  # Greff's V with p_i = p_f = p_o = 0 is the no-peephole LSTM
    ("fgr", "peephole", "weight_gr"),  # FGR with R = 0 is V
])
@pytest.mark.parametrize("kw", [{}, {"num_layers": 2, "bidirectional": True, "proj_size": 2}], ids=["1L", "2L-bi-proj"])
def test_zero_extra_weights_degenerate(general, special, zeroed, kw, gen, loop):
    small = lstmkit.LSTM(I, H, variant=special, dtype=DT, **kw)
    big = lstmkit.LSTM(I, H, variant=general, dtype=DT, **kw)
    random_params_(small, gen)
    random_params_(big, gen)
    missing, unexpected = big.load_state_dict(small.state_dict(), strict=False)
    assert not unexpected
    assert missing and all(k.startswith(zeroed) for k in missing)
    x = torch.randn(T, B, I, generator=gen, dtype=DT)
    hx = random_state(small, B, gen)
    # with the extra weights random, the two differ ...
    assert not torch.allclose(big(x, hx)[0], small(x, hx)[0], **FP64)
    with torch.no_grad():
        for k in missing:
            big.get_parameter(k).zero_()
    # ... and with them zero they agree
    out_b, st_b = big(x, hx)
    out_s, st_s = small(x, hx)
    _assert_all_close((out_b, *st_b), (out_s, *st_s))


# ---- layer identities --------------------------------------------------------------------

CELL_CASES = (
    [pytest.param(v, {}, id=v) for v in ALL_VARIANTS]
    + [pytest.param(v, {"proj_size": 2}, id=f"{v}-proj") for v in LSTM_VARIANTS]
    + [pytest.param(v, {"layer_norm": True}, id=f"{v}-ln") for v in ALL_VARIANTS]
    + [pytest.param("gru", {"reset_after": False}, id="gru-reset_before"),
       pytest.param("rnn", {"nonlinearity": "relu"}, id="rnn-relu")]
)


@pytest.mark.parametrize("variant, kw", CELL_CASES)
def test_layer_equals_stepping_its_cell(variant, kw, gen, loop):
    layer = lstmkit.make_layer(variant, I, H, dtype=DT, **kw)
    random_params_(layer, gen)
    cell = cell_for(variant, I, H, dtype=DT, **kw)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()}, strict=True)
    x = torch.randn(T, B, I, generator=gen, dtype=DT)
    hx = random_state(layer, B, gen)
    out, state = layer(x, hx)
    s = tuple(h[0] for h in hx) if isinstance(hx, tuple) else hx[0]
    steps = []
    for t in range(T):
        s = cell(x[t], s)
        steps.append(s[0] if isinstance(s, tuple) else s)
    final = s[:2] if isinstance(s, tuple) else (s,)  # FGR's cell also returns its previous gates
    _assert_all_close((out, *(h[0] for h in _states(state))), (torch.stack(steps), *final))


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_reverse_direction_is_forward_on_reversed_input(variant, gen, loop):
    kw = {"proj_size": 2} if family(variant) == "lstm" else {}
    bi = lstmkit.make_layer(variant, I, H, bidirectional=True, dtype=DT, **kw)
    uni = lstmkit.make_layer(variant, I, H, dtype=DT, **kw)
    random_params_(bi, gen)
    uni.load_state_dict({k.replace("_reverse", ""): v for k, v in bi.state_dict().items() if "_reverse" in k},
                        strict=True)
    x = torch.randn(T, B, I, generator=gen, dtype=DT)
    hx = random_state(bi, B, gen)
    out, state = bi(x, hx)
    W = out.shape[-1] // 2
    rev_hx = tuple(h[1:2] for h in hx) if isinstance(hx, tuple) else hx[1:2]
    out_u, state_u = uni(x.flip(0), rev_hx)
    _assert_all_close((out[..., W:], *(h[1] for h in _states(state))),
                      (out_u.flip(0), *(h[0] for h in _states(state_u))))


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tb", "bf"])
@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_internals_h_is_the_output(variant, batch_first, packed, gen):
    kw = {"proj_size": 2} if family(variant) == "lstm" else {}
    m = lstmkit.make_layer(variant, I, H, num_layers=2, bidirectional=True, batch_first=batch_first, dtype=DT, **kw)
    x = torch.randn(T, B, I, generator=gen, dtype=DT)
    lengths = torch.tensor([3, T, 2])
    if batch_first:
        x = x.transpose(0, 1)
    inp = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False) if packed else x
    out, state, internals = m(inp, return_internals=True)
    if packed:
        out = pad_packed_sequence(out, batch_first=batch_first)[0]
    h = internals["h"]
    L, D, W = 2, 2, out.shape[-1] // 2
    assert h.shape == (L, D, *out.shape[:2], W)
    for k in internals:
        assert internals[k].shape[:4] == (L, D, *out.shape[:2]), k
    torch.testing.assert_close(torch.cat([h[-1, 0], h[-1, 1]], dim=-1), out, rtol=0, atol=0)
    ht = h.transpose(2, 3) if batch_first else h  # (L, D, T, B, W)
    h_n = _states(state)[0].view(L, D, -1, W)
    ends = lengths.tolist() if packed else [T] * B
    for b, n in enumerate(ends):  # forward ends at t = length-1, reverse at t = 0, every layer
        torch.testing.assert_close(h_n[:, 0, b], ht[:, 0, n - 1, b], rtol=0, atol=0)
        torch.testing.assert_close(h_n[:, 1, b], ht[:, 1, 0, b], rtol=0, atol=0)
        for k, v in internals.items():  # zero past each sequence's length
            v = v.transpose(2, 3) if batch_first else v
            assert torch.equal(v[:, :, n:, b], torch.zeros_like(v[:, :, n:, b])), k


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_packed_equals_each_sequence_alone(variant, gen, loop):
    kw = {"proj_size": 2} if family(variant) == "lstm" else {}
    m = lstmkit.make_layer(variant, I, H, num_layers=2, bidirectional=True, dtype=DT, **kw)
    random_params_(m, gen)
    lengths = torch.tensor([2, T, 1, 4])  # unsorted
    nb = len(lengths)
    x = torch.randn(T, nb, I, generator=gen, dtype=DT)
    hx = random_state(m, nb, gen)
    out, state = m(pack_padded_sequence(x, lengths, enforce_sorted=False), hx)
    padded, out_lengths = pad_packed_sequence(out)
    assert torch.equal(out_lengths, lengths)
    for b, n in enumerate(lengths.tolist()):
        hx_b = tuple(h[:, b] for h in hx) if isinstance(hx, tuple) else hx[:, b]
        out_b, state_b = m(x[:n, b], hx_b)  # unbatched, unpadded
        _assert_all_close((padded[:n, b], *(s[:, b] for s in _states(state))),
                          (out_b, *_states(state_b)))
        assert torch.equal(padded[n:, b], torch.zeros_like(padded[n:, b]))


# ---- regularisers: what recurrent dropout and zoneout compute ------------------------------


def _copy_weights(src, dst):
    dst.load_state_dict(src.state_dict(), strict=True)
    return dst


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_regularisers_are_inactive_in_eval_mode(variant, gen):
    """recurrent_dropout and (between layers) dropout do nothing in eval mode; zoneout 0 is none."""
    plain = lstmkit.make_layer(variant, I, H, num_layers=2, dtype=DT)
    random_params_(plain, gen)
    x = torch.randn(T, B, I, generator=gen, dtype=DT)
    expected = plain(x)
    for kw in ({"recurrent_dropout": 0.5, "dropout": 0.5}, {"zoneout": 0.0}):
        m = _copy_weights(plain, lstmkit.make_layer(variant, I, H, num_layers=2, dtype=DT, **kw)).eval()
        out, state = m(x)
        _assert_all_close((out, *_states(state)), (expected[0], *_states(expected[1])))


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_zoneout_eval_is_the_expectation(variant, gen):
    """Krueger et al. 2016: at test time h_t = z h_{t-1} + (1 - z) h~_t (LSTM: z_h for h, z_c for c)."""
    rates = (0.3, 0.6) if family(variant) == "lstm" else (0.3,)
    m = lstmkit.make_layer(variant, I, H, dtype=DT, zoneout=rates if len(rates) == 2 else rates[0]).eval()
    random_params_(m, gen)
    cell = cell_for(variant, I, H, dtype=DT)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in m.state_dict().items()}, strict=True)
    x = torch.randn(T, B, I, generator=gen, dtype=DT)
    hx = random_state(m, B, gen)
    s = tuple(h[0] for h in _states(hx))
    extra = ()  # FGR's previous gates are not zoned out
    outs = []
    for t in range(T):
        new = cell(x[t], s + extra) if family(variant) == "lstm" else (cell(x[t], s[0]),)
        extra = tuple(new[2:])
        s = tuple(z * a + (1 - z) * b for z, a, b in zip(rates, s, new))
        outs.append(s[0])
    out, state = m(x, hx)
    _assert_all_close((out, *(h[0] for h in _states(state))), (torch.stack(outs), *s))


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_zoneout_one_keeps_the_initial_state(variant, gen):
    m = lstmkit.make_layer(variant, I, H, num_layers=2, bidirectional=True, dtype=DT, zoneout=1.0).train()
    x = torch.randn(T, B, I, generator=gen, dtype=DT)
    hx = random_state(m, B, gen)
    out, state = m(x, hx)
    _assert_all_close(_states(state), _states(hx))
    h0 = _states(hx)[0]
    expected = torch.cat([h0[-2], h0[-1]], dim=-1).expand(T, -1, -1)  # last layer, both directions
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.parametrize("variant", [v for v in ALL_VARIANTS if len(lstmkit.get_variant(v).spec.state_names) <= 2])
def test_zoneout_train_keeps_or_updates_each_unit(variant, gen):
    """In training, each unit of h (and c) at each step is either its previous value or the
    freshly computed one, and both happen."""
    m = lstmkit.make_layer(variant, I, H, dtype=DT, zoneout=0.5).train()
    random_params_(m, gen)
    cell = cell_for(variant, I, H, dtype=DT)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in m.state_dict().items()}, strict=True)
    x = torch.randn(T, 8, I, generator=gen, dtype=DT)
    hx = random_state(m, 8, gen)
    _, _, it = m(x, hx, return_internals=True)
    names = ("h", "c") if family(variant) == "lstm" else ("h",)
    seq = [torch.cat([h[0][None], it[k][0, 0]]) for k, h in zip(names, _states(hx))]  # (T+1, B, W) each
    kept = updated = 0
    for t in range(T):
        prev = tuple(s[t] for s in seq)
        new = cell(x[t], prev) if family(variant) == "lstm" else (cell(x[t], prev[0]),)
        for s, a, b in zip(seq, prev, new):
            is_prev, is_new = s[t + 1] == a, (s[t + 1] - b).abs() < 1e-12
            assert bool((is_prev | is_new).all())
            kept, updated = kept + int(is_prev.sum()), updated + int(is_new.sum())
    assert kept > 0 and updated > 0


def test_recurrent_dropout_one_mask_per_sequence(gen):
    """Gal & Ghahramani 2016: the mask on h_{t-1} is drawn once per sequence (and scaled by
    1/(1-p)). With h_t = relu(1 + m * h_{t-1}) from h_0 = 0, a unit whose mask is 0 stays at
    1 for ever, one whose mask is 1/(1-p) follows 1, 1 + s, 1 + s + s^2, ..."""
    p, s = 0.5, 2.0
    m = lstmkit.RNN(H, H, nonlinearity="relu", bias=False, recurrent_dropout=p, dtype=DT).train()
    with torch.no_grad():
        m.weight_ih_l0.copy_(torch.eye(H))
        m.weight_hh_l0.copy_(torch.eye(H))
    out, _ = m(torch.ones(T, 64, H, dtype=DT))
    dropped = torch.ones(T, dtype=DT)
    kept = torch.tensor([sum(s ** k for k in range(t + 1)) for t in range(T)], dtype=DT)
    traj = out.permute(1, 2, 0).reshape(-1, T)  # one row per (sequence, unit)
    is_dropped = (traj == dropped).all(dim=1)
    is_kept = torch.isclose(traj, kept.expand_as(traj), rtol=1e-12, atol=0).all(dim=1)
    assert bool((is_dropped | is_kept).all())  # never a mix over time
    assert 0.3 < is_dropped.double().mean() < 0.7  # p = 0.5 of them, out of 64 * 3
    m.eval()
    torch.testing.assert_close(m(torch.ones(T, 2, H, dtype=DT))[0][:, 0, 0], kept.new_tensor(range(1, T + 1)))
