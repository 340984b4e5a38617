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
zoneout; the LSTM's layer norm (with ``fgr`` too: csrc/fgr.h, FgrLnProducts), the RNN's and the GRU's (reset_after); bfloat16 under
``torch.autocast("cpu")`` with the input projection in bf16 and the recurrence in float32 (see
``function.run``). The reference loop keeps Cho's GRU (reset_after=False) with layer norm, MUT1-3, depth-gated
layers, ``return_internals`` and other dtypes/devices.

Large float32 products go to oneDNN (AVX-512 here, ~2.5x MKL's AVX2 sgemm on this AMD CPU)
through ATen's prepacked ``mkldnn::_linear_pointwise``: the per-step recurrent product from
8 MFLOP per step (below that its ~20 µs per call loses to the panel kernel; from 20 MFLOP where
the loop can split the hidden units over threads), the LSTM's and RNN's ∂h product in backward
by the same rule, and the input projection under ``no_grad``.
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
# A whole-sequence float32 input projection goes to oneDNN (under no_grad) from this size: with the
# weight reordered on every call it lost to MKL's F.linear at 3200x64->256 (0.75 against 0.53 ms,
# 2 threads, 2026-11-22) and won from about 1 GFLOP (8000x128->512: 5.3 against 5.8 ms).
PROJECTION_ONEDNN_MIN_FLOPS = 5e8


def onednn_min_flops(default: float = ONEDNN_MIN_FLOPS) -> float:
    """The oneDNN threshold: ``LSTMKIT_ONEDNN=0`` disables it, ``LSTMKIT_ONEDNN_MIN_FLOPS`` overrides it."""
    if os.environ.get("LSTMKIT_ONEDNN") == "0":
        return float("inf")
    return float(os.environ.get("LSTMKIT_ONEDNN_MIN_FLOPS") or default)


def _onednn_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x wᵀ + b on oneDNN's prepacked path (the weight reordered for this call's rows)."""
    wp = torch.ops.mkldnn._reorder_linear_weight(w, x.shape[0])
    return torch.ops.mkldnn._linear_pointwise(x, wp, b, "none", [], "")


class OneDnnLinear(torch.autograd.Function):
    """``F.linear`` for training, on oneDNN: forward and ∂x as oneDNN products, ∂w = ∂yᵀ x on MKL
    (oneDNN measured slower for that form here: docs/performance.md). lstm training at
    (100,64,512,512), ratio to nn.LSTM in one process over three runs: 1.09 / 1.05 / 0.88 against
    1.26 / 1.07 / 0.93 with F.linear (2026-12-07, AVX2)."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return _onednn_linear(x, w, b)

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        gy = gy.contiguous()
        dx = _onednn_linear(gy, w.t().contiguous(), None) if ctx.needs_input_grad[0] else None
        dw = gy.t().mm(x) if ctx.needs_input_grad[1] else None
        db = gy.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


def input_projection(spec, x: torch.Tensor, p: dict, ext=None) -> torch.Tensor:
    """``spec.input_projection``, on oneDNN's prepacked path for large float32 calls.

    oneDNN runs AVX-512 code on an AVX-512 CPU where ``F.linear`` (MKL) runs AVX2, about 2.5x apart
    at large shapes (10-13 % apart on this AVX2-only one). Its ops have no autograd formula, so with
    a gradient to track ``OneDnnLinear`` supplies one; small products, where oneDNN's fixed cost
    per call dominates, stay ``spec.input_projection``. With layer norm the bias comes after the
    normalisation, as in ``cells.common.project``; in inference the engine (``ext``) normalises the
    product in place (``layer_norm_rows_``), which at 6400 x 2048 took 6.6 against F.layer_norm's
    38.7 ms (its fresh output is paid in page faults).
    """
    w, b, ln = p["weight_ih"], p.get("bias_ih"), p.get("weight_ln_ih")
    if torch.is_autocast_enabled("cpu") or x.dim() != 2:
        return spec.input_projection(x, p)
    tracking = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, w, b, ln))
    y = None
    if x.dtype == torch.float32 and 2.0 * x.shape[0] * w.shape[0] * w.shape[1] >= onednn_min_flops(PROJECTION_ONEDNN_MIN_FLOPS):
        bias = None if ln is not None else b
        try:
            y = OneDnnLinear.apply(x.contiguous(), w, bias) if tracking else _onednn_linear(x.contiguous(), w, bias)
        except (AttributeError, RuntimeError):  # a torch build without the prepacked ops
            y = None
    if y is None and (tracking or ln is None):
        return spec.input_projection(x, p)
    if ln is None:
        return y
    if tracking:
        return torch.nn.functional.layer_norm(y, (y.shape[-1],), ln, b)  # as cells/common.py: project
    if y is None:
        y = torch.nn.functional.linear(x, w)
    if ext is None:
        return torch.nn.functional.layer_norm(y, (y.shape[-1],), ln, b)  # as cells/common.py: project
    ext.layer_norm_rows_(y, ln, b)
    return y
