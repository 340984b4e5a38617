"""float64 gradcheck of every variant and option: gradients w.r.t. input, initial state and
every parameter (parameters are passed as gradcheck inputs through functional_call)."""
from __future__ import annotations

import pytest
import torch
from conftest import ALL_VARIANTS, LOOPS, family, option_configs, random_state, use_loop
from torch.autograd import gradcheck
from torch.func import functional_call
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstmkit

T, B, I, H = 3, 2, 3, 2
SEED = 7  # reseeded inside the checked function: dropout and zoneout masks are then fixed

pytestmark = pytest.mark.usefixtures("single_thread")


def gradcheck_configs(variant: str) -> list:
    """(id, make_layer kwargs, train mode?, packed?) for ``variant``."""
    configs = [(cid, kw, False, False) for cid, kw in option_configs(variant, H, training_options=False)]
    zone = (0.3, 0.5) if family(variant) == "lstm" else 0.3  # LSTM: distinct rates for h and c
    configs += [
        ("packed_bidir", {"bidirectional": True}, False, True),
        ("zoneout_eval", {"zoneout": zone}, False, False),
        ("zoneout_train", {"zoneout": zone}, True, False),
        ("recurrent_dropout_train", {"recurrent_dropout": 0.3}, True, False),
        ("dropout_train", {"num_layers": 2, "dropout": 0.3}, True, False),
        ("all_train_packed", {"num_layers": 2, "bidirectional": True, "dropout": 0.3, "layer_norm": True,
                              "recurrent_dropout": 0.3, "zoneout": zone}, True, True),
    ]
    return configs


def _loops(kw: dict) -> tuple:
    """Recurrent dropout and zoneout draw per-step masks, which only the reference loop
    implements; everything else is also checked on the default dispatch (see conftest.LOOPS)."""
    return ("reference",) if kw.get("zoneout") or kw.get("recurrent_dropout") else LOOPS


CASES = [pytest.param(v, kw, train, packed, loop, id=f"{v}-{cid}-{loop}")
         for v in ALL_VARIANTS for cid, kw, train, packed in gradcheck_configs(v) for loop in _loops(kw)]


def _check(module, x, hx, lengths=None, train=False):
    """gradcheck f(x, states..., params...) -> (output, final states...).

    Single-layer unidirectional modules get the full (slow-mode) Jacobian check. Stacked or
    bidirectional ones, with 4x the parameters, use fast mode (a random projection v^T J u
    per input, which a wrong gradient fails with probability ~1) to keep the suite fast;
    their building blocks are covered in slow mode by the single-layer cases.
    """
    module.train(train)
    fast = module.num_layers > 1 or module.bidirectional
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in module.parameters()]
    states = [hx] if isinstance(hx, torch.Tensor) else list(hx)
    states = [s.detach().clone().requires_grad_(True) for s in states]
    n_states = len(states)
    x = x.detach().clone().requires_grad_(True)

    def f(x, *rest):
        torch.manual_seed(SEED)
        hx = rest[0] if n_states == 1 else tuple(rest[:n_states])
        inp = x if lengths is None else pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, state = functional_call(module, dict(zip(names, rest[n_states:])), (inp, hx))
        if isinstance(out, PackedSequence):
            out = out.data
        return (out, *(state if isinstance(state, tuple) else (state,)))

    inputs = (x, *states, *params)
    assert gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=fast)
    # and the check was not vacuous: every input really influences the result
    outs = f(*inputs)
    grads = torch.autograd.grad(sum(o.sum() for o in outs), inputs, allow_unused=True)
    for name, g in zip(["input"] + [f"state{k}" for k in range(n_states)] + names, grads):
        assert g is not None and g.abs().sum() > 0, name


@pytest.mark.parametrize("variant, kwargs, train, packed, loop_", CASES)
def test_gradcheck(variant, kwargs, train, packed, loop_, gen, monkeypatch):
    use_loop(monkeypatch, loop_)
    m = lstmkit.make_layer(variant, I, H, dtype=torch.float64, **kwargs)
    if getattr(m, "nonlinearity", None) == "relu":  # keep the units alive, or every gradient is 0
        with torch.no_grad():
            m.bias_ih_l0.add_(1.0)
    x = torch.randn(T, B, I, generator=gen, dtype=torch.float64)
    hx = random_state(m, B, gen)
    lengths = torch.tensor([2, 3]) if packed else None  # unsorted, one shorter than T
    _check(m, x, hx, lengths, train)


def test_gradcheck_unbatched_batch_first(gen, loop):
    m = lstmkit.LSTM(I, H, batch_first=True, proj_size=1, variant="peephole", dtype=torch.float64)
    x = torch.randn(T, I, generator=gen, dtype=torch.float64)  # unbatched (T, I)
    _check(m, x, random_state(m, None, gen))


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_gradcheck_cell(variant, gen):
    """The one-step cells, with every parameter, for every variant (FGR: all three states)."""
    fam = family(variant)
    cls = {"lstm": lstmkit.LSTMCell, "gru": lstmkit.GRUCell, "rnn": lstmkit.RNNCell}[fam]
    cell = cls(I, H, variant=variant, dtype=torch.float64, layer_norm=True)
    names = [n for n, _ in cell.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in cell.parameters()]
    x = torch.randn(B, I, generator=gen, dtype=torch.float64, requires_grad=True)
    widths = cell.spec.state_widths(H, 0)
    states = [torch.randn(B, w, generator=gen, dtype=torch.float64, requires_grad=True) for w in widths]

    def f(x, *rest):
        hx = tuple(rest[: len(states)]) if fam == "lstm" else rest[0]
        out = functional_call(cell, dict(zip(names, rest[len(states):])), (x, hx))
        return out if isinstance(out, tuple) else (out,)

    assert gradcheck(f, (x, *states, *params), eps=1e-6, atol=1e-6, rtol=1e-4)
