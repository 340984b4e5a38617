"""The fused CPU engine: each layer-direction's whole time loop, forward and backward, in C++.

It mirrors the reference loop (``lstmkit.layers.loop.run_direction``) with the same
parameters, and ``run_stack`` hands it a layer-direction whenever :func:`direction_runner`
says it covers the call. Per step it does the recurrent GEMM into a preallocated buffer
and one fused, vectorised pointwise pass templated on the variant's structure; under
``no_grad`` it keeps nothing for backward. Backward walks time in reverse, computing the
pre-activation gradients per step and the weight gradients as GEMMs over all steps.

Covered: every registered LSTM variant, with peepholes, coupling, Greff's ablations (``fgr``
included: see ``function.fgr_weight``) and ``proj_size``; GRU (both reset modes); RNN (tanh,
relu); float32 and float64; variable lengths, stacked and bidirectional; recurrent dropout and
zoneout; layer norm in every family (the LSTM's with ``fgr`` too: csrc/fgr.h, FgrLnProducts; both GRU forms); bfloat16 under
``torch.autocast("cpu")`` with the input projection in bf16 and the recurrence in float32 (see
``function.run``). The reference loop keeps MUT1-3, depth-gated layers, ``return_internals`` and other dtypes/devices.

Large float32 products go to oneDNN (AVX-512 here, ~2.5x MKL's AVX2 sgemm on this AMD CPU)
through ATen's prepacked ``mkldnn::_linear_pointwise``: the per-step recurrent product from
8 MFLOP per step (below that its ~20 µs per call loses to the panel kernel; from 20 MFLOP where
the loop can split the hidden units over threads), the LSTM's and RNN's ∂h product in backward
by the same rule. The input projection (``input_projection``, ``Projection``) goes to oneDNN on
AVX-512 CPUs, and to MKL writing into huge pages elsewhere; its layer norm runs in C++.
``LSTMKIT_ONEDNN=0`` keeps everything on MKL; ``LSTMKIT_ONEDNN_MIN_FLOPS`` moves
the threshold. :mod:`lstmkit.engine.stream` is the streaming stepper (``lstmkit.Stepper``).

``LSTMKIT_ENGINE``: ``0`` always uses the reference loop, ``1`` requires the engine
(raises if it cannot be built), unset means use it when it builds, else warn once and fall
back. The compiled module is cached (see :mod:`lstmkit.engine.build`).
"""
from __future__ import annotations

import os
import warnings

import torch
from torch.autograd.function import once_differentiable

from . import build
from .function import supports

_module = None  # the loaded extension, once loaded
_failure: Exception | None = None  # why it could not be loaded, once that is known


def mode() -> str:
    """``"auto"``, ``"on"`` or ``"off"`` from ``LSTMKIT_ENGINE``."""
    value = os.environ.get("LSTMKIT_ENGINE", "").strip().lower()
    if value in ("", "auto"):
        return "auto"
    if value in ("0", "off", "false", "no"):
        return "off"
    if value in ("1", "on", "true", "yes"):
        return "on"
    raise ValueError(f"LSTMKIT_ENGINE must be 0, 1 or unset; got {value!r}")


def load():
    """The extension module, built on first use; None (after one warning) if it cannot be built.

    With ``LSTMKIT_ENGINE=1`` a failure raises instead.
    """
    global _module, _failure
    if _module is None and _failure is None:
        try:
            _module = build.compile_and_load()
        except build.EngineUnavailable as e:
            _failure = e
            if mode() != "on":
                warnings.warn(f"lstmkit: the compiled engine is unavailable, so the pure-torch reference "
                              f"loop runs instead ({e})", RuntimeWarning, stacklevel=2)
    if _failure is not None and mode() == "on":
        raise build.EngineUnavailable(f"LSTMKIT_ENGINE=1 but the engine is unavailable: {_failure}")
    return _module


def available() -> bool:
    """Whether the engine is enabled and built (building it now if needed)."""
    return mode() != "off" and load() is not None


def reset() -> None:
    """Forget the loaded module and any failure, so the next use loads again (for tests)."""
    global _module, _failure
    _module, _failure = None, None


def direction_runner(spec, x: torch.Tensor, *, zoneout: bool, record: bool, recurrent_dropout: bool = False):
    """The engine's drop-in for ``run_direction`` if it covers this call, else None.

    ``zoneout``: zoneout is active. ``recurrent_dropout``: a recurrent-dropout mask will be passed.
    (The engine covers both for every family it runs; ``function.PARAMS`` lists the slots.)
    ``record``: per-step internals were asked for (the engine does not keep them).
    """
    from .function import supports_recurrent_dropout, supports_zoneout
    if mode() == "off" or record or not supports(spec):
        return None
    if (recurrent_dropout and not supports_recurrent_dropout(spec)) or (zoneout and not supports_zoneout(spec)):
        return None
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    ext = load()
    if ext is None:
        return None
    # Read here: the layer loop turns autocast off around each direction (the state stays float32).
    bf16 = (x.dtype == torch.float32 and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16)

    def run_direction(spec, p, xw, batch_sizes, state, *, reverse=False, h_mask=None, zone=None, record=False):
        from .function import run
        out, final = run(ext, spec, p, xw, batch_sizes, state, reverse, bf16=bf16, h_mask=h_mask, zone=zone)
        return out, final, None

    run_direction.input_projection = lambda x, p: input_projection(spec, x, p, ext)
    return run_direction


