"""``lstmkit.LSTM``, ``GRU`` and ``RNN``: drop-in replacements for torch.nn's, plus every variant.

Positional arguments, forward contract and parameter names are exactly torch.nn's; the
extras are keyword-only. ``LSTM(..., variant="lstm")`` loads a torch.nn.LSTM state_dict
strictly, and ``from_torch`` / ``to_torch`` convert both ways.
"""
from __future__ import annotations

from torch import nn

from .params import lstm_spec, make_spec
from .recurrent import RecurrentBase


class _TorchConversion:
    _torch_class: type
    _torch_args: tuple = ()  # constructor arguments beyond torch's common ones

    @classmethod
    def from_torch(cls, module: nn.Module, **extras):
        """Build the equivalent lstmkit module from a torch.nn one, weights included.

        ``extras`` are lstmkit's keyword-only options (e.g. ``recurrent_dropout=0.1``).
        """
        if not isinstance(module, cls._torch_class):
            raise TypeError(f"{cls.__name__}.from_torch expects a {cls._torch_class.__module__}."
                            f"{cls._torch_class.__name__}; got {type(module).__name__}")
        first = next(module.parameters())
        kwargs = {k: getattr(module, k) for k in ("num_layers", "bias", "batch_first", "dropout",
                                                  "bidirectional", *cls._torch_args)}
        new = cls(module.input_size, module.hidden_size, **kwargs, device=first.device, dtype=first.dtype,
                  **extras)
        ours, theirs = set(new.state_dict()), set(module.state_dict())
        if ours != theirs:
            odd = sorted(ours ^ theirs)[0]
            raise ValueError(f"{cls.__name__}.from_torch: variant {new.variant!r} (spec {new.spec}"
                             f"{', depth_gate' if new.depth_gate else ''}) does not have torch.nn's parameters "
                             f"(e.g. {odd!r} is in only one of them); only torch-shaped variants convert")
        new.load_state_dict(module.state_dict(), strict=True)
        return new

    def to_torch(self) -> nn.Module:
        """The equivalent torch.nn module, weights included. Only for torch-compatible settings."""
        torch_spec = self._torch_spec()
        differences = [k for k, v in (("variant/options", self.spec != torch_spec),
                                      ("recurrent_dropout", self.recurrent_dropout > 0),
                                      ("depth_gate", self.depth_gate),
                                      ("zoneout", any(self.zoneout))) if v]
        if differences:
            raise ValueError(f"{type(self).__name__}.to_torch: torch.nn has no equivalent of "
                             f"{', '.join(differences)} (spec {self.spec}, torch's is {torch_spec})")
        first = self.weight_ih_l0
        kwargs = {k: getattr(self, k) for k in ("num_layers", "bias", "batch_first", "dropout",
                                                "bidirectional", *self._torch_args)}
        m = self._torch_class(self.input_size, self.hidden_size, **kwargs, device=first.device, dtype=first.dtype)
        m.load_state_dict(self.state_dict(), strict=True)
        return m

    def _torch_spec(self):
        """The spec torch.nn's module computes (each family's base variant has the family's name)."""
        return make_spec(self.spec.family, self.spec.family)


