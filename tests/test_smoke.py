"""Every variant and option learns a small task, every parameter gets a gradient; the registry."""
from __future__ import annotations

import math

import pytest
import torch
from conftest import ALL_VARIANTS, option_configs
from torch import nn

import lstmkit

pytestmark = pytest.mark.usefixtures("single_thread")

T, B, I, H = 8, 16, 2, 8
STEPS, LR = 30, 0.05
EXPECTED = ["lstm", "peephole", "nig", "nfg", "nog", "niaf", "noaf", "cifg", "fgr", "gru", "mut1", "mut2", "mut3", "rnn",
            "clockwork", "grid"]


def delayed_copy(batch: int, gen: torch.Generator):
    """Predict the previous step's first input feature: y_t = x_{t-1, 0} (y_0 = 0).

    Needs one step of memory, so a network that ignores its recurrence cannot fit it."""
    x = torch.randn(batch, T, I, generator=gen)
    y = torch.zeros(batch, T, 1)
    y[:, 1:, 0] = x[:, :-1, 0]
    return x, y


class Net(nn.Module):
    def __init__(self, variant: str, **kw):
        super().__init__()
        self.rnn = lstmkit.make_layer(variant, I, H, batch_first=True, **kw)
        width = (kw.get("proj_size") or H) * (2 if kw.get("bidirectional") else 1)
        self.head = nn.Linear(width, 1)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


# the per-step-noise options at a rate that still lets 30 steps make progress
CASES = [pytest.param(v, kw, id=f"{v}-{cid}") for v in ALL_VARIANTS for cid, kw in option_configs(v, H, rate=0.1)]


@pytest.mark.parametrize("variant, kw", CASES)
def test_learns_delayed_copy(variant, kw):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = Net(variant, **kw)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    # A fixed held-out batch, evaluated in eval mode: no dropout/zoneout noise, and 128
    # sequences x 8 steps average out the noise of any single batch.
    x_eval, y_eval = delayed_copy(128, torch.Generator().manual_seed(99))

    def eval_loss() -> float:
        net.eval()
        with torch.no_grad():
            loss = nn.functional.mse_loss(net(x_eval), y_eval).item()
        net.train()
        return loss

    initial = eval_loss()
    for step in range(STEPS):
        x, y = delayed_copy(B, gen)
        out = net(x)
        assert torch.isfinite(out).all(), f"non-finite output at step {step}"
        loss = nn.functional.mse_loss(out, y)
        opt.zero_grad()
        loss.backward()
        if step == 0:  # every parameter takes part: a gradient that exists and is not zero
            named = list(net.named_parameters())
            with_grad = [n for n, p in named if p.grad is not None and p.grad.abs().sum() > 0]
            assert len(with_grad) == len(named), sorted({n for n, _ in named} - set(with_grad))
        for n, p in net.named_parameters():
            assert torch.isfinite(p.grad).all(), f"non-finite gradient of {n} at step {step}"
        opt.step()
    final = eval_loss()
    assert math.isfinite(final)
    assert final < 0.7 * initial, f"loss {initial:.3f} -> {final:.3f} after {STEPS} Adam steps"


def test_training_mode_noise_is_active():
    """recurrent_dropout and zoneout change the output in training mode only."""
    x = torch.randn(4, T, I)
    for kw in ({"recurrent_dropout": 0.5}, {"zoneout": 0.5}, {"num_layers": 2, "dropout": 0.5}):
        m = lstmkit.LSTM(I, H, batch_first=True, **kw)
        m.train()
        a, b = m(x)[0], m(x)[0]
        assert not torch.equal(a, b), kw  # fresh masks per call
        m.eval()
        assert torch.equal(m(x)[0], m(x)[0]), kw


# ---- the registry ------------------------------------------------------------------------


def test_variants_lists_all():
    assert lstmkit.variants() == EXPECTED
    assert lstmkit.variants("lstm") == EXPECTED[:9]
    assert lstmkit.variants("gru") == ["gru", "mut1", "mut2", "mut3"]
    assert lstmkit.variants("rnn") == ["rnn"]
    assert lstmkit.variants("clockwork") == ["clockwork"] and lstmkit.variants("grid") == ["grid"]
    with pytest.raises(ValueError, match="family"):
        lstmkit.variants("transformer")


@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_registry_entry(name):
    v = lstmkit.get_variant(name)
    assert v.name == name
    assert v.family in ("lstm", "gru", "rnn")
    assert v.spec.family == v.family
    assert isinstance(v.summary, str) and len(v.summary) > 10
    assert isinstance(v.reference, str) and any(ch.isdigit() for ch in v.reference)  # cites a year
    assert v.torch_equivalent in (None, "torch.nn.LSTM", "torch.nn.GRU", "torch.nn.RNN")
    layer = lstmkit.make_layer(name, 3, 4)
    assert type(layer).__name__ == v.family.upper()
    assert layer.variant == name and layer.spec == v.spec


def test_torch_equivalents():
    equivalents = {n: lstmkit.get_variant(n).torch_equivalent for n in EXPECTED}
    assert {n: e for n, e in equivalents.items() if e} == {
        "lstm": "torch.nn.LSTM", "gru": "torch.nn.GRU", "rnn": "torch.nn.RNN"}


def test_register_refuses_duplicates_and_unknown_families():
    from lstmkit.registry import Variant, register

    entry = lstmkit.get_variant("lstm")
    with pytest.raises(ValueError, match="already registered"):
        register(entry)
    with pytest.raises(ValueError, match="family"):
        register(Variant("new-one", "transformer", entry.spec, "s", "r"))
    assert lstmkit.variants() == EXPECTED
