r"""The Clockwork RNN (Koutník, Greff, Gomez & Schmidhuber 2014, "A Clockwork RNN", ICML, sec. 3).

The hidden layer of an Elman RNN is split into g modules with clock periods T_1 ≤ ... ≤ T_g
(the paper uses the exponential series T_i = 2^{i-1}). At step t (counted from 0 at the first
step of each forward call) module i is *active* iff t mod T_i = 0; active modules compute

.. math::

    h_t^{(i)} = \tanh\big(W_I^{(i)} x_t + b^{(i)} + \textstyle\sum_{j \ge i} W_H^{(i,j)} h_{t-1}^{(j)}\big)

and inactive ones keep their value, h_t^{(i)} = h_{t-1}^{(i)}. W_H is block upper-triangular
(modules sorted fastest first): a module hears itself and the *slower* modules only, so slow
modules are not disturbed by fast ones. The output is the whole h_t.

Skipped modules cost nothing: each step multiplies only the rows of the active modules. With
periods where each divides the next (the exponential series), the active modules are always the
fastest k, a prefix of the units, and a step is one product with the first rows of
[W_I W_H]; for other periods the active rows are gathered.

Parameters are torch.nn.RNN's: ``weight_ih_lK`` (H, I), ``weight_hh_lK`` (H, H), ``bias_ih_lK``,
``bias_hh_lK`` (H). ``weight_hh``'s entries below the block diagonal are zero at initialisation
and masked out in every forward (so they get no gradient); with all periods 1 the module is
exactly ``torch.nn.RNN`` with ``weight_hh`` times :meth:`ClockworkRNN.block_mask`.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cells.common import init_uniform
from ..registry import Variant, register
from .params import check_size, make_spec
from .recurrent import RecurrentBase

MAX_DEFAULT_MODULES = 8  # periods=None: 1, 2, 4, ..., 2^(g-1) with g = min(8, hidden_size) modules


@dataclass(frozen=True)
class ClockworkSpec:
    periods: tuple | None = None  # clock period of each module, fastest first; None = 1, 2, 4, ...

    family = "clockwork"
    gates = ()
    state_names = ("h",)
    reference_only = True  # its own loop (ClockworkRNN._run); the compiled engine does not cover it

    def state_widths(self, hidden_size: int, proj_size: int) -> tuple[int, ...]:
        return (hidden_size,)

    def param_shapes(self, input_size: int, hidden_size: int, proj_size: int, bias: bool) -> dict:
        H = hidden_size
        shapes = {"weight_ih": (H, input_size), "weight_hh": (H, H)}
        if bias:
            shapes.update(bias_ih=(H,), bias_hh=(H,))
        return shapes

    def forget_bias_slice(self, hidden_size: int) -> None:
        return None


def check_periods(periods, hidden_size: int) -> tuple[int, ...]:
    """The periods as a tuple of positive ints, non-decreasing, at most one module per unit."""
    if periods is None:
        return tuple(2 ** i for i in range(min(MAX_DEFAULT_MODULES, hidden_size)))
    ok = isinstance(periods, (tuple, list)) and len(periods) > 0 and all(
        isinstance(p, numbers.Integral) and not isinstance(p, bool) and p >= 1 for p in periods)
    if not ok:
        raise ValueError(f"periods must be a non-empty sequence of positive integers (e.g. (1, 2, 4, 8)); "
                         f"got {periods!r}")
    periods = tuple(int(p) for p in periods)
    if list(periods) != sorted(periods):
        raise ValueError(f"periods must be sorted fastest first (non-decreasing), since the recurrent matrix is "
                         f"block upper-triangular in that order; got {periods}")
    if len(periods) > hidden_size:
        raise ValueError(f"{len(periods)} periods need at least as many hidden units; got hidden_size={hidden_size}")
    return periods


def module_bounds(hidden_size: int, n_modules: int) -> list[int]:
    """Unit offsets of the modules: as equal as possible, the first ones one unit larger."""
    q, r = divmod(hidden_size, n_modules)
    sizes = [q + (1 if i < r else 0) for i in range(n_modules)]
    return [sum(sizes[:i]) for i in range(n_modules + 1)]


def refuse_stepping(cell: str, what: str) -> None:
    """UsageError when ``cell`` is the clockwork RNN and ``what`` runs it one step per call.

    The torch contract carries only h between calls, so every call restarts the clock at t = 0
    and every module ticks: stepping would silently run a different network from the trained one.
    """
    from ..errors import UsageError
    from ..registry import get_variant
    if get_variant(cell).family == "clockwork":
        raise UsageError(f"{what} runs the model one step per call, and the clockwork RNN's module clocks "
                         f"restart at t = 0 on every call (only h is carried), so it is not supported for "
                         f"--cell {cell}")


class ClockworkRNN(RecurrentBase):
    """Clockwork RNN with torch.nn.RNN's forward contract (tanh units).

    Args:
        input_size, hidden_size: as torch.nn.RNN; the H units are split into ``len(periods)``
            modules of (nearly) equal size, the first ones one unit larger when H does not divide.
        periods: the modules' clock periods, sorted fastest first, e.g. ``(1, 2, 4, 8)``;
            default the exponential series 1, 2, ..., 2^(g-1) with g = min(8, hidden_size).
        num_layers, bias, batch_first, dropout (between layers), device, dtype: as torch.nn.RNN.

    ``forward(input, h_0=None)`` takes (T, B, I) (or batch-first, unbatched, or a
    PackedSequence) and h_0 (num_layers, B, H) and returns ``(output, h_n)``; the clock starts
    at t = 0 in every call (so with truncated BPTT every window starts with all modules active).
    ``return_internals=True`` adds ``{"h": (L, 1, T, B, H)}``. ``bidirectional``,
    ``proj_size``, ``recurrent_dropout`` and ``zoneout`` are accepted only at their defaults.

    Initialisation: torch's U(-1/√H, 1/√H), then the masked part of ``weight_hh`` set to 0.
    """

    def __init__(self, input_size: int, hidden_size: int, periods=None, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None, *, variant: str = "clockwork", proj_size: int = 0, recurrent_dropout: float = 0.0,
                 zoneout: float = 0.0):
        for what, value, default in (("bidirectional", bidirectional, False), ("proj_size", proj_size, 0),
                                     ("recurrent_dropout", recurrent_dropout, 0.0), ("zoneout", zoneout, 0.0)):
            if value != default:
                raise ValueError(f"ClockworkRNN does not support {what}={value!r} (only {default!r}): its "
                                 f"modules' clocks define one direction and no per-step noise")
        registered = make_spec("clockwork", variant)  # checks the variant's name
        check_size("hidden_size", hidden_size)
        periods = check_periods(registered.periods if periods is None else periods, hidden_size)
        self.periods = periods
        self._bounds = module_bounds(hidden_size, len(periods))  # before super() initialises the weights
        super().__init__(ClockworkSpec(periods=periods), variant, input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, False, 0, device, dtype, forget_bias=None)

    # ---- structure ------------------------------------------------------------------------

    def block_mask(self, dtype=None, device=None) -> Tensor:
        """(H, H) 0/1 mask of the allowed recurrent connections: row unit i hears column unit j
        iff module(j) >= module(i), i.e. j's module is at least as slow."""
        module_of = torch.repeat_interleave(torch.arange(len(self.periods)),
                                            torch.tensor([b - a for a, b in zip(self._bounds, self._bounds[1:])]))
        mask = (module_of[None, :] >= module_of[:, None])
        return mask.to(dtype=dtype or self.weight_hh_l0.dtype, device=device or self.weight_hh_l0.device)

    def active_modules(self, t: int) -> list[int]:
        """Modules that update at step t (t mod T_i = 0)."""
        return [i for i, T in enumerate(self.periods) if t % T == 0]

    def num_effective_parameters(self) -> int:
        """Parameters that can be non-zero (``weight_hh`` counted above its block diagonal only)."""
        mask = int(self.block_mask().sum().item())
        return sum(p.numel() for n, p in self.named_parameters() if not n.startswith("weight_hh")) \
            + mask * self.num_layers

    def reset_parameters(self) -> None:
        init_uniform(self.named_parameters(), self.hidden_size)
        with torch.no_grad():
            mask = self.block_mask()
            for layer in range(self.num_layers):
                getattr(self, f"weight_hh_l{layer}").mul_(mask)

    # ---- the time loop ------------------------------------------------------------------

    def _run(self, data: Tensor, batch_sizes: list[int], hx: tuple, record: bool):
        offsets = [0]
        for n in batch_sizes:
            offsets.append(offsets[-1] + n)
        mask = self.block_mask(data.dtype, data.device)
        # The active rows at each step: a prefix (slice) when the active modules are the fastest k,
        # else the gathered unit indices. The same for every layer.
        plan = []
        for t in range(len(batch_sizes)):
            act = self.active_modules(t)
            if not act:
                plan.append(None)
            elif act == list(range(len(act))):
                plan.append(self._bounds[len(act)])
            else:
                plan.append(torch.cat([torch.arange(self._bounds[i], self._bounds[i + 1]) for i in act]).to(data.device))
        x, finals, records = data, [], []
        for layer, (p,) in enumerate(self._params()):
            W = torch.cat([p["weight_ih"], p["weight_hh"] * mask], dim=1)  # (H, I + H): [W_I W_H]
            b = p["bias_ih"] + p["bias_hh"] if "bias_ih" in p else None
            out, h_n = clockwork_direction(x, W, b, batch_sizes, offsets, hx[0][layer], plan)
            finals.append(h_n)
            records.append([{"h": out}])
            x = out
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        return x, (torch.stack(finals),), (records if record else None)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", periods={self.periods}"


