"""The engine's autograd.Function: one layer in one direction, forward and backward in C++.

It takes exactly the reference step's parameters (the same dict of base names) and the
input projection ``xw`` computed by ``spec.input_projection``, so autograd still owns
``weight_ih``, ``bias_ih`` and the layer input; the C++ side owns everything recurrent.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch.autograd.function import once_differentiable

# The parameter slots of each family's C++ entry points (absent ones are passed as None).
# "h_mask" is not a parameter: the recurrent-dropout mask (B, width_h), one per sequence, already
# scaled by 1/(1-p); it gets no gradient. Families without that slot run recurrent dropout on the
# reference loop.
PARAMS = {
    "lstm": ("weight_hh", "bias_hh", "weight_ci", "weight_cf", "weight_co", "weight_hr", "h_mask",
             "zone_h", "zone_c", "weight_ln_hh", "weight_ln_c", "bias_ln_c"),
    "gru": ("weight_hh", "bias_hh", "h_mask", "zone_h", "weight_ln_hh"),
    "rnn": ("weight_hh", "bias_hh", "h_mask", "zone_h", "weight_ln_hh"),
}


def supports_recurrent_dropout(spec) -> bool:  # FGR included: the mask covers h, not a_{t-1}
    return "h_mask" in PARAMS.get(spec.family, ())


def supports_zoneout(spec) -> bool:  # FGR included: h and C are zoned, a_{t-1} is not (as in layers/loop.py)
    return "zone_h" in PARAMS.get(spec.family, ())


def _zone_tensor(z, n: int, width: int, dtype):
    """A zoneout entry as the engine takes it: None, or (N, width) with 1 = keep h_{t-1} (eval: the rate)."""
    if z is None:
        return None
    if isinstance(z, float):
        return torch.full((n, width), z, dtype=dtype)
    return z.to(dtype).contiguous()

# LSTM structure bits, as in csrc/lstm_cell.h.
_IG, _FG, _OG, _CPL, _IACT, _OACT, _FGR = 1, 2, 4, 8, 16, 32, 64


def supports(spec) -> bool:
    """Whether the engine computes this spec (the rest runs on the reference loop).

    Specs marked ``reference_only`` (MUT1-3) and depth-gated LSTM layers have no kernel here.
    Every family here runs with recurrent dropout and zoneout (``supports_*`` above).
    """
    if getattr(spec, "reference_only", False) or getattr(spec, "depth_gate", False):
        return False
    return spec.family in ("lstm", "gru", "rnn")


def supports_streaming(spec) -> bool:
    """Whether the C++ stepper (csrc/stream.cpp) covers this spec: FGR and layer norm step on the reference step."""
    return supports(spec) and not getattr(spec, "gate_recurrence", False) and not spec.layer_norm


def flags(spec) -> int:
    if spec.family == "lstm":
        return ((_IG if spec.input_gate else 0) | (_FG if spec.forget_gate else 0) | (_OG if spec.output_gate else 0)
                | (_CPL if spec.coupled else 0) | (_IACT if spec.input_activation else 0)
                | (_OACT if spec.output_activation else 0) | (_FGR if spec.gate_recurrence else 0))
    if spec.family == "gru":
        return int(spec.reset_after)
    return int(spec.nonlinearity == "relu")


class Config(NamedTuple):
    family: str
    flags: int
    batch_sizes: list
    reverse: bool
    bf16: bool  # under CPU autocast to bfloat16: large recurrent products and weight gradients in bf16


def forward(ext, cfg: Config, xw, states, params, train: bool):
    """-> (out (N, width_h), final states, tensors saved for backward)."""
    res = getattr(ext, f"{cfg.family}_forward")(cfg.flags, xw, *states, params, cfg.batch_sizes, cfg.reverse, train,
                                                 cfg.bf16)
    k = len(states)
    return res[0], tuple(res[1:1 + k]), res[1 + k:]


class Direction(torch.autograd.Function):
    """``(xw, *state, *params) -> (out, *final_state)`` for one layer-direction."""

    @staticmethod
    def forward(ctx, ext, cfg: Config, xw, n_state: int, *tensors):
        states, params = tensors[:n_state], list(tensors[n_state:])
        out, finals, saved = forward(ext, cfg, xw, states, params, True)
        ctx.ext, ctx.cfg, ctx.n_state, ctx.n_params = ext, cfg, n_state, len(params)
        ctx.save_for_backward(*params, *saved)
        return (out, *finals)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, *grad_finals):
        cfg = ctx.cfg
        stored = ctx.saved_tensors
        params, saved = list(stored[:ctx.n_params]), list(stored[ctx.n_params:])
        res = getattr(ctx.ext, f"{cfg.family}_backward")(cfg.flags, grad_out, *grad_finals, saved, params,
                                                          cfg.batch_sizes, cfg.reverse, cfg.bf16)
        k = ctx.n_state
        d_xw, d_states, d_params = res[0], res[1:1 + k], res[1 + k:]
        return (None, None, d_xw, None, *d_states, *d_params)


def fgr_weight(spec, p: dict) -> torch.Tensor:
    """FGR's recurrent weight as the engine takes it: ``[W_hh | R]``, (G·H, P + S·H).

    R holds ``weight_gr`` (S·H, S·H) in the rows of the sigmoid gates and zeros in the rows of
    C̃ (which sees no gate recurrence), so one product of ``[h_{t-1}, a_{t-1}]`` gives both terms
    of the reference step. The engine never multiplies that zero block (csrc/fgr.h: the panel
    kernel skips it, oneDNN steps run as two products, and its gradient is left zero). Built with
    differentiable ops: autograd splits the engine's gradient of it back into ``weight_hh`` and
    ``weight_gr``.
    """
    w, wgr = p["weight_hh"], p["weight_gr"]
    H = w.shape[0] // len(spec.gates)
    blocks, k = [], 0
    for g in spec.gates:
        if g == "g":
            blocks.append(wgr.new_zeros(H, wgr.shape[1]))
        else:
            blocks.append(wgr[k * H:(k + 1) * H])
            k += 1
    return torch.cat([w, torch.cat(blocks)], dim=1)


def run(ext, spec, p: dict, xw, batch_sizes, state: tuple, reverse: bool, bf16: bool = False, h_mask=None,
        zone=None):
    """One layer-direction through the engine: (out, final state tuple).

    Under ``torch.autocast("cpu", torch.bfloat16)`` the input projection ``xw`` arrives in
    bfloat16 (autocast ran it: one large GEMM over all steps, half the layer's FLOPs, on
    oneDNN's bf16 path). The recurrence keeps the parameters' dtype: ``xw`` is cast up here
    (autograd casts its gradient back) and autocast is off inside, so the state and the
    pointwise math never round to bf16 from one step to the next. Per-step products large
    enough for oneDNN (``onednn_min_flops``) and the recurrent weight gradients take bf16
    inputs with float32 accumulation when ``bf16`` is set (the caller saw autocast to bfloat16
    before turning it off); smaller steps stay float32, where a bf16 call's fixed cost would
    outweigh its speed.
    """
    dtype = p["weight_hh"].dtype
    fgr = spec.family == "lstm" and spec.gate_recurrence
    if fgr:  # the previous sigmoid gates a_{t-1} travel with h_{t-1}: the engine's state is ([h, a], C)
        p = {**p, "weight_hh": fgr_weight(spec, p)}
        width_h = state[0].shape[1]
        state = (torch.cat([state[0], state[2]], dim=1), state[1])
    cfg = Config(spec.family, flags(spec), list(batch_sizes), reverse, bf16 and dtype == torch.float32)
    p = {**p, "h_mask": None if h_mask is None else h_mask.to(dtype).contiguous()}
    if zone is not None:  # h's and C's entries (FGR's a_{t-1}, if given one, is never zoned: see layers/loop.py)
        widths = [width_h if fgr and k == 0 else s.shape[1] for k, s in enumerate(state)]
        p.update({f"zone_{k}": _zone_tensor(z, xw.shape[0], w, dtype) for k, z, w in zip(("h", "c"), zone, widths)})
    params = [p.get(name) for name in PARAMS[spec.family]]
    states = [s.to(dtype).contiguous() for s in state]
    xw = xw.to(dtype).contiguous()
    tensors = [xw, *states, *params]
    with torch.autocast("cpu", enabled=False):
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
            out, *finals = Direction.apply(ext, cfg, xw, len(states), *states, *params)
        else:
            out, finals, _ = forward(ext, cfg, xw, states, params, False)  # no_grad: nothing kept for backward
    if fgr:  # ([h, a], C) -> (h, C, a), the reference step's state
        return out, (finals[0][:, :width_h], finals[1], finals[0][:, width_h:])
    return out, tuple(finals)
