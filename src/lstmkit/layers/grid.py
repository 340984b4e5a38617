r"""Grid LSTM over time × depth (Kalchbrenner, Danihelka & Graves 2015, "Grid Long Short-Term
Memory", arXiv:1507.01526, sec. 2-3): a 2-LSTM whose blocks have LSTM transfer along both
dimensions.

Block (t, l) receives the time dimension's hidden and memory vectors (h^T, m^T) from block
(t-1, l) and the depth dimension's (h^D, m^D) from block (t, l-1). With H = [h^T; h^D] (2H
wide), each dimension k applies its own LSTM transform (the paper's eq. for the N-d block):

.. math::

    (h'^T, m'^T) = \mathrm{LSTM}(H, m^T, W^T) \qquad (h'^D, m'^D) = \mathrm{LSTM}(H, m^D, W^D)

    \mathrm{LSTM}(H, m, W):\;
    g^u = \sigma(W^u H),\; g^f = \sigma(W^f H),\; g^o = \sigma(W^o H),\; g^c = \tanh(W^c H),\;
    m' = g^f \odot m + g^u \odot g^c,\; h' = g^o \odot \tanh(m')

(``paper_output=True`` uses h' = tanh(g^o ⊙ m'), the form the paper's LSTM equations print as
we read them; the default is the usual LSTM output g^o ⊙ tanh(m').) Biases are added to
each W H. h'^T, m'^T go right (the next time step, same layer); h'^D, m'^D go up.

* Input and output: the input is projected into the bottom row's depth vector, h^D_{t,0} =
  W_ih x_t + b_ih with m^D_{t,0} = 0 (a non-LSTM dimension, sec. 3); the output at step t is
  the top block's h'^D.
* ``priority`` (sec. 3, "priority dimensions"): ``None`` computes both transforms from the same
  H. ``"depth"`` computes the time transform first and the depth transform from [h'^T; h^D];
  ``"time"`` the depth transform first and the time transform from [h^T; h'^D].
* ``tied`` (sec. 3, weight sharing): one W^T and one W^D for all layers (the paper's tied
  Grid LSTM); otherwise each layer has its own.

Parameters: ``weight_ih_l0`` (H, I), ``bias_ih_l0`` (H) (the input projection);
``weight_time_lK``, ``weight_depth_lK`` (4H, 2H) with columns [h^T | h^D] and rows stacked
i (= g^u), f, g (= g^c), o like torch.nn.LSTM, ``bias_time_lK``, ``bias_depth_lK`` (4H); with
``tied=True`` the same names without the ``_lK`` suffix. The state carried between calls
is the time dimension's (h_0, c_0) = (h^T, m^T), each (num_layers, B, H), as torch.nn.LSTM's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cells.common import init_uniform
from ..registry import Variant, register
from .params import make_spec
from .recurrent import RecurrentBase

PRIORITIES = (None, "depth", "time")
_TRANSFORMS = ("time", "depth")


@dataclass(frozen=True)
class GridSpec:
    priority: str | None = None  # None, "depth" or "time": which transform sees the other's new output
    tied: bool = False  # share W^T and W^D across layers
    paper_output: bool = False  # h' = tanh(g^o ⊙ m') as printed, instead of g^o ⊙ tanh(m')

    family = "grid"
    gates = ("i", "f", "g", "o")
    state_names = ("h", "c")
    reference_only = True

    def __post_init__(self):
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority must be None, 'depth' or 'time'; got {self.priority!r}")
        for k in ("tied", "paper_output"):
            if not isinstance(getattr(self, k), bool):
                raise TypeError(f"{k} must be a bool; got {type(getattr(self, k)).__name__}")

    def state_widths(self, hidden_size: int, proj_size: int) -> tuple[int, ...]:
        return (hidden_size, hidden_size)

    def param_shapes(self, input_size: int, hidden_size: int, proj_size: int, bias: bool) -> dict:
        """One layer's transforms (none when tied: the module owns the shared ones)."""
        return {} if self.tied else transform_shapes(hidden_size, bias)

    def forget_bias_slice(self, hidden_size: int) -> slice:
        return slice(hidden_size, 2 * hidden_size)


