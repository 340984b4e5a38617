"""The torch.nn-compatible recurrent layer shared by LSTM, GRU and RNN."""
from __future__ import annotations

import dataclasses
import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from .loop import run_stack
from .params import check_probability, check_size, register_parameters, reset_parameters


class RecurrentBase(nn.Module):
    """Stacked, optionally bidirectional recurrence over a family's step function.

    Subclasses fix the family and translate torch's constructor; this class owns the
    parameters (torch's names, e.g. ``weight_ih_l0``, ``weight_hh_l1_reverse``), the
    input/state contract of torch.nn.LSTM/GRU/RNN, and the reference time loop.
    """

    _state_is_tuple = False  # LSTM takes and returns (h, c); GRU and RNN a single h

    def __init__(self, spec, variant: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None, *,
                 forget_bias: float | None = 1.0, recurrent_dropout: float = 0.0, zoneout=0.0,
                 depth_gate: bool = False):
        super().__init__()
        name = type(self).__name__
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.num_layers = check_size("num_layers", num_layers)
        self.proj_size = check_size("proj_size", proj_size, minimum=0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size={hidden_size}; got proj_size={proj_size}")
        for flag, value in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)):
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be a bool; got {type(value).__name__}")
        self.dropout = check_probability("dropout", dropout)
        if self.dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout={dropout} acts between layers only, so it has no effect "
                          "with num_layers=1", stacklevel=3)
        self.recurrent_dropout = check_probability("recurrent_dropout", recurrent_dropout)
        self.zoneout = self._zoneout_rates(spec, zoneout)
        self.spec, self.variant = spec, variant
        self.mode = spec.family.upper()
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        self.forget_bias = forget_bias
        if not isinstance(depth_gate, bool):
            raise TypeError(f"depth_gate must be a bool; got {type(depth_gate).__name__}")
        if depth_gate and (spec.family != "lstm" or self.num_layers < 2):
            raise ValueError(f"{name}: depth_gate=True gates the memory cell of the layer below into each layer "
                             f"(Yao et al. 2015), so it needs an LSTM with num_layers >= 2; got "
                             f"{spec.family.upper()} with num_layers={num_layers}")
        self.depth_gate = depth_gate
        # One spec per layer: with a depth gate, layers >= 1 carry its parameters and equations.
        self.layer_specs = ([spec] + [dataclasses.replace(spec, depth_gate=True)] * (self.num_layers - 1)
                            if depth_gate else None)

        factory = {"device": device, "dtype": dtype}
        self._base_names = []  # [layer][direction] -> parameter base names, e.g. "weight_ih"
        out_width = self.proj_size or self.hidden_size
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else out_width * self.num_directions
            lspec = self.layer_specs[layer] if depth_gate else spec
            self._base_names.append([
                list(register_parameters(self, lspec, layer_input, self.hidden_size, self.proj_size, bias,
                                         self._suffix(layer, d), **factory))
                for d in range(self.num_directions)])
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def reset_parameters(self) -> None:
        reset_parameters([g for layer in self._params() for g in layer], self.spec, self.hidden_size,
                         self.forget_bias)

    def stepper(self, batch_size: int = 1, **kwargs):
        """A :class:`lstmkit.Stepper` over this module: one time step per call, state kept (streaming)."""
        from ..engine.stream import Stepper

        return Stepper(self, batch_size, **kwargs)

    def flatten_parameters(self) -> None:
        """No-op, for code written against torch.nn.LSTM (there are no cuDNN buffers here)."""

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        return [list(g.values()) for layer in self._params() for g in layer]

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}{'_reverse' if direction else ''}"

    def _params(self) -> list[list[dict]]:
        """``[layer][direction]`` -> {base name: parameter}, looked up afresh so .to() etc. are honoured."""
        return [[{k: getattr(self, k + self._suffix(layer, d)) for k in names} for d, names in enumerate(dirs)]
                for layer, dirs in enumerate(self._base_names)]

    @staticmethod
    def _zoneout_rates(spec, zoneout) -> tuple:
        """One rate per state entry (h, c[, a]); a float applies to h and c, a pair is (z_h, z_c)."""
        n = 2 if spec.family == "lstm" else 1
        rates = tuple(zoneout) if isinstance(zoneout, (tuple, list)) else (zoneout,) * n
        if len(rates) != n:
            expected = "a number or a pair (z_h, z_c)" if n == 2 else "a number (the rate for h)"
            raise ValueError(f"zoneout must be {expected}; got {zoneout!r}")
        rates = tuple(check_probability("zoneout", z, upper_inclusive=True) for z in rates)
        return rates + (0.0,) * (len(spec.state_names) - n)

    # ---- forward -------------------------------------------------------------------------

    def forward(self, input, hx=None, *, return_internals: bool = False):
        """Run the network, with torch.nn.LSTM/GRU/RNN's contract.

        Args:
            input: (T, B, I), or (B, T, I) with ``batch_first``, or unbatched (T, I), or a
                PackedSequence.
            hx: initial state. LSTM: ``(h_0, c_0)`` with h_0 (L·D, B, P or H) and
                c_0 (L·D, B, H); GRU/RNN: h_0 (L·D, B, H). Unbatched: without the B axis.
                Zeros when None.
            return_internals: also return a dict of per-step internals, see below.

        Returns:
            ``(output, h_n)`` or, for LSTM, ``(output, (h_n, c_n))``; output is (T, B, D·P)
            (or batch-first, unbatched, or packed like the input). With
            ``return_internals=True`` a third item maps ``"i", "f", "g", "o", "c", "h"``
            (LSTM; only the gates the variant computes), ``"r", "z", "n", "h"`` (GRU) or
            ``"h"`` (RNN) to tensors of shape (L, D, T, B, width), in the input's batch
            order, (L, D, B, T, width) when ``batch_first``, without B when unbatched, and
            zero past each sequence's length.
        """
        name = type(self).__name__
        packed = isinstance(input, PackedSequence)
        if packed:
            data, batch_sizes_t, sorted_idx, unsorted_idx = input
            if data.dim() != 2:
                raise ValueError(f"{name}: packed input data must be 2-D (N, input_size); got {data.dim()}-D")
            self._check_input(data)
            batch_sizes = batch_sizes_t.tolist()
            unbatched = False
        else:
            if not isinstance(input, Tensor):
                raise TypeError(f"{name}: input must be a Tensor or PackedSequence; got {type(input).__name__}")
            if input.dim() not in (2, 3):
                raise ValueError(f"{name}: input must be 2-D (unbatched: T, input_size) or 3-D (batched); "
                                 f"got {input.dim()}-D of shape {tuple(input.shape)}")
            self._check_input(input)
            unbatched = input.dim() == 2
            x = input.unsqueeze(0 if self.batch_first else 1) if unbatched else input
            if self.batch_first:
                x = x.transpose(0, 1)
            T, B = x.shape[:2]
            if T == 0 or B == 0:
                raise ValueError(f"{name}: input has {T} time steps and batch size {B}; expected both >= 1")
            data, batch_sizes, sorted_idx, unsorted_idx = x.reshape(T * B, -1), [B] * T, None, None
        hx = self._check_state(hx, batch_sizes[0], unbatched, data)
        if sorted_idx is not None:
            hx = tuple(h.index_select(1, sorted_idx) for h in hx)

        out, finals, records = self._run(data, batch_sizes, hx, return_internals)

        if unsorted_idx is not None:
            finals = tuple(f.index_select(1, unsorted_idx) for f in finals)
        if packed:
            output = PackedSequence(out, batch_sizes_t, sorted_idx, unsorted_idx)
        else:
            output = self._unflatten(out, len(batch_sizes), batch_sizes[0], unbatched)
        if unbatched:
            finals = tuple(f.squeeze(1) for f in finals)
        state = finals if self._state_is_tuple else finals[0]
        if not return_internals:
            return output, state
        return output, state, self._internals(records, input if packed else None, batch_sizes, unbatched)

    def _run(self, data: Tensor, batch_sizes: list[int], hx: tuple, record: bool):
        """The time loop on packed data: (out (N, D·width), finals like hx, records or None).

        Architectures with their own loops (clockwork, grid) override this one method.
        """
        return run_stack(self.spec, self._params(), data, batch_sizes, hx, hidden_size=self.hidden_size,
                         proj_size=self.proj_size, dropout=self.dropout, recurrent_dropout=self.recurrent_dropout,
                         zoneout=self.zoneout, training=self.training, record=record, layer_specs=self.layer_specs)

    def _unflatten(self, flat: Tensor, T: int, B: int, unbatched: bool) -> Tensor:
        y = flat.view(T, B, -1)
        if self.batch_first:
            y = y.transpose(0, 1)
        return y.squeeze(0 if self.batch_first else 1) if unbatched else y

    def _internals(self, records, packed_input, batch_sizes, unbatched) -> dict[str, Tensor]:
        def padded(flat):  # packed (N, W) -> (T, B, W) or its batch-first / unbatched form
            if packed_input is None:
                return self._unflatten(flat, len(batch_sizes), batch_sizes[0], unbatched)
            seq = packed_input._replace(data=flat)
            return pad_packed_sequence(seq, batch_first=self.batch_first)[0]
        names = records[0][0].keys()
        return {k: torch.stack([torch.stack([padded(r[k]) for r in layer]) for layer in records]) for k in names}

    def _check_input(self, x: Tensor) -> None:
        """Feature size and dtype; the caller has checked the rank."""
        name = type(self).__name__
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input has {x.shape[-1]} features in its last dimension; "
                             f"expected input_size={self.input_size}")
        dtype = self.weight_ih_l0.dtype
        if x.dtype != dtype:
            raise TypeError(f"{name}: input dtype {x.dtype} differs from the parameters' dtype {dtype}; "
                            f"convert the input or the module with .to()")

    def _check_state(self, hx, batch: int, unbatched: bool, like: Tensor) -> tuple:
        """Validate hx and return it as a tuple of (L·D, B, width) tensors (zeros if None)."""
        name = type(self).__name__
        LD = self.num_layers * self.num_directions
        labels = ("h_0", "c_0") if self._state_is_tuple else ("h_0",)
        widths = self.spec.state_widths(self.hidden_size, self.proj_size)[: len(labels)]
        if hx is None:
            return tuple(like.new_zeros(LD, batch, w) for w in widths)
        if self._state_is_tuple:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{name}: hx must be a tuple (h_0, c_0); got {type(hx).__name__}")
            hx = tuple(hx)
        else:
            if not isinstance(hx, Tensor):
                raise TypeError(f"{name}: hx must be a Tensor h_0; got {type(hx).__name__}")
            hx = (hx,)
        out = []
        for label, h, w in zip(labels, hx, widths):
            if not isinstance(h, Tensor):
                raise TypeError(f"{name}: {label} must be a Tensor; got {type(h).__name__}")
            what = "proj_size" if (label == "h_0" and self.proj_size) else "hidden_size"
            expected = (LD, w) if unbatched else (LD, batch, w)
            if tuple(h.shape) != expected:
                layout = "(num_layers * num_directions, " + ("" if unbatched else "batch, ") + what + ")"
                raise ValueError(f"{name}: {label} has shape {tuple(h.shape)}; expected {expected} = {layout}")
            if h.dtype != like.dtype:
                raise TypeError(f"{name}: {label} has dtype {h.dtype}; expected the input's dtype {like.dtype}")
            out.append(h.unsqueeze(1) if unbatched else h)
        return tuple(out)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for k, default in (("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False),
                           ("proj_size", 0), ("recurrent_dropout", 0.0)):
            if getattr(self, k) != default:
                s += f", {k}={getattr(self, k)}"
        if self.depth_gate:
            s += ", depth_gate=True"
        if any(self.zoneout):
            s += f", zoneout={self.zoneout[:2] if self.spec.family == 'lstm' else self.zoneout[0]}"
        return s + f", variant={self.variant!r}, spec={self.spec}"