class LSTM(_TorchConversion, RecurrentBase):
    r"""Multi-layer LSTM of any registered LSTM-family variant; ``variant="lstm"`` is torch.nn.LSTM.

    Args (torch.nn.LSTM's): input_size, hidden_size, num_layers=1, bias=True,
        batch_first=False, dropout=0.0 (between layers), bidirectional=False,
        proj_size=0 (LSTMP: h_t = W_hr h_t, Sak et al. 2014), device, dtype.

    Keyword-only extras:
        variant: one of ``lstmkit.variants("lstm")`` (lstm, peephole, nig, nfg, nog, niaf,
            noaf, cifg, fgr); see ``lstmkit.cells.lstm`` for the equations.
        peepholes: override which gates get peepholes, a subset of ("i", "f", "o").
        cifg: couple f = 1 - i (Greff's CIFG; on ``variant="lstm"`` this is ONNX's
            ``input_forget`` without peepholes).
        layer_norm: layer normalisation, Ba et al. 2016.
        forget_bias: initial value of the forget-gate bias (bias_ih + bias_hh); default 1.0
            (Jozefowicz et al. 2015). ``None`` gives torch's exact default initialisation.
        recurrent_dropout: variational dropout on h_{t-1} (Gal & Ghahramani 2016), one mask
            per sequence and layer, training mode only.
        zoneout: zoneout rate for h and c (Krueger et al. 2016), or a pair (z_h, z_c).
        depth_gate: with num_layers >= 2, each layer >= 1 gates the memory cell of the layer
            below (same direction) into its own, C_t = d_t ⊙ C_t^(below) + f_t ⊙ C_{t-1} + i_t ⊙ C̃_t
            (Yao et al. 2015, "Depth-Gated LSTM"); on top of any variant. Extra parameters
            ``weight_xd_lK`` (H, layer input), ``weight_cd_lK``, ``weight_ld_lK``, ``bias_d_lK`` (H)
            for K >= 1; internals gain ``"d"`` (zero on layer 0). Runs on the reference loop.

    Initialisation: every weight and bias ~ U(-1/√H, 1/√H) as in torch, layer-norm gains 1
    and shifts 0, then the forget bias. Inputs and states are as in torch.nn.LSTM; see
    :meth:`forward`. For FGR the previous gate activations start at zero on each call.
    """

    _torch_class = nn.LSTM
    _torch_args = ("proj_size",)
    _state_is_tuple = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None, *, variant: str = "lstm", peepholes=None,
                 cifg: bool | None = None, layer_norm: bool | None = None, forget_bias: float | None = 1.0,
                 recurrent_dropout: float = 0.0, zoneout=0.0, depth_gate: bool = False):
        spec = lstm_spec(variant, peepholes, cifg, layer_norm)
        super().__init__(spec, variant, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device, dtype, forget_bias=forget_bias,
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout, depth_gate=depth_gate)


class GRU(_TorchConversion, RecurrentBase):
    r"""Multi-layer GRU; ``reset_after=True`` (default) is exactly torch.nn.GRU.

    Args (torch.nn.GRU's): input_size, hidden_size, num_layers=1, bias=True,
        batch_first=False, dropout=0.0, bidirectional=False, device, dtype.

    Keyword-only extras: ``variant`` (one of ``lstmkit.variants("gru")``: ``gru``, or
    Jozefowicz et al. 2015's ``mut1``, ``mut2``, ``mut3``, see ``lstmkit.cells.mut``),
    ``reset_after`` (GRU only; False: Cho et al. 2014's h̃ = tanh(W x + U(r ⊙ h))), ``layer_norm``,
    ``recurrent_dropout``, ``zoneout`` (on h). State is h_0 (L·D, B, H). ``proj_size``
    is accepted only as 0, as in torch.
    """

    _torch_class = nn.GRU

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, proj_size: int = 0, variant: str = "gru",
                 reset_after: bool | None = None, layer_norm: bool | None = None,
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0):
        if proj_size:
            raise ValueError(f"proj_size is supported only by LSTM, not GRU; got proj_size={proj_size}")
        spec = make_spec("gru", variant, reset_after=reset_after, layer_norm=layer_norm)
        super().__init__(spec, variant, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, forget_bias=None,
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout)


class RNN(_TorchConversion, RecurrentBase):
    r"""Multi-layer Elman RNN with tanh or relu; exactly torch.nn.RNN.

    Args (torch.nn.RNN's): input_size, hidden_size, num_layers=1, nonlinearity="tanh",
        bias=True, batch_first=False, dropout=0.0, bidirectional=False, device, dtype.

    Keyword-only extras: ``variant``, ``layer_norm``, ``recurrent_dropout``, ``zoneout``.
    """

    _torch_class = nn.RNN
    _torch_args = ("nonlinearity",)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None, *, proj_size: int = 0,
                 variant: str = "rnn", layer_norm: bool | None = None, recurrent_dropout: float = 0.0,
                 zoneout: float = 0.0):
        if proj_size:
            raise ValueError(f"proj_size is supported only by LSTM, not RNN; got proj_size={proj_size}")
        spec = make_spec("rnn", variant, nonlinearity=nonlinearity, layer_norm=layer_norm)
        super().__init__(spec, variant, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, forget_bias=None,
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout)
        self.nonlinearity = nonlinearity

    def _torch_spec(self):
        return make_spec("rnn", "rnn", nonlinearity=self.nonlinearity)
