"""``lstmkit.LSTMCell``, ``GRUCell`` and ``RNNCell``: one step at a time, like torch.nn's cells.

Parameters are named as in torch (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``),
plus the variant's own (``weight_ci``, ``weight_hr``, ...), so a cell and a one-layer
``lstmkit.LSTM`` share weights by stripping the ``_l0`` suffix.
"""
from __future__ import annotations

from torch import Tensor, nn

from .params import check_size, lstm_spec, make_spec, register_parameters, reset_parameters


class _CellBase(nn.Module):
    _state_is_tuple = False

    def __init__(self, spec, variant: str, input_size: int, hidden_size: int, bias: bool, proj_size: int,
                 forget_bias: float | None, device, dtype):
        super().__init__()
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.proj_size = check_size("proj_size", proj_size, minimum=0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size={hidden_size}; got proj_size={proj_size}")
        self.bias, self.spec, self.variant, self.forget_bias = bias, spec, variant, forget_bias
        self._base_names = list(register_parameters(self, spec, input_size, hidden_size, proj_size, bias,
                                                    device=device, dtype=dtype))
        self.reset_parameters()

    def _params(self) -> dict:
        return {k: getattr(self, k) for k in self._base_names}

    def reset_parameters(self) -> None:
        reset_parameters([self._params()], self.spec, self.hidden_size, self.forget_bias)

    def forward(self, input: Tensor, hx=None):
        """One step. input: (B, input_size) or unbatched (input_size,).

        hx: LSTM ``(h, c)`` with h (B, P or H), c (B, H); for FGR optionally a third entry,
        the previous gate activations (B, S·H). GRU/RNN: h (B, H). Zeros when None.
        Returns the new state in the same form (FGR's LSTM cell returns (h, c, gates)).
        """
        name = type(self).__name__
        if not isinstance(input, Tensor) or input.dim() not in (1, 2):
            got = f"{input.dim()}-D" if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(f"{name}: input must be 1-D (input_size,) or 2-D (batch, input_size); got {got}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input has {input.shape[-1]} features; expected input_size={self.input_size}")
        if input.dtype != self.weight_ih.dtype:
            raise TypeError(f"{name}: input dtype {input.dtype} differs from the parameters' dtype "
                            f"{self.weight_ih.dtype}; convert the input or the module with .to()")
        unbatched = input.dim() == 1
        x = input.unsqueeze(0) if unbatched else input
        widths = self.spec.state_widths(self.hidden_size, self.proj_size)
        state = self._state_tuple(hx, x, widths, unbatched)
        p = self._params()
        new, _ = self.spec.step(self.spec.input_projection(x, p), state, p)
        if unbatched:
            new = tuple(s.squeeze(0) for s in new)
        return new if self._state_is_tuple else new[0]

    def _state_tuple(self, hx, x: Tensor, widths, unbatched: bool) -> tuple:
        name, B = type(self).__name__, x.shape[0]
        if hx is None:
            return tuple(x.new_zeros(B, w) for w in widths)
        hx = tuple(hx) if self._state_is_tuple else (hx,)
        if len(hx) not in (2, len(widths)) if self._state_is_tuple else len(hx) != 1:
            raise ValueError(f"{name}: hx must have {' or '.join(map(str, sorted({2, len(widths)})))} entries; "
                             f"got {len(hx)}")
        out = []
        for k, (h, w) in enumerate(zip(hx, widths)):
            expected = (w,) if unbatched else (B, w)
            if isinstance(h, Tensor) and h.dtype != x.dtype:
                raise TypeError(f"{name}: hx[{k}] has dtype {h.dtype}; expected the input's dtype {x.dtype}")
            if not isinstance(h, Tensor) or tuple(h.shape) != expected:
                got = tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__
                raise ValueError(f"{name}: hx[{k}] ({self.spec.state_names[k]}) has shape {got}; expected {expected}")
            out.append(h.unsqueeze(0) if unbatched else h)
        return tuple(out) + tuple(x.new_zeros(B, w) for w in widths[len(out):])

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}, variant={self.variant!r}, spec={self.spec}"


class LSTMCell(_CellBase):
    """One LSTM-family step; ``variant="lstm"`` is exactly torch.nn.LSTMCell.

    Same keyword-only options as ``lstmkit.LSTM`` except the sequence-level ones
    (recurrent_dropout, zoneout); ``proj_size`` is allowed as a keyword.
    """

    _state_is_tuple = True

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None, *,
                 variant: str = "lstm", peepholes=None, cifg: bool | None = None, layer_norm: bool | None = None,
                 forget_bias: float | None = 1.0, proj_size: int = 0):
        spec = lstm_spec(variant, peepholes, cifg, layer_norm)
        super().__init__(spec, variant, input_size, hidden_size, bias, proj_size, forget_bias, device, dtype)


class GRUCell(_CellBase):
    """One GRU step; ``reset_after=True`` (default) is exactly torch.nn.GRUCell."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None, *,
                 variant: str = "gru", reset_after: bool | None = None, layer_norm: bool | None = None):
        spec = make_spec("gru", variant, reset_after=reset_after, layer_norm=layer_norm)
        super().__init__(spec, variant, input_size, hidden_size, bias, 0, None, device, dtype)


class RNNCell(_CellBase):
    """One Elman step with tanh or relu; exactly torch.nn.RNNCell."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None, *, variant: str = "rnn", layer_norm: bool | None = None):
        spec = make_spec("rnn", variant, nonlinearity=nonlinearity, layer_norm=layer_norm)
        super().__init__(spec, variant, input_size, hidden_size, bias, 0, None, device, dtype)
        self.nonlinearity = nonlinearity