def transform_shapes(H: int, bias: bool) -> dict:
    shapes = {f"weight_{k}": (4 * H, 2 * H) for k in _TRANSFORMS}
    if bias:
        shapes.update({f"bias_{k}": (4 * H,) for k in _TRANSFORMS})
    return shapes


def lstm_transfer(pre: Tensor, m: Tensor, paper_output: bool) -> tuple[Tensor, Tensor]:
    """The paper's LSTM(H, m, W) given pre = W H + b (B, 4H), stacked i, f, g, o: -> (h', m')."""
    i, f, g, o = pre.chunk(4, dim=1)
    m_new = torch.sigmoid(f) * m + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.tanh(torch.sigmoid(o) * m_new) if paper_output else torch.sigmoid(o) * torch.tanh(m_new)
    return h_new, m_new


class GridLSTM(RecurrentBase):
    """A 2-D Grid LSTM over time and depth, with torch.nn.LSTM's forward contract.

    Args:
        input_size, hidden_size, num_layers (the grid's depth), bias, batch_first, dropout
            (on h^D between layers), device, dtype: as torch.nn.LSTM.
        priority: None, "depth" or "time" (see the module docstring).
        tied: share the time and depth transforms across layers.
        paper_output: h' = tanh(g^o ⊙ m') instead of g^o ⊙ tanh(m').
        forget_bias: initial forget-gate bias of both transforms (default 1.0, as lstmkit.LSTM).

    ``forward(input, (h_0, c_0)=None)`` takes (T, B, I) (or batch-first, unbatched, or a
    PackedSequence) and the time dimension's state, each (num_layers, B, H); returns
    ``(output (T, B, H), (h_n, c_n))``. ``return_internals=True`` adds ``"h", "c"`` (time
    dimension) and ``"h_depth", "c_depth"`` (each block's outputs upwards), (L, 1, T, B, H).
    ``bidirectional``, ``proj_size``, ``recurrent_dropout`` and ``zoneout`` are accepted only at
    their defaults.
    """

    _state_is_tuple = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None, *, variant: str = "grid", priority: str | None = None, tied: bool | None = None,
                 paper_output: bool | None = None, forget_bias: float | None = 1.0, proj_size: int = 0,
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0):
        for what, value, default in (("bidirectional", bidirectional, False), ("proj_size", proj_size, 0),
                                     ("recurrent_dropout", recurrent_dropout, 0.0), ("zoneout", zoneout, 0.0)):
            if value != default:
                raise ValueError(f"GridLSTM does not support {what}={value!r} (only {default!r})")
        spec = make_spec("grid", variant, tied=tied, paper_output=paper_output)
        if priority is not None:  # None is a valid priority, so it cannot mean "the variant's default" here
            spec = GridSpec(priority=priority, tied=spec.tied, paper_output=spec.paper_output)
        factory = {"device": device, "dtype": dtype}
        super().__init__(spec, variant, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         False, 0, device, dtype, forget_bias=forget_bias)
        H = self.hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(H, self.input_size, **factory))
        self.bias_ih_l0 = nn.Parameter(torch.empty(H, **factory)) if bias else None
        if spec.tied:
            for name, shape in transform_shapes(H, bias).items():
                self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
        self.reset_parameters()

    @property
    def priority(self):
        return self.spec.priority

    @property
    def tied(self) -> bool:
        return self.spec.tied

    def reset_parameters(self) -> None:
        """torch's U(-1/√H, 1/√H) for everything, then the forget-gate rows of both transforms' biases."""
        init_uniform(self.named_parameters(), self.hidden_size)
        if self.forget_bias is None:
            return
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.startswith(("bias_time", "bias_depth")):
                    p[self.hidden_size:2 * self.hidden_size] = self.forget_bias

    def _layer_params(self, layer: int) -> dict:
        suffix = "" if self.tied else f"_l{layer}"
        return {name: getattr(self, name + suffix) for name in transform_shapes(self.hidden_size, self.bias)}

    def _run(self, data: Tensor, batch_sizes: list[int], hx: tuple, record: bool):
        offsets = [0]
        for n in batch_sizes:
            offsets.append(offsets[-1] + n)
        hD = F.linear(data, self.weight_ih_l0, self.bias_ih_l0)  # (N, H): the bottom row's depth input
        mD = torch.zeros_like(hD)
        finals_h, finals_c, records = [], [], []
        for layer in range(self.num_layers):
            p = self._layer_params(layer)
            outs = grid_layer(p, hD, mD, batch_sizes, offsets, hx[0][layer], hx[1][layer], self.spec)
            hT, mT, hD, mD, (h_n, c_n) = outs
            finals_h.append(h_n)
            finals_c.append(c_n)
            records.append([{"h": hT, "c": mT, "h_depth": hD, "c_depth": mD}])
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                hD = F.dropout(hD, self.dropout, True)
        return hD, (torch.stack(finals_h), torch.stack(finals_c)), (records if record else None)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", priority={self.priority!r}, tied={self.tied}"


