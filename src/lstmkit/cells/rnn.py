r"""The Elman RNN, as torch.nn.RNN: :math:`h_t = \phi(W x_t + b_{ih} + U h_{t-1} + b_{hh})`.

:math:`\phi` is tanh or relu. ``weight_ih`` (H, I), ``weight_hh`` (H, H). This is the
network whose gradients vanish or explode over long lags (Hochreiter 1991; Bengio et
al. 1994), kept as the baseline the gated families are measured against. With layer
norm (Ba et al. 2016): :math:`\phi(LN(W x) + LN(U h) + b)`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..registry import Variant, register
from .common import project

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


@dataclass(frozen=True)
class RNNSpec:
    nonlinearity: str = "tanh"  # "tanh" or "relu", as torch.nn.RNN
    layer_norm: bool = False

    family = "rnn"
    gates = ()
    state_names = ("h",)

    def __post_init__(self):
        if self.nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu'; got {self.nonlinearity!r}")

    def state_widths(self, hidden_size: int, proj_size: int) -> tuple[int, ...]:
        return (hidden_size,)

    def param_shapes(self, input_size: int, hidden_size: int, proj_size: int, bias: bool) -> dict:
        H = hidden_size
        shapes = {"weight_ih": (H, input_size), "weight_hh": (H, H)}
        if bias:
            shapes.update(bias_ih=(H,), bias_hh=(H,))
        if self.layer_norm:
            shapes.update(weight_ln_ih=(H,), weight_ln_hh=(H,))
        return shapes

    def forget_bias_slice(self, hidden_size: int) -> None:
        return None

    def input_projection(self, x: Tensor, p: dict) -> Tensor:
        return project(x, p["weight_ih"], p.get("bias_ih"), p.get("weight_ln_ih"))

    def step(self, xw: Tensor, state: tuple, p: dict, h_mask: Tensor | None = None):
        return rnn_cell(xw, state, p, self, h_mask)


def rnn_cell(xw: Tensor, state: tuple, p: dict, spec: RNNSpec, h_mask: Tensor | None = None):
    """One Elman step. xw: (B, H) = W x_t + b_ih; state: (h_{t-1},). Returns ((h_t,), {})."""
    (h,) = state
    h_in = h if h_mask is None else h * h_mask
    pre = xw + project(h_in, p["weight_hh"], p.get("bias_hh"), p.get("weight_ln_hh"))
    return (NONLINEARITIES[spec.nonlinearity](pre),), {}


register(Variant("rnn", "rnn", RNNSpec(), "Elman RNN with tanh or relu; exactly torch.nn.RNN",
                 "Elman 1990", "torch.nn.RNN"))
