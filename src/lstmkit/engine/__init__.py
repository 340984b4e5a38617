"""The fused CPU engine: each layer-direction's whole time loop, forward and backward, in C++.

It mirrors the reference loop (``lstmkit.layers.loop.run_direction``) with the same
parameters, and ``run_stack`` hands it a layer-direction whenever :func:`direction_runner`
says it covers the call. Per step it does the recurrent GEMM into a preallocated buffer
and one fused, vectorised pointwise pass templated on the variant's structure; under
``no_grad`` it keeps nothing for backward. Backward walks time in reverse, computing the
pre-activation gradients per step and the weight gradients as GEMMs over all steps.

Covered: every LSTM variant except ``fgr``, with peepholes, coupling, Greff's ablations
and ``proj_size``; GRU (both reset modes); RNN (tanh, relu); float32 and float64;
variable lengths, stacked and bidirectional. The reference loop keeps ``fgr``, layer
norm, recurrent dropout, zoneout, ``return_internals`` and other dtypes/devices.

``LSTMKIT_ENGINE``: ``0`` always uses the reference loop, ``1`` requires the engine
(raises if it cannot be built), unset means use it when it builds, else warn once and fall
back. The compiled module is cached (see :mod:`lstmkit.engine.build`).
"""
from __future__ import annotations

import os
import warnings

import torch

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


def direction_runner(spec, x: torch.Tensor, *, per_step_noise: bool, record: bool):
    """The engine's drop-in for ``run_direction`` if it covers this call, else None.

    ``per_step_noise``: recurrent dropout or zoneout is active (the reference loop owns them).
    ``record``: per-step internals were asked for (the engine does not keep them).
    """
    if mode() == "off" or per_step_noise or record or not supports(spec):
        return None
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    ext = load()
    if ext is None:
        return None

    def run_direction(spec, p, xw, batch_sizes, state, *, reverse=False, h_mask=None, zone=None, record=False):
        from .function import run
        out, final = run(ext, spec, p, xw, batch_sizes, state, reverse)
        return out, final, None

    return run_direction