def grid_layer(p: dict, hD: Tensor, mD: Tensor, batch_sizes: list[int], offsets: list[int], h: Tensor, m: Tensor,
               spec: GridSpec):
    """One row of blocks (one layer) over all time steps, packed.

    hD, mD: (N, H) the depth vectors coming up from the row below; h, m: (B, H) the time
    dimension's initial state. Returns the time vectors hT, mT (N, H), the depth vectors going up
    hD', mD' (N, H), and each sequence's final (h, m).
    """
    H = h.shape[1]
    WT, WD = p["weight_time"], p["weight_depth"]  # (4H, 2H), columns [h^T | h^D]
    bT, bD = p.get("bias_time"), p.get("bias_depth")
    # The parts that depend only on the depth input, for all steps at once (one GEMM each).
    xD = F.linear(hD, WD[:, H:], bD)  # (N, 4H)
    xT = F.linear(hD, WT[:, H:], bT) if spec.priority != "time" else None
    U = torch.cat([WT[:, :H], WD[:, :H]]) if spec.priority is None else None  # (8H, H): both read h^T
    B = batch_sizes[0]
    outs = {k: [] for k in ("hT", "mT", "hD", "mD")}
    for t, n in enumerate(batch_sizes):
        rows = slice(offsets[t], offsets[t + 1])
        hp, mp, md = h[:n], m[:n], mD[rows]
        if spec.priority is None:  # both transforms from the same H = [h^T; h^D]
            rec_T, rec_D = F.linear(hp, U).split(4 * H, dim=1)
            hT, mT = lstm_transfer(xT[rows] + rec_T, mp, spec.paper_output)
            hd, mdn = lstm_transfer(xD[rows] + rec_D, md, spec.paper_output)
        elif spec.priority == "depth":  # time first; depth reads [h'^T; h^D]
            hT, mT = lstm_transfer(xT[rows] + F.linear(hp, WT[:, :H]), mp, spec.paper_output)
            hd, mdn = lstm_transfer(xD[rows] + F.linear(hT, WD[:, :H]), md, spec.paper_output)
        else:  # depth first; time reads [h^T; h'^D]
            hd, mdn = lstm_transfer(xD[rows] + F.linear(hp, WD[:, :H]), md, spec.paper_output)
            hT, mT = lstm_transfer(F.linear(torch.cat([hp, hd], dim=1), WT, bT), mp, spec.paper_output)
        for k, v in (("hT", hT), ("mT", mT), ("hD", hd), ("mD", mdn)):
            outs[k].append(v)
        h = hT if n == B else torch.cat([hT, h[n:]])  # finished sequences keep their last state
        m = mT if n == B else torch.cat([mT, m[n:]])
    cat = {k: torch.cat(v) for k, v in outs.items()}
    return cat["hT"], cat["mT"], cat["hD"], cat["mD"], (h, m)


register(Variant("grid", "grid", GridSpec(),
                 "2-D Grid LSTM over time x depth: LSTM transfer along both; priority and tied weights as options",
                 "Kalchbrenner et al. 2015, sec. 2-3", None))
