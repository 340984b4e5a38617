"""The engine's input share outside the time loop (csrc/input_share.cpp, engine/__init__.py), against torch's own ops.

``seq_linear`` is F.linear into a sequence-sized (huge-page) buffer; ``layer_norm_rows_`` normalises
the input share in place in inference; ``layer_norm_rows_train_`` and ``layer_norm_rows_backward``
are layer norm's forward and backward for training (``Projection``), where F.layer_norm would
allocate a fresh (N, G·H) output and gradient.
"""
from __future__ import annotations

import pytest
import torch

import lstmkit
import lstmkit.engine as engine
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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("transposed", [False, True])
def test_seq_linear_equals_f_linear(ext, gen, dtype, with_bias, transposed):
    x = torch.randn(1100, 37, generator=gen, dtype=dtype)  # 1100 x 1029 x 8 bytes: past empty_seq's 4 MiB
    w = torch.randn(37, 1029, generator=gen, dtype=dtype).t() if transposed else torch.randn(1029, 37, generator=gen, dtype=dtype)
    b = torch.randn(1029, generator=gen, dtype=dtype) if with_bias else None
    got = ext.seq_linear(x, w, b)
    torch.testing.assert_close(got, torch.nn.functional.linear(x, w, b), rtol=RTOL if dtype == torch.float32 else 1e-12,
                               atol=1e-4 if dtype == torch.float32 else 1e-12)


def test_seq_linear_rejects_mismatched_widths(ext):
    with pytest.raises(RuntimeError, match=r"seq_linear: x is \[2, 3\] and w is \[4, 5\]"):
        ext.seq_linear(torch.zeros(2, 3), torch.zeros(4, 5), None)


@pytest.mark.parametrize("with_bias", [True, False])
def test_layer_norm_rows_train_and_backward_equal_f_layer_norm(ext, gen, with_bias):
    """Forward leaves x̂ in place of the product and returns α ⊙ x̂ + β with ρ; backward gives
    F.layer_norm's three gradients (float64, so any difference is a mistake, not rounding)."""
    d = torch.float64
    y = torch.randn(53, 203, generator=gen, dtype=d) * 3 + 100
    g, b = torch.randn(203, generator=gen, dtype=d), torch.randn(203, generator=gen, dtype=d)
    grad = torch.randn(53, 203, generator=gen, dtype=d)
    leaves = [t.clone().requires_grad_() for t in (y, g, b)]
    ref = torch.nn.functional.layer_norm(leaves[0], (203,), leaves[1], leaves[2] if with_bias else None)
    ref.backward(grad)
    xhat = y.clone()
    out, rstd = ext.layer_norm_rows_train_(xhat, g, b if with_bias else None)
    torch.testing.assert_close(out, ref.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(xhat, torch.nn.functional.layer_norm(y, (203,)), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(rstd, 1 / (y.var(1, unbiased=False) + 1e-5).sqrt(), rtol=1e-12, atol=0)
    dy, dg, db = ext.layer_norm_rows_backward(grad, xhat, rstd, g, with_bias)
    torch.testing.assert_close(dy, leaves[0].grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dg, leaves[1].grad, rtol=1e-10, atol=1e-12)
    assert (db is None) if not with_bias else torch.allclose(db, leaves[2].grad, rtol=1e-10, atol=1e-12)


def test_layer_norm_rows_backward_rejects_mismatched_shapes(ext):
    with pytest.raises(RuntimeError, match="the gradient, x̂ and ρ disagree in shape"):
        ext.layer_norm_rows_backward(torch.zeros(2, 4), torch.zeros(3, 4), torch.zeros(3), torch.ones(4), True)


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("with_bias", [True, False])
def test_projection_gradcheck(ext, gen, layer_norm, with_bias):
    """``Projection`` (the input share in training) in float64 through every input: x, W, b and α."""
    d = torch.float64
    x = torch.randn(6, 4, generator=gen, dtype=d, requires_grad=True)
    w = torch.randn(10, 4, generator=gen, dtype=d, requires_grad=True)
    b = torch.randn(10, generator=gen, dtype=d, requires_grad=True) if with_bias else None
    ln = (1 + 0.3 * torch.randn(10, generator=gen, dtype=d)).requires_grad_() if layer_norm else None
    torch.autograd.gradcheck(lambda *t: engine.Projection.apply(ext, *t), (x, w, b, ln))


@pytest.fixture(params=["mkl", "onednn"])
def projection_backend(request, monkeypatch):
    """Every input projection on the engine's own path (``PROJECTION_MIN_FLOPS`` 0), its products on
    MKL (``seq_linear``) or oneDNN (chosen on AVX-512 CPUs; forced here)."""
    monkeypatch.setattr(engine, "PROJECTION_MIN_FLOPS", 0.0)
    monkeypatch.setattr(engine, "onednn_projection", lambda: request.param == "onednn")
    return request.param


def test_layer_norm_inference_matches_reference(ext, engine_calls, monkeypatch, gen, projection_backend):
    """In inference the input share's layer norm runs in place after the product: a stacked
    bidirectional LSTM with layer norm and a projection, under no_grad, equals the reference loop."""
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
@pytest.mark.parametrize("family", ["lstm", "lstm-ln", "gru-ln"])
def test_input_projection_in_training_matches_reference(ext, engine_calls, monkeypatch, gen, projection_backend, x_grad,
                                                        family):
    """The input share in training (``Projection``: products on MKL or oneDNN, layer norm in C++):
    every gradient equals the reference loop's, with and without a gradient for the input."""
    layer = lstmkit.GRU if family == "gru-ln" else lstmkit.LSTM
    m = layer(6, 16, num_layers=2, layer_norm=family != "lstm").train()
    with torch.no_grad():  # gains away from 1 and shifts away from 0, so a swapped gradient shows
        for n, p in m.named_parameters():
            if "ln" in n:
                p.add_(0.3 * torch.randn(p.shape, generator=gen))
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
