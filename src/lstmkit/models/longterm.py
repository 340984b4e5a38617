"""The network of the long-time-lag benchmarks: a recurrent layer and a linear read-out."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import get_variant, make_layer
from ..layers.params import chrono_init


class LongTermNet(nn.Module):
    """Recurrent layer (any registered variant) -> linear read-out, at every step or at each sequence's end.

    Args:
        cell: a variant name (``lstmkit.variants()``).
        input_size, hidden_size, num_layers: the recurrent layer's sizes.
        output_size: read-out width (classes, symbols, or 1 for a regression target).
        readout: "last" reads the output after each sequence's last input (padded batches:
            the step ``lengths - 1``); "every" reads every step.
        forget_bias: initial forget-gate bias of cells with forget gates, the LSTM family and the
            grid LSTM (ignored by GRU, MUT, RNN and clockwork cells).
        chrono: if > 0, chrono initialisation with this t_max (``layers.params.chrono_init``)
            instead of ``forget_bias``, for the LSTM family (ignored by the others).
        **layer_kwargs: passed to :func:`lstmkit.make_layer` (e.g. ``nonlinearity="relu"`` for rnn).

    ``forward(x, lengths)``: x (T, B, I) time-major and padded, lengths (B,) -> (B, O) for
    "last", (T, B, O) for "every". The layer is causal, so padding after a sequence's end
    never changes what is read out for it.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, output_size: int, num_layers: int = 1,
                 readout: str = "last", forget_bias: float = 1.0, chrono: int = 0, **layer_kwargs):
        super().__init__()
        if readout not in ("last", "every"):
            raise ValueError(f"readout must be 'last' or 'every'; got {readout!r}")
        if get_variant(cell).family in ("lstm", "grid"):
            layer_kwargs["forget_bias"] = forget_bias
        self.rnn = make_layer(cell, input_size, hidden_size, num_layers=num_layers, **layer_kwargs)
        if chrono:
            chrono_init(self.rnn, chrono)
        self.head = nn.Linear(hidden_size, output_size)
        self.readout = readout

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        out, _ = self.rnn(x)  # (T, B, H)
        if self.readout == "every":
            return self.head(out)  # (T, B, O)
        if lengths is None:
            return self.head(out[-1])
        last = out[lengths.to(out.device) - 1, torch.arange(out.shape[1], device=out.device)]  # (B, H)
        return self.head(last)  # (B, O)