# Per-step products of at least this many FLOPs go to oneDNN (kOneDnnMinFlops in csrc/common.h;
# loops that can split the hidden units over threads keep the panel kernel up to kOneDnnSplitMinFlops).
ONEDNN_MIN_FLOPS = 8e6
# A whole-sequence input projection runs on the engine's own path (`Projection`) from this size: below
# it the buffers are small (malloc reuses them, so no page faults to save) and `spec.input_projection`
# is as fast. oneDNN with the weight reordered on every call lost to MKL's F.linear at 3200x64->256
# (0.75 against 0.53 ms, 2 threads, 2026-11-22) and won from about 1 GFLOP (8000x128->512: 5.3
# against 5.8 ms) on the AVX-512 machine.
PROJECTION_MIN_FLOPS = 5e8


def onednn_min_flops(default: float = ONEDNN_MIN_FLOPS) -> float:
    """The oneDNN threshold: ``LSTMKIT_ONEDNN=0`` disables it, ``LSTMKIT_ONEDNN_MIN_FLOPS`` overrides it."""
    if os.environ.get("LSTMKIT_ONEDNN") == "0":
        return float("inf")
    return float(os.environ.get("LSTMKIT_ONEDNN_MIN_FLOPS") or default)


def onednn_projection() -> bool:
    """Whether the input projection's products go to oneDNN rather than MKL (``seq_linear``).

    On an AVX-512 CPU oneDNN runs AVX-512 code where MKL runs AVX2 on these AMD processors: about
    2.5x apart at large shapes. On an AVX2-only CPU both run AVX2, and MKL writing into huge pages
    (``seq_linear``) won or tied: 115-123 against oneDNN's 135-137 ms at 6400 x 512 -> 2048 in
    inference, whose fresh output costs ~30 ms of page faults, and 206-227 against 229-239 ms in
    training (2026-12-07; docs/performance.md). ``LSTMKIT_ONEDNN=0`` keeps MKL.
    """
    return os.environ.get("LSTMKIT_ONEDNN") != "0" and torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def _onednn_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x wᵀ + b on oneDNN's prepacked path (the weight reordered for this call's rows)."""
    wp = torch.ops.mkldnn._reorder_linear_weight(w, x.shape[0])
    return torch.ops.mkldnn._linear_pointwise(x, wp, b, "none", [], "")


def _product(ext, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x wᵀ + b (x contiguous (N, K), w (M, K), possibly a transposed view) for the input share."""
    if x.dtype == torch.float32 and onednn_projection():
        try:
            return _onednn_linear(x, w.contiguous(), b)
        except (AttributeError, RuntimeError):  # a torch build without the prepacked ops
            pass
    return ext.seq_linear(x, w, b)


class Projection(torch.autograd.Function):
    """The input share for training, ``x Wᵀ + b`` or ``LN(x Wᵀ; α) + b`` (as ``cells.common.project``).

    The products go to ``_product`` (∂x = ∂y W too; ∂W = ∂yᵀ x on MKL: oneDNN measured slower for that
    form, docs/performance.md). Layer norm runs in C++ (csrc/input_share.cpp): forward overwrites the product
    with x̂ and keeps it with ρ per row for backward, which computes ∂y, ∂α and ∂β in one pass over
    the rows. Its buffers are sequence-sized ones (huge pages where the kernel offers them),
    where ``F.layer_norm`` under autograd allocated a fresh output and a fresh gradient.
    """

    @staticmethod
    def forward(ctx, ext, x, w, b, ln):
        ctx.ext, ctx.has_bias, ctx.ln = ext, b is not None, ln is not None
        if ln is None:
            ctx.save_for_backward(x, w)
            return _product(ext, x, w, b)
        y = _product(ext, x, w, None)
        out, rstd = ext.layer_norm_rows_train_(y, ln, b)  # y now holds x̂
        ctx.save_for_backward(x, w, y, rstd, ln)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gout):
        gout = gout.contiguous()
        x, w, *norm = ctx.saved_tensors
        dln = None
        if ctx.ln:
            xhat, rstd, ln = norm
            gy, dln, db = ctx.ext.layer_norm_rows_backward(gout, xhat, rstd, ln, ctx.has_bias)
        else:
            gy, db = gout, (gout.sum(0) if ctx.has_bias and ctx.needs_input_grad[3] else None)
        dx = _product(ctx.ext, gy, w.t(), None) if ctx.needs_input_grad[1] else None
        dw = gy.t().mm(x) if ctx.needs_input_grad[2] else None
        return None, dx, dw, db if ctx.needs_input_grad[3] else None, dln if ctx.needs_input_grad[4] else None


def input_projection(spec, x: torch.Tensor, p: dict, ext) -> torch.Tensor:
    """``spec.input_projection`` on the engine's own path for large calls (``Projection``).

    Its products go to oneDNN or MKL (``onednn_projection``), writing into huge pages; with layer
    norm the bias comes after the normalisation, as in ``cells.common.project``. In inference the
    product is normalised in place (``layer_norm_rows_``): at 6400 x 2048 that took 6.6 against
    F.layer_norm's 38.7 ms. Under autocast, or below ``PROJECTION_MIN_FLOPS``, it is
    ``spec.input_projection`` itself.
    """
    w, b, ln = p["weight_ih"], p.get("bias_ih"), p.get("weight_ln_ih")
    if (torch.is_autocast_enabled("cpu") or x.dim() != 2 or x.dtype != w.dtype
            or 2.0 * x.shape[0] * w.shape[0] * w.shape[1] < PROJECTION_MIN_FLOPS):
        return spec.input_projection(x, p)
    x = x.contiguous()
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, w, b, ln)):
        return Projection.apply(ext, x, w, b, ln)
    if ln is None:
        return _product(ext, x, w, b)
    y = _product(ext, x, w, None)
    ext.layer_norm_rows_(y, ln, b)
    return y