def clockwork_direction(x: Tensor, W: Tensor, b: Tensor | None, batch_sizes: list[int], offsets: list[int],
                        h: Tensor, plan: list) -> tuple[Tensor, Tensor]:
    """One clockwork layer over packed rows.

    x: (N, I); W: (H, I + H) = [W_I, masked W_H]; b: (H,) or None; h: (B, H) initial state;
    plan[t]: None (no module active), an int r (units [0, r) active) or a LongTensor of units.
    Returns out (N, H) and each sequence's final h (B, H).
    """
    B, outs = batch_sizes[0], []
    for t, n in enumerate(batch_sizes):
        prev = h[:n]
        act = plan[t]
        if act is None:  # nothing ticks: the state is carried
            new = prev
        else:
            xh = torch.cat([x[offsets[t]:offsets[t + 1]], prev], dim=1)  # (n, I + H)
            if isinstance(act, int):  # the fastest modules, units [0, r): only their rows are computed
                rows = act
                pre = F.linear(xh, W[:rows], None if b is None else b[:rows])
                new = torch.cat([torch.tanh(pre), prev[:, rows:]], dim=1) if rows < prev.shape[1] else torch.tanh(pre)
            else:
                pre = F.linear(xh, W.index_select(0, act), None if b is None else b.index_select(0, act))
                new = prev.index_copy(1, act, torch.tanh(pre))
        outs.append(new)
        h = new if n == B else torch.cat([new, h[n:]])  # finished sequences keep their last state
    return torch.cat(outs), h


register(Variant("clockwork", "clockwork", ClockworkSpec(),
                 "Clockwork RNN: tanh modules with periods 1, 2, 4, ...; module i updates when t mod T_i = 0, "
                 "slower modules feed faster ones", "Koutník et al. 2014, sec. 3", None))
