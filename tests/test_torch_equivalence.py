"""lstmkit's torch-compatible variants against torch.nn itself: outputs, states, gradients, init."""
from __future__ import annotations

import math
import random

import pytest
import torch
from conftest import ALL_VARIANTS, FP32, FP64, LSTM_VARIANTS, tol
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmkit

# kind -> (torch class, lstmkit class, extra constructor kwargs shared by both)
KINDS = {
    "lstm": (nn.LSTM, lstmkit.LSTM, {}),
    "gru": (nn.GRU, lstmkit.GRU, {}),
    "rnn_tanh": (nn.RNN, lstmkit.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNN, lstmkit.RNN, {"nonlinearity": "relu"}),
}
SEEDS = list(range(12))

# torch.nn.LSTM(proj_size>0) warns that oneDNN cannot run it; irrelevant here.
pytestmark = [pytest.mark.usefixtures("single_thread"),
              pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")]
MODES = ("padded", "packed", "unbatched")


def make_config(kind: str, seed: int) -> dict:
    """A randomised but reproducible configuration; the structural switches cycle with the
    seed so that the 12 seeds cover every combination that matters (see test_configs_cover)."""
    rng = random.Random(f"{kind}-{seed}")
    hidden = rng.choice([3, 5, 7])
    cfg = dict(
        input_size=rng.choice([1, 3, 5, 7]),
        hidden_size=hidden,
        num_layers=1 + (seed // 4) % 3,
        bias=seed % 4 != 3,
        batch_first=seed % 2 == 1,
        bidirectional=(seed // 3) % 2 == 1,
        **KINDS[kind][2],
    )
    if kind == "lstm" and seed % 3 != 2:
        cfg["proj_size"] = rng.randint(1, hidden - 1)
    if cfg["num_layers"] > 1 and seed % 5 == 0:
        cfg["dropout"] = 0.4  # must be inactive in eval mode, as in torch
    return dict(cfg=cfg, mode=MODES[seed % 3], give_hx=(seed // 2) % 2 == 0,
                T=rng.randint(2, 6), B=rng.randint(2, 5), data_seed=rng.randrange(2**31))


def test_configs_cover():
    """The seeded configurations exercise every feature at least once per kind."""
    for kind in KINDS:
        cases = [make_config(kind, s) for s in SEEDS]
        flat = [{**x["cfg"], **x} for x in cases]  # structural switches and test switches together
        assert {x["mode"] for x in flat} == set(MODES)
        assert {x["num_layers"] for x in flat} == {1, 2, 3}
        assert any(x["bidirectional"] and x["num_layers"] > 1 for x in flat)
        assert {x["batch_first"] for x in flat} == {True, False}
        assert {x["bias"] for x in flat} == {True, False}
        assert {x["give_hx"] for x in flat} == {True, False}
        assert any(x["mode"] == "packed" and x["bidirectional"] for x in flat)
        assert any(x["mode"] == "packed" and x["give_hx"] for x in flat)
        assert any(x["mode"] == "unbatched" and x["give_hx"] for x in flat)
        assert any("dropout" in x for x in flat)
        if kind == "lstm":
            assert any(x.get("proj_size") for x in flat) and any(not x.get("proj_size") for x in flat)
            assert any(x["mode"] == "packed" and x.get("proj_size") and x["bidirectional"] for x in flat)


def _inputs(module, case, dtype, gen):
    """Input (padded tensor with grad), lengths, hx (with grad) and the module input."""
    T, B = case["T"], case["B"]
    I = module.input_size
    unbatched = case["mode"] == "unbatched"
    if unbatched:
        x = torch.randn(T, I, generator=gen, dtype=dtype)
    elif module.batch_first:
        x = torch.randn(B, T, I, generator=gen, dtype=dtype)
    else:
        x = torch.randn(T, B, I, generator=gen, dtype=dtype)
    x.requires_grad_(True)
    lengths = None
    if case["mode"] == "packed":
        lengths = torch.randint(1, T + 1, (B,), generator=gen)
        lengths[torch.randint(0, B, (1,), generator=gen)] = T  # keep a full-length one
        if bool((lengths[1:] <= lengths[:-1]).all()):  # make sure the batch is unsorted
            lengths = lengths.flip(0)
    hx = None
    if case["give_hx"]:
        LD = module.num_layers * (2 if module.bidirectional else 1)
        lead = (LD,) if unbatched else (LD, B)
        h = torch.randn(*lead, module.proj_size or module.hidden_size, generator=gen, dtype=dtype)
        if isinstance(module, (nn.LSTM, lstmkit.LSTM)):
            hx = (h.requires_grad_(True), torch.randn(*lead, module.hidden_size, generator=gen,
                                                      dtype=dtype).requires_grad_(True))
        else:
            hx = h.requires_grad_(True)
    return x, lengths, hx


def _forward(module, x, lengths, hx):
    """(outputs, states) as a flat tuple of tensors; packed output is returned padded."""
    inp = x
    if lengths is not None:
        inp = pack_padded_sequence(x, lengths, batch_first=module.batch_first, enforce_sorted=False)
    out, state = module(inp, hx)
    if lengths is not None:
        assert isinstance(out, torch.nn.utils.rnn.PackedSequence)
        assert torch.equal(out.batch_sizes, inp.batch_sizes)
        assert torch.equal(out.sorted_indices, inp.sorted_indices)
        assert torch.equal(out.unsorted_indices, inp.unsorted_indices)
        out = pad_packed_sequence(out, batch_first=module.batch_first)[0]
    states = tuple(state) if isinstance(state, tuple) else (state,)
    return (out, *states)


def _clone_leaf(t):
    return None if t is None else t.detach().clone().requires_grad_(True)


def _clone_hx(hx):
    if hx is None or isinstance(hx, torch.Tensor):
        return _clone_leaf(hx)
    return tuple(_clone_leaf(h) for h in hx)


def _leaves(x, hx):
    return [x] + ([] if hx is None else [hx] if isinstance(hx, torch.Tensor) else list(hx))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_matches_torch(kind, seed, dtype, loop):
    case = make_config(kind, seed)
    torch_cls, kit_cls, _ = KINDS[kind]
    gen = torch.Generator().manual_seed(case["data_seed"])
    torch.manual_seed(seed)
    ref = torch_cls(**case["cfg"], dtype=dtype)
    kit = kit_cls(**case["cfg"], dtype=dtype)
    kit.load_state_dict(ref.state_dict(), strict=True)
    converted = kit_cls.from_torch(ref)
    assert type(converted) is kit_cls
    for k, v in ref.state_dict().items():
        assert torch.equal(converted.state_dict()[k], v), k
    if "dropout" in case["cfg"]:
        ref.eval(), kit.eval(), converted.eval()

    x, lengths, hx = _inputs(ref, case, dtype, gen)
    ref_out = _forward(ref, x, lengths, hx)
    x2, hx2 = _clone_leaf(x), _clone_hx(hx)
    kit_out = _forward(kit, x2, lengths, hx2)
    assert len(ref_out) == len(kit_out)
    for a, b in zip(ref_out, kit_out):
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(b, a, **tol(dtype))
    # from_torch gives the very same module: bit-identical results
    with torch.no_grad():
        for a, b in zip(kit_out, _forward(converted, x2, lengths, hx2)):
            assert torch.equal(a, b)

    # Gradients of a loss that weighs every output and final state differently.
    weights = [torch.randn(o.shape, generator=gen, dtype=dtype) for o in ref_out]
    for outs in (ref_out, kit_out):
        sum((o * w).sum() for o, w in zip(outs, weights)).backward()
    for (name, p_ref), (name2, p_kit) in zip(ref.named_parameters(), kit.named_parameters()):
        assert name == name2
        assert p_kit.grad is not None, name
        torch.testing.assert_close(p_kit.grad, p_ref.grad, **tol(dtype), msg=lambda m, n=name: f"{n}: {m}")
    for a, b in zip(_leaves(x, hx), _leaves(x2, hx2)):
        torch.testing.assert_close(b.grad, a.grad, **tol(dtype))


# ---- conversion --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_to_torch_round_trip(kind, gen, loop):
    torch_cls, kit_cls, extra = KINDS[kind]
    cfg = dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True, batch_first=True, dropout=0.25,
               **extra, **({"proj_size": 2} if kind == "lstm" else {}))
    kit = kit_cls(**cfg, dtype=torch.float64)
    m = kit.to_torch()
    assert type(m) is torch_cls
    for k, v in cfg.items():
        assert getattr(m, k) == v, k
    assert list(m.state_dict()) == list(kit.state_dict())
    for k, v in kit.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k
        assert m.state_dict()[k].data_ptr() != v.data_ptr()  # a copy, not shared storage
    kit.eval(), m.eval()
    x = torch.randn(4, 6, 3, generator=gen, dtype=torch.float64)
    for a, b in zip(_forward(m, x, None, None), _forward(kit, x, None, None)):
        torch.testing.assert_close(b, a, **tol(torch.float64))
    back = kit_cls.from_torch(m)
    for k, v in kit.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_to_torch_only_for_torch_equivalents(variant):
    """The registry's torch_equivalent says exactly which variants convert."""
    entry = lstmkit.get_variant(variant)
    layer = lstmkit.make_layer(variant, 3, 4)
    if entry.torch_equivalent is None:
        with pytest.raises(ValueError, match="torch.nn has no equivalent"):
            layer.to_torch()
    else:
        assert f"torch.nn.{type(layer.to_torch()).__name__}" == entry.torch_equivalent


@pytest.mark.parametrize("cls, kwargs, what", [
    (lstmkit.LSTM, {"variant": "peephole"}, "variant"),
    (lstmkit.LSTM, {"peepholes": ("o",)}, "variant"),
    (lstmkit.LSTM, {"cifg": True}, "variant"),
    (lstmkit.LSTM, {"layer_norm": True}, "variant"),
    (lstmkit.LSTM, {"recurrent_dropout": 0.1}, "recurrent_dropout"),
    (lstmkit.LSTM, {"zoneout": 0.1}, "zoneout"),
    (lstmkit.GRU, {"reset_after": False}, "variant"),
    (lstmkit.GRU, {"layer_norm": True}, "variant"),
    (lstmkit.GRU, {"zoneout": 0.2}, "zoneout"),
    (lstmkit.RNN, {"layer_norm": True}, "variant"),
    (lstmkit.RNN, {"recurrent_dropout": 0.2}, "recurrent_dropout"),
], ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_to_torch_refuses_incompatible(cls, kwargs, what):
    with pytest.raises(ValueError, match=what):
        cls(3, 4, **kwargs).to_torch()


def test_from_torch_refuses_wrong_class():
    with pytest.raises(TypeError, match="GRU"):
        lstmkit.LSTM.from_torch(nn.GRU(3, 4))
    with pytest.raises(TypeError, match="LSTM"):
        lstmkit.RNN.from_torch(nn.LSTM(3, 4))


def test_from_torch_passes_extras():
    m = lstmkit.LSTM.from_torch(nn.LSTM(3, 4, num_layers=2), zoneout=0.1, recurrent_dropout=0.2)
    assert m.recurrent_dropout == 0.2 and m.zoneout[:2] == (0.1, 0.1) and m.num_layers == 2


def test_from_torch_keeps_dtype():
    m = lstmkit.GRU.from_torch(nn.GRU(3, 4, dtype=torch.float64))
    assert all(p.dtype == torch.float64 for p in m.parameters())


# ---- initialisation ----------------------------------------------------------------------

INIT_CASES = [
    ("lstm", dict(num_layers=2, bidirectional=True)),
    ("lstm", dict(num_layers=2, bidirectional=True, proj_size=3, bias=False)),
    ("lstm", dict(num_layers=3, proj_size=2)),
    ("gru", dict(num_layers=2, bidirectional=True)),
    ("rnn_relu", dict(num_layers=2, bidirectional=True)),
]


@pytest.mark.parametrize("kind, cfg", INIT_CASES)
@pytest.mark.parametrize("s", [0, 7])
def test_same_seed_same_init_as_torch(kind, cfg, s):
    torch_cls, kit_cls, extra = KINDS[kind]
    fb = {"forget_bias": None} if kind == "lstm" else {}
    torch.manual_seed(s)
    a = torch_cls(5, 4, **cfg, **extra)
    torch.manual_seed(s)
    b = kit_cls(5, 4, **cfg, **extra, **fb)
    assert list(a.state_dict()) == list(b.state_dict())  # same names in the same order
    for name, p in a.named_parameters():
        assert torch.equal(p, b.get_parameter(name)), name
    # and the RNG was consumed identically: the next draw agrees too
    torch.manual_seed(s), torch_cls(5, 4, **cfg, **extra)
    after_torch = torch.rand(3)
    torch.manual_seed(s), kit_cls(5, 4, **cfg, **extra, **fb)
    assert torch.equal(torch.rand(3), after_torch)


@pytest.mark.parametrize("cfg", [dict(num_layers=2, bidirectional=True), dict(proj_size=2)])
def test_default_forget_bias_is_one(cfg):
    H = 4
    torch.manual_seed(3)
    ref = nn.LSTM(5, H, **cfg)
    torch.manual_seed(3)
    kit = lstmkit.LSTM(5, H, **cfg)  # forget_bias=1.0 by default
    forget = slice(H, 2 * H)  # torch's stacking is i, f, g, o
    n_bias = 0
    for name, p in ref.named_parameters():
        q = kit.get_parameter(name)
        if name.startswith("bias_"):
            n_bias += 1
            other = torch.ones(4 * H, dtype=torch.bool)
            other[forget] = False
            assert torch.equal(q[other], p[other]), name  # only the forget rows change
        else:
            assert torch.equal(q, p), name
    assert n_bias == 2 * kit.num_layers * kit.num_directions
    for suffix in [f"_l{k}{r}" for k in range(kit.num_layers) for r in ["", "_reverse"][: kit.num_directions]]:
        b_ih, b_hh = kit.get_parameter("bias_ih" + suffix), kit.get_parameter("bias_hh" + suffix)
        assert torch.equal(b_ih[forget] + b_hh[forget], torch.ones(H))
        assert torch.equal(b_ih[forget], torch.ones(H)) and torch.equal(b_hh[forget], torch.zeros(H))

    torch.manual_seed(3)
    cell = lstmkit.LSTMCell(5, H)
    assert torch.equal(cell.bias_ih[forget] + cell.bias_hh[forget], torch.ones(H))


@pytest.mark.parametrize("variant", LSTM_VARIANTS)
def test_forget_gate_starts_at_sigmoid_one(variant):
    """Behaviourally, for every variant with a forget gate of its own: from zero input and
    zero state the forget gate is exactly sigma(forget_bias)."""
    spec = lstmkit.get_variant(variant).spec
    m = lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True, variant=variant, dtype=torch.float64)
    _, _, internals = m(torch.zeros(1, 2, 3, dtype=torch.float64), return_internals=True)
    if not spec.forget_gate:
        assert "f" not in internals  # f = 1 is a constant, not a computed gate
        return
    if spec.coupled:  # no forget bias of its own: f = 1 - i
        torch.testing.assert_close(internals["f"], 1 - internals["i"], **FP64)
        return
    f = internals["f"][0, :, 0]  # layer 0 (its input really is zero), both directions, t=0
    torch.testing.assert_close(f, torch.full_like(f, 1 / (1 + math.exp(-1.0))), rtol=0, atol=1e-15)


def test_forget_bias_custom_value():
    m = lstmkit.LSTM(3, 4, forget_bias=2.5)
    assert torch.equal(m.bias_ih_l0[4:8] + m.bias_hh_l0[4:8], torch.full((4,), 2.5))


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_cells_same_seed_same_init(kind):
    ref_cls = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn_tanh": nn.RNNCell}[kind]
    kit_cls = {"lstm": lstmkit.LSTMCell, "gru": lstmkit.GRUCell, "rnn_tanh": lstmkit.RNNCell}[kind]
    torch.manual_seed(11)
    a = ref_cls(5, 3)
    torch.manual_seed(11)
    b = kit_cls(5, 3, **({"forget_bias": None} if kind == "lstm" else {}))
    assert list(a.state_dict()) == list(b.state_dict())
    for name, p in a.named_parameters():
        assert torch.equal(p, b.get_parameter(name)), name


# ---- cells -------------------------------------------------------------------------------

CELLS = {
    "lstm": (nn.LSTMCell, lstmkit.LSTMCell, {}),
    "gru": (nn.GRUCell, lstmkit.GRUCell, {}),
    "rnn_tanh": (nn.RNNCell, lstmkit.RNNCell, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNNCell, lstmkit.RNNCell, {"nonlinearity": "relu"}),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched, give_hx", [(True, True), (True, False), (False, True), (False, False)])
@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_matches_torch(kind, batched, give_hx, bias, dtype, gen):
    ref_cls, kit_cls, extra = CELLS[kind]
    I, H, B = 5, 3, 4
    ref = ref_cls(I, H, bias=bias, **extra, dtype=dtype)
    kit = kit_cls(I, H, bias=bias, **extra, dtype=dtype)
    kit.load_state_dict(ref.state_dict(), strict=True)
    lead = (B,) if batched else ()
    x = torch.randn(*lead, I, generator=gen, dtype=dtype, requires_grad=True)
    hx = None
    if give_hx:
        hx = torch.randn(*lead, H, generator=gen, dtype=dtype, requires_grad=True)
        if kind == "lstm":
            hx = (hx, torch.randn(*lead, H, generator=gen, dtype=dtype, requires_grad=True))
    x2, hx2 = _clone_leaf(x), _clone_hx(hx)
    a, b = ref(x, hx), kit(x2, hx2)
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    assert len(a) == len(b)
    weights = [torch.randn(t.shape, generator=gen, dtype=dtype) for t in a]
    for u, v in zip(a, b):
        assert u.shape == v.shape == (*lead, H)
        torch.testing.assert_close(v, u, **tol(dtype))
    sum((t * w).sum() for t, w in zip(a, weights)).backward()
    sum((t * w).sum() for t, w in zip(b, weights)).backward()
    for name, p in ref.named_parameters():
        torch.testing.assert_close(kit.get_parameter(name).grad, p.grad, **tol(dtype))
    for u, v in zip(_leaves(x, hx), _leaves(x2, hx2)):
        torch.testing.assert_close(v.grad, u.grad, **tol(dtype))


def test_cell_shares_weights_with_layer():
    """The cell's parameter names are the layer's without the _l0 suffix."""
    layer = lstmkit.LSTM(3, 5, proj_size=2, variant="fgr", layer_norm=True)
    cell = lstmkit.LSTMCell(3, 5, proj_size=2, variant="fgr", layer_norm=True)
    sd = {k.removesuffix("_l0"): v for k, v in layer.state_dict().items()}
    assert set(sd) == set(cell.state_dict())
    cell.load_state_dict(sd, strict=True)


def test_fp32_tolerance_is_tight_enough_to_catch_a_bug(gen):
    """Sanity check of the FP32 tolerance itself: shifting the cell-input (g) bias by 1e-3,
    a plausible size for an off-by-something bug, is detected."""
    ref = nn.LSTM(3, 4)
    kit = lstmkit.LSTM.from_torch(ref)
    with torch.no_grad():
        kit.bias_hh_l0[8:12] += 1e-3
    x = torch.randn(5, 2, 3, generator=gen)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(kit(x)[0], ref(x)[0], **FP32)
