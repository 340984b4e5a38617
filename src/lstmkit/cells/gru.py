r"""The gated recurrent unit (Cho et al. 2014, sec. 2.3), in both of its published forms.

Weights are stacked r, z, n like torch.nn.GRU: ``weight_ih`` (3H, I), ``weight_hh`` (3H, H).

.. math::

    r_t &= \sigma(W_r x_t + b_{ir} + U_r h_{t-1} + b_{hr})       \\
    z_t &= \sigma(W_z x_t + b_{iz} + U_z h_{t-1} + b_{hz})       \\
    n_t &= \tanh(W_n x_t + b_{in} + r_t \odot (U_n h_{t-1} + b_{hn}))   \quad\text{reset\_after=True (torch.nn.GRU, cuDNN)}\\
    n_t &= \tanh(W_n x_t + b_{in} + U_n (r_t \odot h_{t-1}) + b_{hn})   \quad\text{reset\_after=False (Cho et al. 2014, eq. 8)}\\
    h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

``n_t`` is the candidate :math:`\tilde h_t` of the classic explanations. With layer norm
(Ba et al. 2016) each matrix product is normalised before its bias is added: the input
product over its 3H rows, and the recurrent one over its 3H rows (reset_after=True) or,
since reset_after=False multiplies two different vectors, over the 2H rows of r, z and
the H rows of n separately. Parameters ``weight_ln_ih`` and ``weight_ln_hh`` are (3H,).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..registry import Variant, register
from .common import project


@dataclass(frozen=True)
class GRUSpec:
    reset_after: bool = True  # True: torch.nn.GRU; False: Cho et al.'s original U(r ⊙ h)
    layer_norm: bool = False

    family = "gru"
    gates = ("r", "z", "n")
    state_names = ("h",)

    def state_widths(self, hidden_size: int, proj_size: int) -> tuple[int, ...]:
        return (hidden_size,)

    def param_shapes(self, input_size: int, hidden_size: int, proj_size: int, bias: bool) -> dict:
        H = hidden_size
        shapes = {"weight_ih": (3 * H, input_size), "weight_hh": (3 * H, H)}
        if bias:
            shapes.update(bias_ih=(3 * H,), bias_hh=(3 * H,))
        if self.layer_norm:
            shapes.update(weight_ln_ih=(3 * H,), weight_ln_hh=(3 * H,))
        return shapes

    def forget_bias_slice(self, hidden_size: int) -> None:
        return None

    def input_projection(self, x: Tensor, p: dict) -> Tensor:
        return project(x, p["weight_ih"], p.get("bias_ih"), p.get("weight_ln_ih"))

    def step(self, xw: Tensor, state: tuple, p: dict, h_mask: Tensor | None = None):
        return gru_cell(xw, state, p, self, h_mask)


def gru_cell(xw: Tensor, state: tuple, p: dict, spec: GRUSpec, h_mask: Tensor | None = None):
    """One GRU step. xw: (B, 3H) = W x_t + b_i; state: (h_{t-1},) with h (B, H).

    ``h_mask`` is the variational dropout mask on h_{t-1} where it enters U
    (Gal & Ghahramani 2016); the interpolation with z_t uses the undropped h_{t-1}.
    Returns ((h_t,), {"r", "z", "n"}).
    """
    (h,) = state
    h_in = h if h_mask is None else h * h_mask
    x_r, x_z, x_n = xw.chunk(3, dim=1)
    w, b, ln = p["weight_hh"], p.get("bias_hh"), p.get("weight_ln_hh")
    if spec.reset_after:
        h_r, h_z, h_n = project(h_in, w, b, ln).chunk(3, dim=1)  # (B, H) each
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
    else:
        H = h.shape[1]
        split = lambda t: (None, None) if t is None else (t[: 2 * H], t[2 * H:])  # noqa: E731
        (w_rz, w_n), (b_rz, b_n), (ln_rz, ln_n) = split(w), split(b), split(ln)
        h_r, h_z = project(h_in, w_rz, b_rz, ln_rz).chunk(2, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + project(r * h_in, w_n, b_n, ln_n))
    h_new = (1.0 - z) * n + z * h
    return (h_new,), {"r": r, "z": z, "n": n}


register(Variant("gru", "gru", GRUSpec(),
                 "GRU; reset_after=True is exactly torch.nn.GRU, False is Cho et al.'s h~ = tanh(Wx + U(r*h))",
                 "Cho et al. 2014, sec. 2.3", "torch.nn.GRU"))
