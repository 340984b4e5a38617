"""A polyphonic piano-roll model: 88 keys in -> recurrent layer -> 88 independent Bernoulli logits.

The set-up of Boulanger-Lewandowski et al. 2012 (arXiv:1206.6392) as used by Chung et
al. 2014 (arXiv:1412.3555, section 4): the input at step t is frame x_t (88 binary keys),
the output is the logit of each key being on in frame x_{t+1}, and the keys are
independent given the state:

.. math::

    p(x_{t+1} \\mid x_{\\le t}) = \\prod_{k=1}^{88} \\sigma(z_{t,k})^{x_{t+1,k}}
                                 \\bigl(1 - \\sigma(z_{t,k})\\bigr)^{1 - x_{t+1,k}},
    \\qquad z_t = W_{hz} h_t + b_z .
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .stack import stack_layer
from ..registry import get_variant

KEYS = 88


class PianoRollModel(nn.Module):
    """Predicts frame t+1's keys from frames <= t.

    Args:
        cell: any registered variant (``lstmkit.variants()``).
        hidden_size, num_layers, dropout, proj_size, recurrent_dropout, zoneout: as the layer's;
            ``dropout`` also acts before the output layer.
        keys: frame width (88).

    ``forward(x, lengths=None, state=None)`` takes x (T, B, keys) float frames, time-major,
    optionally the length of each sequence (B,) for a padded batch, and the layer's state
    (None = zeros); it returns logits (T, B, keys), zero past each sequence's length, and
    the final state.
    """

    def __init__(self, cell: str = "lstm", hidden_size: int = 36, num_layers: int = 1, dropout: float = 0.0,
                 proj_size: int = 0, recurrent_dropout: float = 0.0, zoneout: float = 0.0, keys: int = KEYS,
                 depth_gate: bool = False):
        super().__init__()
        self.rnn = stack_layer(cell, keys, hidden_size, num_layers=num_layers, dropout=dropout,
                               proj_size=proj_size, recurrent_dropout=recurrent_dropout, zoneout=zoneout,
                               depth_gate=depth_gate)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(proj_size or hidden_size, keys)
        self.family = get_variant(cell).family

    def forward(self, x: Tensor, lengths: Tensor | None = None, state=None):
        if lengths is None:
            h, state = self.rnn(x, state)  # (T, B, H)
        else:  # padded batch: the packed loop computes only the steps each sequence has
            packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
            h, state = self.rnn(packed, state)
            h, _ = pad_packed_sequence(h, total_length=x.shape[0])  # (T, B, H), zeros past each length
        return self.out(self.drop(h)), state  # (T, B, keys)


def frame_nll(logits: Tensor, target: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, int]:
    """(summed NLL in nats, number of frames) of ``target`` (T, B, K) under Bernoulli ``logits``.

    The NLL of one frame is the sum over its K keys of the binary cross-entropy
    -[x log sigma(z) + (1 - x) log(1 - sigma(z))]; frames past a sequence's length are masked
    out. Dividing the sum by the count gives the NLL per time step (Chung et al. 2014).
    """
    per_frame = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)  # (T, B)
    if lengths is None:
        return per_frame.sum(), per_frame.numel()
    T = per_frame.shape[0]
    mask = torch.arange(T, device=logits.device).unsqueeze(1) < lengths.to(logits.device).unsqueeze(0)  # (T, B)
    return (per_frame * mask).sum(), int(lengths.sum())
