r"""MUT1, MUT2 and MUT3: the three best architectures of Jozefowicz, Zaremba & Sutskever's
search, "An Empirical Exploration of Recurrent Network Architectures" (ICML 2015), listed there
under these names. They are mutations of the GRU, registered in its family
(``lstmkit.GRU(..., variant="mut1")``, ``--cell mut1``).

The paper's notation, with h_t the state and h_{t+1} the new one (the paper writes the update
with z weighting the *new* value, the opposite of torch.nn.GRU's z):

MUT1:

.. math::

    z &= \mathrm{sigm}(W_{xz} x_t + b_z)                                     \\
    r &= \mathrm{sigm}(W_{xr} x_t + W_{hr} h_t + b_r)                         \\
    h_{t+1} &= \tanh(W_{hh}(r \odot h_t) + \tanh(x_t) + b_h) \odot z + h_t \odot (1 - z)

MUT2:

.. math::

    z &= \mathrm{sigm}(W_{xz} x_t + W_{hz} h_t + b_z)                         \\
    r &= \mathrm{sigm}(x_t + W_{hr} h_t + b_r)                                \\
    h_{t+1} &= \tanh(W_{hh}(r \odot h_t) + W_{xh} x_t + b_h) \odot z + h_t \odot (1 - z)

MUT3:

.. math::

    z &= \mathrm{sigm}(W_{xz} x_t + W_{hz} \tanh(h_t) + b_z)                  \\
    r &= \mathrm{sigm}(W_{xr} x_t + W_{hr} h_t + b_r)                         \\
    h_{t+1} &= \tanh(W_{hh}(r \odot h_t) + W_{xh} x_t + b_h) \odot z + h_t \odot (1 - z)

Parameters (per layer and direction; their shapes differ from the GRU's, so a MUT module has
no torch.nn equivalent and ``to_torch`` refuses it):

* ``weight_ih``: the input weights the unit has, stacked z, r, n (n = the candidate's row
  W_xh): MUT1 (z, r) (2H, I); MUT2 (z, n) (2H, I); MUT3 (z, r, n) (3H, I).
* ``weight_hh``: the recurrent weights, stacked z, r, n: MUT1 (r, n) (2H, H) with n = W_hh;
  MUT2 and MUT3 (z, r, n) (3H, H). MUT3's z row multiplies tanh(h_t), every n row r ⊙ h_t.
* ``bias_z``, ``bias_r``, ``bias_h`` (H,): the paper's one bias per gate (no bias_ih/bias_hh pair).

MUT1's tanh(x_t) and MUT2's sigm(x_t + ...) add the input without a weight, which needs the
input to be H wide, as the paper's inputs are. For a layer whose input width I differs from H
(the first layer of most models; every layer above a bidirectional one), lstmkit replaces x_t in
that term by a learnt P x_t: one more block of rows in ``weight_ih``, placed at the slot of the
gate that reads x_t unweighted (MUT1: n, so (3H, I) stacked z, r, P; MUT2: r, so (3H, I) stacked
z, P, n). With I = H there is no P and the unit is exactly the paper's.

With ``layer_norm=True`` (Ba et al. 2016) each weighted product is normalised before its bias
is added: the input product over all rows of ``weight_ih``, the recurrent ones per vector they
multiply (rows reading h_t together, the n row reading r ⊙ h_t alone, MUT3's z row reading
tanh(h_t) alone); gains ``weight_ln_ih`` and ``weight_ln_hh`` have the row counts of the weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..registry import Variant, register
from .common import project

# Which of z, r, n have input weights and recurrent weights, per MUT (the paper's listings).
_INPUT_ROWS = {1: ("z", "r"), 2: ("z", "n"), 3: ("z", "r", "n")}
_RECURRENT_ROWS = {1: ("r", "n"), 2: ("z", "r", "n"), 3: ("z", "r", "n")}
_UNWEIGHTED = {1: "n", 2: "r", 3: None}  # the gate that adds x_t without a weight


@dataclass(frozen=True)
class MUTSpec:
    kind: int = 1  # 1, 2 or 3: which of Jozefowicz et al.'s mutations
    layer_norm: bool = False

    family = "gru"
    gates = ("z", "r", "n")
    state_names = ("h",)
    reference_only = True  # the compiled engine has no kernel for these; the reference loop runs them

    def __post_init__(self):
        if self.kind not in (1, 2, 3):
            raise ValueError(f"MUT kind must be 1, 2 or 3; got {self.kind!r}")

    def state_widths(self, hidden_size: int, proj_size: int) -> tuple[int, ...]:
        return (hidden_size,)

    def input_rows(self, input_size: int, hidden_size: int) -> tuple[str, ...]:
        """Rows of ``weight_ih`` in stacking order; "x" is the stand-in P for an unweighted x_t."""
        rows, free = _INPUT_ROWS[self.kind], _UNWEIGHTED[self.kind]
        if free is None or input_size == hidden_size:
            return rows
        return tuple("x" if g == free else g for g in "zrn" if g in rows or g == free)

    def param_shapes(self, input_size: int, hidden_size: int, proj_size: int, bias: bool) -> dict:
        H = hidden_size
        n_in, n_rec = len(self.input_rows(input_size, H)), len(_RECURRENT_ROWS[self.kind])
        shapes = {"weight_ih": (n_in * H, input_size), "weight_hh": (n_rec * H, H)}
        if bias:
            shapes.update(bias_z=(H,), bias_r=(H,), bias_h=(H,))
        if self.layer_norm:
            shapes.update(weight_ln_ih=(n_in * H,), weight_ln_hh=(n_rec * H,))
        return shapes

    def forget_bias_slice(self, hidden_size: int) -> None:
        return None

    def input_projection(self, x: Tensor, p: dict) -> Tensor:
        """Everything that depends on x_t only, for all steps at once: (N, I) -> (N, 3H) = z, r, n parts."""
        H = p["weight_hh"].shape[1]
        rows = self.input_rows(x.shape[1], H)
        wx = dict(zip(rows, project(x, p["weight_ih"], None, p.get("weight_ln_ih")).split(H, dim=1)))
        free = _UNWEIGHTED[self.kind]
        if free is not None:  # the paper's unweighted x_t, or its stand-in P x_t
            xhat = wx.pop("x") if "x" in wx else x
            wx[free] = torch.tanh(xhat) if self.kind == 1 else xhat
        parts = [wx[g] if "bias_z" not in p else wx[g] + p[f"bias_{'h' if g == 'n' else g}"] for g in "zrn"]
        return torch.cat(parts, dim=1)

    def step(self, xw: Tensor, state: tuple, p: dict, h_mask: Tensor | None = None):
        return mut_cell(xw, state, p, self, h_mask)


def mut_cell(xw: Tensor, state: tuple, p: dict, spec: MUTSpec, h_mask: Tensor | None = None):
    """One MUT step. xw: (B, 3H) the z, r, n input parts (biases included); state: (h_t,).

    ``h_mask`` is the variational dropout mask on h_t where it meets the recurrent weights;
    the interpolation with z uses the undropped h_t. Returns ((h_{t+1},), {"z", "r", "n"}),
    n being the candidate tanh(...) of the paper's last line.
    """
    (h,) = state
    H = h.shape[1]
    h_in = h if h_mask is None else h * h_mask
    x_z, x_r, x_n = xw.split(H, dim=1)
    rec = _RECURRENT_ROWS[spec.kind]
    W = dict(zip(rec, p["weight_hh"].split(H)))
    ln = p.get("weight_ln_hh")
    LN = dict(zip(rec, ln.split(H))) if ln is not None else {}

    def product(vec: Tensor, gates: tuple[str, ...]) -> list[Tensor]:
        """W_g vec for the given gates, as one product (and one layer norm over its rows)."""
        w = torch.cat([W[g] for g in gates]) if len(gates) > 1 else W[gates[0]]
        g_ln = (torch.cat([LN[g] for g in gates]) if len(gates) > 1 else LN[gates[0]]) if LN else None
        return list(project(vec, w, None, g_ln).split(H, dim=1))

    if spec.kind == 1:
        (u_r,) = product(h_in, ("r",))
        z = torch.sigmoid(x_z)
    elif spec.kind == 2:
        u_z, u_r = product(h_in, ("z", "r"))
        z = torch.sigmoid(x_z + u_z)
    else:
        (u_r,) = product(h_in, ("r",))
        (u_z,) = product(torch.tanh(h_in), ("z",))
        z = torch.sigmoid(x_z + u_z)
    r = torch.sigmoid(x_r + u_r)
    (u_n,) = product(r * h_in, ("n",))
    n = torch.tanh(u_n + x_n)
    h_new = n * z + h * (1.0 - z)
    return (h_new,), {"z": z, "r": r, "n": n}


_JZS = "Jozefowicz et al. 2015, the MUT1-3 listing (best architectures found)"
for _k, _summary in [
    (1, "MUT1: z = sigm(W_xz x), r = sigm(W_xr x + W_hr h), h' = tanh(W_hh(r*h) + tanh(x)) z + h (1-z)"),
    (2, "MUT2: z = sigm(W_xz x + W_hz h), r = sigm(x + W_hr h), h' = tanh(W_hh(r*h) + W_xh x) z + h (1-z)"),
    (3, "MUT3: z = sigm(W_xz x + W_hz tanh h), r = sigm(W_xr x + W_hr h), h' as MUT2"),
]:
    register(Variant(f"mut{_k}", "gru", MUTSpec(kind=_k), _summary, _JZS, None))
