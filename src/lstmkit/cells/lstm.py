r"""The LSTM family: one step function, every variant an option of it.

Notation follows the classic explanations (Olah 2015) and Greff et al. 2015,
"LSTM: A Search Space Odyssey", section 2 (arXiv:1503.04069):

.. math::

    i_t &= \sigma(W_i x_t + U_i h_{t-1} + p_i \odot C_{t-1} + b_i)        \\
    f_t &= \sigma(W_f x_t + U_f h_{t-1} + p_f \odot C_{t-1} + b_f)        \\
    \tilde C_t &= \tanh(W_g x_t + U_g h_{t-1} + b_g)                       \\
    C_t &= f_t \odot C_{t-1} + i_t \odot \tilde C_t                        \\
    o_t &= \sigma(W_o x_t + U_o h_{t-1} + p_o \odot C_t + b_o)            \\
    h_t &= o_t \odot \tanh(C_t)

Weights are stacked i, f, g, o like torch.nn.LSTM (``weight_ih`` is (G·H, I),
``weight_hh`` is (G·H, H) or (G·H, P) with a projection), where G counts only the
gates a variant actually has: a variant without a forget gate has no forget-gate
weights. ``b = bias_ih + bias_hh`` as in torch.

Options (all fields of :class:`LSTMSpec`):

* peepholes (Gers & Schmidhuber 2000): diagonal ``p_i, p_f`` from C_{t-1} and ``p_o``
  from C_t, each switchable; parameters ``weight_ci``, ``weight_cf``, ``weight_co`` (H,).
* Greff et al.'s ablations of their vanilla V (= all three peepholes):
  NIG ``i=1``, NFG ``f=1``, NOG ``o=1``, NIAF ``C̃ = W_g x + U_g h + b_g``,
  NOAF ``h = o ⊙ C``, CIFG ``f = 1 − i``, FGR (gates also see ``i_{t-1}, f_{t-1},
  o_{t-1}`` through ``weight_gr`` (S·H, S·H), S sigmoid gates, rows/cols ordered i, f, o).
* projection (LSTMP, Sak et al. 2014, eq. 6): ``h_t = W_hr (o_t ⊙ tanh(C_t))``,
  ``weight_hr`` (P, H), exactly torch.nn.LSTM(proj_size=P).
* layer norm (Ba et al. 2016, section 6 / supplementary LSTM equations):
  ``LN(W x; α_x) + LN(U h; α_h) + b`` and ``h = o ⊙ tanh(LN(C; α_c, β_c))``;
  parameters ``weight_ln_ih`` (G·H), ``weight_ln_hh`` (G·H), ``weight_ln_c``, ``bias_ln_c`` (H).
* depth gate (Yao, Cohn, Vylomova, Duh & Dyer 2015, "Depth-Gated LSTM", arXiv:1508.03790,
  sec. 2): in a stack, layer L+1's cell also takes in the cell of the layer below,

  .. math::

      d_t^{(L+1)} &= \sigma(b_d + W_{xd} x_t^{(L+1)} + w_{cd} \odot C_{t-1}^{(L+1)} + w_{ld} \odot C_t^{(L)}) \\
      C_t^{(L+1)} &= d_t^{(L+1)} \odot C_t^{(L)} + f_t \odot C_{t-1}^{(L+1)} + i_t \odot \tilde C_t

  with x_t^{(L+1)} = h_t^{(L)} the layer's input; ``weight_xd`` (H, I_layer), ``weight_cd``,
  ``weight_ld``, ``bias_d`` (H). Set by ``LSTM(num_layers>=2, depth_gate=True)`` on layers >= 1
  (layer 0 has no cell below and no depth gate). The step receives W_xd x_t + b_d + w_ld ⊙ C_t^{(L)}
  and C_t^{(L)} as 2H extra columns of its input share ``xw`` (see :func:`depth_input`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..registry import Variant, register
from .common import project

SIGMOID_GATES = ("i", "f", "o")


@dataclass(frozen=True)
class LSTMSpec:
    input_gate: bool = True  # False: i_t = 1 (Greff's NIG)
    forget_gate: bool = True  # False: f_t = 1 (NFG, the 1997 LSTM's constant error carousel)
    output_gate: bool = True  # False: o_t = 1 (NOG)
    coupled: bool = False  # f_t = 1 - i_t (CIFG); the forget gate then has no weights
    input_activation: bool = True  # False: C̃_t is linear (NIAF)
    output_activation: bool = True  # False: h_t = o_t ⊙ C_t (NOAF)
    peepholes: tuple[str, ...] = ()  # subset of ("i", "f", "o") with a diagonal peephole
    gate_recurrence: bool = False  # FGR: gates also see all gates' previous activations
    layer_norm: bool = False  # Ba et al. 2016
    depth_gate: bool = False  # Yao et al. 2015: set per layer by LSTM(depth_gate=True), never registered

    family = "lstm"

    def __post_init__(self):
        unknown = [g for g in self.peepholes if g not in SIGMOID_GATES]  # before sorting by "ifo".index
        if unknown:
            raise ValueError(f"peepholes must be a subset of ('i', 'f', 'o'); got {unknown}")
        object.__setattr__(self, "peepholes", tuple(sorted(set(self.peepholes), key="ifo".index)))
        if self.coupled and not (self.input_gate and self.forget_gate):
            raise ValueError("cifg couples f = 1 - i, so it needs both the input and the forget gate; got "
                             f"input_gate={self.input_gate}, forget_gate={self.forget_gate} (e.g. cifg=True on nig/nfg)")
        missing = [g for g in self.peepholes if g not in self.sigmoid_gates]
        if missing:
            raise ValueError(
                f"peepholes {missing} belong to gates this variant does not compute; "
                f"expected a subset of {self.sigmoid_gates}"
            )

    @property
    def gates(self) -> tuple[str, ...]:
        """Gates with their own weights, in stacking order (a subset of i, f, g, o)."""
        present = {"i": self.input_gate, "f": self.forget_gate and not self.coupled,
                   "g": True, "o": self.output_gate}
        return tuple(g for g in "ifgo" if present[g])

    @property
    def sigmoid_gates(self) -> tuple[str, ...]:
        return tuple(g for g in self.gates if g != "g")

    @property
    def state_names(self) -> tuple[str, ...]:
        """Recurrent state carried between steps: (h, c), plus the previous gates for FGR."""
        return ("h", "c", "a") if self.gate_recurrence else ("h", "c")

    def state_widths(self, hidden_size: int, proj_size: int) -> tuple[int, ...]:
        widths = (proj_size or hidden_size, hidden_size)
        return widths + (len(self.sigmoid_gates) * hidden_size,) if self.gate_recurrence else widths

    def param_shapes(self, input_size: int, hidden_size: int, proj_size: int, bias: bool) -> dict:
        """Parameter base names and shapes, torch's own first and in torch's order."""
        G, H, S = len(self.gates), hidden_size, len(self.sigmoid_gates)
        shapes = {"weight_ih": (G * H, input_size), "weight_hh": (G * H, proj_size or H)}
        if bias:
            shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
        if proj_size:
            shapes["weight_hr"] = (proj_size, H)
        for g in self.peepholes:
            shapes[f"weight_c{g}"] = (H,)
        if self.gate_recurrence:
            shapes["weight_gr"] = (S * H, S * H)
        if self.layer_norm:
            shapes.update(weight_ln_ih=(G * H,), weight_ln_hh=(G * H,), weight_ln_c=(H,), bias_ln_c=(H,))
        if self.depth_gate:
            shapes.update(weight_xd=(H, input_size), weight_cd=(H,), weight_ld=(H,))
            if bias:
                shapes["bias_d"] = (H,)
        return shapes

    def forget_bias_slice(self, hidden_size: int) -> slice | None:
        """Rows of the stacked biases that belong to the forget gate, if it has any."""
        if "f" not in self.gates:
            return None
        k = self.gates.index("f")
        return slice(k * hidden_size, (k + 1) * hidden_size)

    def input_projection(self, x: Tensor, p: dict) -> Tensor:
        """W x + b_ih for all time steps at once: (N, I) -> (N, G·H)."""
        return project(x, p["weight_ih"], p.get("bias_ih"), p.get("weight_ln_ih"))

    def step(self, xw: Tensor, state: tuple, p: dict, h_mask: Tensor | None = None):
        return lstm_cell(xw, state, p, self, h_mask)


def lstm_cell(xw: Tensor, state: tuple, p: dict, spec: LSTMSpec, h_mask: Tensor | None = None):
    """One time step of any LSTM-family variant.

    Args:
        xw: (B, G·H) the input's share of the gate pre-activations, ``W x_t + b_ih``
            (computed for all steps at once by ``spec.input_projection``).
        state: ``(h_{t-1}, C_{t-1})`` of shapes (B, P or H) and (B, H); with FGR also the
            previous sigmoid-gate activations (B, S·H).
        p: parameters by base name (``weight_hh``, ``bias_hh``, ``weight_ci``, ...).
        h_mask: optional (B, P or H) variational-dropout mask on h_{t-1} where it enters
            the recurrent weights (Gal & Ghahramani 2016), already scaled by 1/(1-p).

    Returns:
        (new_state, gates): the new state tuple and a dict of the gate activations this
        variant computes (``i``, ``f``, ``g`` = C̃, ``o``), each (B, H).
    """
    h, c = state[0], state[1]
    h_in = h if h_mask is None else h * h_mask
    if spec.depth_gate:  # the last 2H columns: W_xd x + b_d + w_ld ⊙ C^(L)_t, and C^(L)_t itself
        GH = xw.shape[1] - 2 * c.shape[1]
        xw, d_pre, c_low = xw[:, :GH], xw[:, GH:GH + c.shape[1]], xw[:, GH + c.shape[1]:]
    pre = xw + project(h_in, p["weight_hh"], p.get("bias_hh"), p.get("weight_ln_hh"))  # (B, G·H)
    z = dict(zip(spec.gates, pre.chunk(len(spec.gates), dim=1)))
    if spec.gate_recurrence:  # FGR: + R_{·i} i_{t-1} + R_{·f} f_{t-1} + R_{·o} o_{t-1}
        rec = F.linear(state[2], p["weight_gr"]).chunk(len(spec.sigmoid_gates), dim=1)
        for name, r in zip(spec.sigmoid_gates, rec):
            z[name] = z[name] + r

    def gate(name: str, cell: Tensor) -> Tensor:  # σ(z + p ⊙ C)
        a = z[name] + p[f"weight_c{name}"] * cell if name in spec.peepholes else z[name]
        return torch.sigmoid(a)

    gates = {}
    i = gates["i"] = gate("i", c) if spec.input_gate else 1.0
    if spec.coupled:
        f = gates["f"] = 1.0 - i
    else:
        f = gates["f"] = gate("f", c) if spec.forget_gate else 1.0
    g = gates["g"] = torch.tanh(z["g"]) if spec.input_activation else z["g"]  # C̃_t
    c_new = f * c + i * g  # the conveyor belt: C_t = f ⊙ C_{t-1} + i ⊙ C̃_t
    if spec.depth_gate:  # Yao et al.: + d_t ⊙ C_t of the layer below, d_t peeping at C_{t-1}
        d = gates["d"] = torch.sigmoid(d_pre + p["weight_cd"] * c)
        c_new = c_new + d * c_low
    o = gates["o"] = gate("o", c_new) if spec.output_gate else 1.0
    c_out = F.layer_norm(c_new, c_new.shape[-1:], p["weight_ln_c"], p["bias_ln_c"]) if spec.layer_norm else c_new
    m = o * (torch.tanh(c_out) if spec.output_activation else c_out)  # (B, H)
    h_new = F.linear(m, p["weight_hr"]) if "weight_hr" in p else m  # LSTMP: (B, P)
    gates = {k: v for k, v in gates.items() if isinstance(v, Tensor)}  # absent gates are the constant 1
    if spec.gate_recurrence:
        return (h_new, c_new, torch.cat([gates[k] for k in spec.sigmoid_gates], dim=1)), gates
    return (h_new, c_new), gates


def depth_input(x: Tensor, p: dict, c_low: Tensor) -> Tensor:
    """The depth gate's share of a layer's step input, for all rows at once.

    x: (N, I_layer) the layer's input h^(L); c_low: (N, H) the cells C^(L) of the layer below.
    Returns (N, 2H): [W_xd x + b_d + w_ld ⊙ C^(L), C^(L)], appended to ``input_projection``'s xw.
    """
    return torch.cat([F.linear(x, p["weight_xd"], p.get("bias_d")) + p["weight_ld"] * c_low, c_low], dim=1)


V = ("i", "f", "o")  # Greff et al.'s vanilla LSTM: all three peepholes
_GREFF = "Greff et al. 2015, LSTM: A Search Space Odyssey, sec. 2-3"
for _name, _spec, _summary, _ref, _torch in [
    ("lstm", LSTMSpec(), "LSTM with forget gate, no peepholes (Greff's NP); exactly torch.nn.LSTM",
     "Hochreiter & Schmidhuber 1997; Gers et al. 2000", "torch.nn.LSTM"),
    ("peephole", LSTMSpec(peepholes=V), "diagonal peepholes C_{t-1}->i,f and C_t->o (Greff's vanilla V)",
     "Gers & Schmidhuber 2000", None),
    ("nig", LSTMSpec(input_gate=False, peepholes=("f", "o")), "V without input gate: i = 1", _GREFF, None),
    ("nfg", LSTMSpec(forget_gate=False, peepholes=("i", "o")), "V without forget gate: f = 1", _GREFF, None),
    ("nog", LSTMSpec(output_gate=False, peepholes=("i", "f")), "V without output gate: o = 1", _GREFF, None),
    ("niaf", LSTMSpec(input_activation=False, peepholes=V), "V without input activation: C~ is linear", _GREFF, None),
    ("noaf", LSTMSpec(output_activation=False, peepholes=V), "V without output activation: h = o * C", _GREFF, None),
    ("cifg", LSTMSpec(coupled=True, peepholes=("i", "o")), "V with coupled input and forget gate: f = 1 - i", _GREFF, None),
    ("fgr", LSTMSpec(gate_recurrence=True, peepholes=V), "V with full gate recurrence: gates see i,f,o at t-1", _GREFF, None),
]:
    register(Variant(_name, "lstm", _spec, _summary, _ref, _torch))
