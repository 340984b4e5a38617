"""Heads for whole sequences: a multi-step forecaster and a sequence classifier.

Both read a window or sequence with any registered cell variant (``lstmkit.make_layer``),
stacked and optionally bidirectional, and map a fixed-size summary of it to the output:

* :class:`Forecaster`: the last state -> H future values at once (*direct* multi-step).
* :class:`SequenceClassifier`: the last state, or the mean / max over time of the top
  layer's outputs -> class logits; variable lengths go in as a PackedSequence.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from .stack import stack_layer
from ..registry import get_variant

READOUTS = ("last", "mean", "max")


def _layer(cell, input_size, hidden_size, num_layers, bidirectional, dropout, proj_size, recurrent_dropout, zoneout):
    return stack_layer(cell, input_size, hidden_size, num_layers=num_layers, dropout=dropout, proj_size=proj_size,
                       recurrent_dropout=recurrent_dropout, zoneout=zoneout, bidirectional=bidirectional,
                       batch_first=True)


def last_state(state, directions: int) -> Tensor:
    """The top layer's final h, both directions concatenated: (B, D*P).

    h_n is (L*D, B, P), layer-major; with packed input each sequence's h_n is taken at its
    own last step (and, backwards, at its first), as in torch.nn.
    """
    h_n = state[0] if isinstance(state, tuple) else state
    return torch.cat(list(h_n[-directions:]), dim=-1)


class Forecaster(nn.Module):
    """Direct multi-step forecasts: a window (B, W, F) -> the next H target values (B, H).

    The target is input column 0. With ``residual`` the model sees and predicts the target
    relative to the window's last value y_t: its input column 0 is y_{t-k} - y_t and the head
    gives the changes d_h in y_{t+h} = y_t + d_h. An untrained head is then the naive
    forecast, and a level never seen in training (a trend) looks like any other level.
    All values are on the normalised scale (the task un-normalises).
    """

    def __init__(self, n_features: int, horizon: int, cell: str = "lstm", hidden_size: int = 32,
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0, proj_size: int = 0,
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0, residual: bool = True):
        super().__init__()
        self.rnn = _layer(cell, n_features, hidden_size, num_layers, bidirectional, dropout, proj_size,
                          recurrent_dropout, zoneout)
        self.directions = 2 if bidirectional else 1
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.directions * (proj_size or hidden_size), horizon)
        self.residual = residual
        self.family = get_variant(cell).family

    def forward(self, x: Tensor) -> Tensor:
        last = x[:, -1:, 0]  # (B, 1): y_t, the window's last target value
        if self.residual:
            x = torch.cat([x[:, :, :1] - last[:, :, None], x[:, :, 1:]], dim=2)  # (B, W, F)
        _, state = self.rnn(x)
        out = self.head(self.drop(last_state(state, self.directions)))  # (B, H)
        return out + last if self.residual else out


class SequenceClassifier(nn.Module):
    """Variable-length sequences (a PackedSequence of (T_i, F)) -> class logits (B, C).

    ``readout``: "last" (the final state; both directions' when bidirectional), "mean" or
    "max" over each sequence's own steps of the top layer's output. ``class_weights``
    (C,), or None: the cross-entropy weights the task's loss reads from the model.
    """

    def __init__(self, n_features: int, n_classes: int, cell: str = "lstm", hidden_size: int = 64,
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0, proj_size: int = 0,
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0, readout: str = "last",
                 class_weights=None):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}; got {readout!r}")
        self.rnn = _layer(cell, n_features, hidden_size, num_layers, bidirectional, dropout, proj_size,
                          recurrent_dropout, zoneout)
        self.directions = 2 if bidirectional else 1
        self.readout = readout
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.directions * (proj_size or hidden_size), n_classes)
        # the loss's per-class weights travel with the model (not in its state_dict: the task state holds them)
        self.register_buffer("class_weights", None if class_weights is None else
                             torch.tensor(class_weights, dtype=torch.float32), persistent=False)

    def forward(self, x: PackedSequence) -> Tensor:
        out, state = self.rnn(x)
        if self.readout == "last":
            z = last_state(state, self.directions)  # (B, D*P)
        else:
            padded, lengths = pad_packed_sequence(out, batch_first=True)  # (B, T, D*P), input order
            mask = (torch.arange(padded.shape[1])[None, :] < lengths[:, None]).to(padded.device)  # (B, T)
            if self.readout == "mean":
                z = (padded * mask[..., None]).sum(1) / lengths.to(padded)[:, None]
            else:
                z = padded.masked_fill(~mask[..., None], float("-inf")).amax(1)
        return self.head(self.drop(z))
