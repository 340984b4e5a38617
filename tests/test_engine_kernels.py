"""The engine's helpers outside the time loop, against torch's own ops.

``layer_norm_rows_`` normalises the input share in place in inference (engine/__init__.py:
input_projection), where F.layer_norm would allocate a fresh (N, G·H) output.
"""
from __future__ import annotations

import pytest
import torch

import lstmkit
from test_engine import RTOL, assert_close_scaled, engine_calls, ext  # noqa: F401  (fixtures)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("D", [5, 64, 203])
def test_layer_norm_rows_in_place_equals_f_layer_norm(ext, gen, dtype, with_bias, D):
    # Rows with a large common offset: the two-pass moments must not cancel (F.layer_norm does not).
    y = (torch.randn(37, D, generator=gen, dtype=dtype) * 3 + 100).contiguous()
    g = torch.randn(D, generator=gen, dtype=dtype)
    b = torch.randn(D, generator=gen, dtype=dtype) if with_bias else None
    ref = torch.nn.functional.layer_norm(y, (D,), g, b)
    ext.layer_norm_rows_(y, g, b)
    torch.testing.assert_close(y, ref, rtol=RTOL if dtype == torch.float32 else 1e-12, atol=1e-5 if dtype == torch.float32 else 1e-12)


def test_layer_norm_rows_rejects_a_wrong_gain(ext):
    with pytest.raises(RuntimeError, match="the gain has 3 entries, rows have 4"):
        ext.layer_norm_rows_(torch.zeros(2, 4), torch.ones(3), None)


@pytest.mark.parametrize("force_onednn", [False, True], ids=["mkl", "onednn"])
def test_layer_norm_inference_matches_reference(ext, engine_calls, monkeypatch, gen, force_onednn):
    """In inference the input share's layer norm runs in place, after F.linear or (large float32
    products; forced here) oneDNN's prepacked product: a stacked bidirectional LSTM with layer norm
    and a projection, under no_grad, equals the reference loop."""
    if force_onednn:
        monkeypatch.setenv("LSTMKIT_ONEDNN_MIN_FLOPS", "0")
    m = lstmkit.LSTM(6, 24, num_layers=2, bidirectional=True, layer_norm=True, proj_size=8).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    x = torch.randn(9, 5, 6, generator=gen)
    with torch.no_grad():
        monkeypatch.setenv("LSTMKIT_ENGINE", "0")
        ref, (h_ref, c_ref) = m(x)
        monkeypatch.setenv("LSTMKIT_ENGINE", "1")
        out, (h, c) = m(x)
    assert len(engine_calls) == 4
    for name, got, want in [("out", out, ref), ("h_n", h, h_ref), ("c_n", c, c_ref)]:
        assert_close_scaled(got, want, name)


@pytest.mark.parametrize("x_grad", [False, True])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_onednn_input_projection_in_training_matches_reference(ext, engine_calls, monkeypatch, gen, x_grad, layer_norm):
    """Large float32 input projections (forced here at every size) run on oneDNN in training too
    (OneDnnLinear in engine/__init__.py: forward and ∂x on oneDNN, ∂W on MKL): every gradient
    equals the reference loop's, with and without a gradient for the input."""
    monkeypatch.setenv("LSTMKIT_ONEDNN_MIN_FLOPS", "0")
    m = lstmkit.LSTM(6, 16, num_layers=2, layer_norm=layer_norm).train()
    x = torch.randn(7, 4, 6, generator=gen).requires_grad_(x_grad)
    weight = torch.randn(7, 4, 16, generator=gen)

    def run(engine_on):
        monkeypatch.setenv("LSTMKIT_ENGINE", "1" if engine_on else "0")
        m.zero_grad()
        if x.grad is not None:
            x.grad = None
        out, _ = m(x)
        (out * weight).sum().backward()
        return {"out": out.detach(), "x": x.grad, **{n: p.grad.clone() for n, p in m.named_parameters()}}

    ref, got = run(False), run(True)
    assert len(engine_calls) == 2
    for name in ref:
        if ref[name] is None:
            assert got[name] is None, name
            continue
        assert_close_scaled(got[name], ref[name], name)
