"""Recording what happens inside a recurrent network: gates, cell state and hidden state per step.

:func:`record` runs a model (or a bare lstmkit ``LSTM`` / ``GRU`` / ``RNN``) once on some
input, exactly as its own ``forward`` would in eval mode, and keeps, for every lstmkit
recurrent layer the forward calls, the per-step internals of
``RecurrentBase.forward(..., return_internals=True)``. Nothing about the model changes:
its training flag is restored, no parameter, buffer or ``.grad`` is touched (the run is
under ``torch.no_grad``), and the model's outputs are returned alongside the recording.

Which time loop computes the numbers: the per-step internals come from the reference loop
(the step functions in :mod:`lstmkit.cells`, the equations themselves), because the fused
engine keeps no per-step gates. The outputs of a recording therefore equal the model's
ordinary forward on the fused path up to float round-off, and exactly on the reference path
(``LSTMKIT_ENGINE=0``); ``tests/test_inspect.py`` checks both for every registered variant.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ..layers.recurrent import RecurrentBase

# What each family records, in order: the gates it computes, then its state.
QUANTITIES = {
    "lstm": ("i", "f", "g", "o", "c", "h"),  # g = C̃_t, the candidate; absent gates (NIG's i, ...) are left out
    "gru": ("r", "z", "n", "h"),  # n = h̃_t, the candidate; h is the GRU's whole state
    "rnn": ("h",),
}
# Gates whose values lie in (0, 1): what "saturated" means for them (see figures.gate_saturation).
SIGMOID_GATES = ("i", "f", "o", "r", "z")


@dataclass
class Recording:
    """Per-step internals of one lstmkit recurrent module (a stacked, maybe bidirectional layer).

    Every tensor in ``data`` has the shape **(L, D, T, B, W)**, whatever the module's
    ``batch_first`` or the input's layout (unbatched input gives B = 1, packed input is
    padded):

    * L = ``num_layers``, D = 2 if bidirectional else 1 (index 1 is the reverse direction,
      whose step t is still input position t),
    * T = time steps, B = batch,
    * W = ``hidden_size`` for gates and the cell state, and the output width for ``h``
      (``proj_size`` when the LSTM has a projection).

    Keys: ``i, f, g, o, c, h`` for the LSTM family (only the gates the variant computes:
    NIG records no ``i``, NOG no ``o``; CIFG's ``f`` is 1 − i), ``r, z, n, h`` for the GRU
    (torch.nn.GRU's gate names; the GRU has no separate cell state, ``h`` is its state), and
    ``h`` for the RNN. ``c`` and ``h`` are C_t and h_t after step t, the values the module
    would return as its final state if the input ended there. Entries past a sequence's
    length (``lengths``) are zero. Tensors are detached float copies on the CPU.

    ``output`` is what the model's forward returned during the recording (for a bare layer:
    ``(output, state)``), detached; ``calls`` counts how often the module ran during that
    forward (calls after the first are appended along T, as a decoder stepping one token
    per call produces).
    """

    name: str  # the module's name inside the model ("" for a bare layer), e.g. "rnn"
    family: str  # "lstm", "gru" or "rnn"
    variant: str
    data: dict[str, Tensor]  # quantity -> (L, D, T, B, W)
    lengths: Tensor  # (B,) valid steps of each sequence
    output: object = None
    calls: int = 1
    meta: dict = field(default_factory=dict)  # hidden_size, proj_size, num_layers, bidirectional

    # ---- shape helpers ------------------------------------------------------------------------

    @property
    def quantities(self) -> tuple[str, ...]:
        """The recorded names, in the family's order (gates first, then c, h)."""
        return tuple(self.data)

    @property
    def gates(self) -> tuple[str, ...]:
        return tuple(k for k in self.data if k not in ("c", "h"))

    @property
    def num_layers(self) -> int:
        return next(iter(self.data.values())).shape[0]

    @property
    def num_directions(self) -> int:
        return next(iter(self.data.values())).shape[1]

    @property
    def steps(self) -> int:
        return next(iter(self.data.values())).shape[2]

    @property
    def batch(self) -> int:
        return next(iter(self.data.values())).shape[3]

    def width(self, quantity: str) -> int:
        return self[quantity].shape[-1]

    def __getitem__(self, quantity: str) -> Tensor:
        if quantity not in self.data:
            raise KeyError(f"{quantity!r} was not recorded for this {self.variant} module; "
                           f"recorded: {', '.join(self.data)}")
        return self.data[quantity]

    def __contains__(self, quantity: str) -> bool:
        return quantity in self.data

    def series(self, quantity: str, layer: int = -1, direction: int = 0, batch: int = 0) -> np.ndarray:
        """(T_b, W) numpy values of one layer-direction for sequence ``batch``, cut at its length."""
        x = self[quantity][layer, direction, :, batch]  # (T, W)
        return x[: int(self.lengths[batch])].numpy()

    def mask(self) -> Tensor:
        """(T, B) bool: which steps are inside their sequence."""
        return torch.arange(self.steps).unsqueeze(1) < self.lengths.unsqueeze(0)


def find_recurrent(model: nn.Module) -> dict[str, RecurrentBase]:
    """The lstmkit recurrent modules inside ``model`` by name ("" if ``model`` is one itself)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, RecurrentBase)}


def record(model_or_layer: nn.Module, *inputs, module: str | None = None, **kwargs) -> Recording:
    """Run ``model_or_layer(*inputs, **kwargs)`` once in eval mode and record its recurrent layer.

    Args:
        model_or_layer: an lstmkit ``LSTM``/``GRU``/``RNN`` (any registered variant), or any
            ``nn.Module`` whose forward calls one, e.g. ``lstmkit.models.LanguageModel``
            (inputs: token ids (T, B)), or a forecaster or classifier built on a layer.
        inputs, kwargs: exactly what the module's forward takes; for a layer the input
            (T, B, I), (B, T, I) with ``batch_first``, (T, I) unbatched, or a PackedSequence,
            and optionally ``hx``.
        module: which recurrent submodule to record, by name (``"rnn"`` in a
            LanguageModel); needed only when the model holds several.

    Returns:
        a :class:`Recording` (see there for the (L, D, T, B, W) layout of every tensor).

    The model's training flag is restored afterwards, nothing is computed with gradients,
    and no parameter or buffer changes. Eval mode means what it means for the forward:
    no dropout, zoneout by its expectation. Use :func:`record_all` for every layer at once.
    """
    found = find_recurrent(model_or_layer)
    if not found:
        raise TypeError(f"record needs an lstmkit LSTM, GRU or RNN, or a model that contains one; "
                        f"{type(model_or_layer).__name__} contains none")
    if module is None and len(found) > 1:
        raise ValueError(f"{type(model_or_layer).__name__} holds {len(found)} recurrent modules; "
                         f"pick one with module=..., one of: {', '.join(map(repr, found))}")
    if module is not None and module not in found:
        raise ValueError(f"no recurrent module named {module!r}; expected one of: {', '.join(map(repr, found))}")
    name = module if module is not None else next(iter(found))
    recs = record_all(model_or_layer, *inputs, only=(name,), **kwargs)
    if name not in recs:
        raise ValueError(f"the forward of {type(model_or_layer).__name__} never called its recurrent module {name!r}")
    return recs[name]


def record_all(model: nn.Module, *inputs, only: tuple[str, ...] | None = None, **kwargs) -> dict[str, Recording]:
    """Like :func:`record`, for every lstmkit recurrent module the forward calls: name -> Recording."""
    targets = {n: m for n, m in find_recurrent(model).items() if only is None or n in only}
    captured: dict[str, list] = {n: [] for n in targets}
    modes = [(m, m.training) for m in model.modules()]
    for n, m in targets.items():
        m.forward = _recording_forward(m, captured[n])  # an instance attribute shadows the class method
    try:
        model.eval()
        with torch.no_grad():
            output = model(*inputs, **kwargs)
    finally:
        for m in targets.values():
            del m.forward
        for m, training in modes:
            m.training = training
    output = _detach(output)
    return {n: _merge(n, targets[n], calls, output) for n, calls in captured.items() if calls}


def _recording_forward(layer: RecurrentBase, store: list):
    """The layer's forward, asking for internals and keeping them, returning what it normally returns."""
    original = type(layer).forward

    def forward(input, hx=None, *, return_internals: bool = False):
        out, state, internals = original(layer, input, hx, return_internals=True)
        store.append((internals, _lengths(input, layer)))
        return (out, state, internals) if return_internals else (out, state)

    return forward


def _lengths(input, layer) -> Tensor:
    """(B,) sequence lengths of a layer's input, in the input's batch order."""
    if isinstance(input, PackedSequence):
        bs = input.batch_sizes  # (T,) active sequences per step, sorted longest first
        lengths = (bs.unsqueeze(0) > torch.arange(int(bs[0])).unsqueeze(1)).sum(1)
        return lengths if input.unsorted_indices is None else lengths[input.unsorted_indices]
    if input.dim() == 2:
        return torch.tensor([input.shape[0]])
    T, B = (input.shape[1], input.shape[0]) if layer.batch_first else (input.shape[0], input.shape[1])
    return torch.full((B,), T)


def _merge(name: str, layer: RecurrentBase, calls: list, output) -> Recording:
    """One Recording from a module's calls: canonical (L, D, T, B, W) layout, calls joined along T."""
    parts, lengths = [], None
    for internals, lens in calls:
        canon = {}
        for k, v in internals.items():
            v = v.detach().float().cpu()
            if v.dim() == 4:  # unbatched: (L, D, T, W)
                v = v.unsqueeze(3)
            elif layer.batch_first:
                v = v.transpose(2, 3)  # (L, D, B, T, W) -> (L, D, T, B, W)
            canon[k] = v.contiguous()
        parts.append(canon)
        lengths = lens if lengths is None else lengths + lens
    order = [k for k in QUANTITIES[layer.spec.family] if k in parts[0]]
    data = {k: parts[0][k] if len(parts) == 1 else torch.cat([p[k] for p in parts], dim=2) for k in order}
    meta = {"hidden_size": layer.hidden_size, "proj_size": layer.proj_size, "num_layers": layer.num_layers,
            "bidirectional": layer.bidirectional}
    return Recording(name, layer.spec.family, layer.variant, data, lengths.clone(), output, len(calls), meta)


def _detach(x):
    if isinstance(x, Tensor):
        return x.detach()
    if isinstance(x, PackedSequence):
        return x._replace(data=x.data.detach())
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # a namedtuple
        return type(x)(*(_detach(v) for v in x))
    if isinstance(x, (tuple, list)):
        return type(x)(_detach(v) for v in x)
    if isinstance(x, dict):
        return {k: _detach(v) for k, v in x.items()}
    return x
