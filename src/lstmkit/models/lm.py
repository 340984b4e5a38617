"""A token-level language model: embedding -> stacked recurrent layer -> linear decoder.

The layout of Zaremba et al. 2014 (arXiv:1409.2329, section 3 and their code): dropout
on the embedding output, between layers (the recurrent layer's ``dropout``) and before
the decoder; the recurrent state is carried between windows by the trainer.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .stack import stack_layer
from ..registry import get_variant


class LanguageModel(nn.Module):
    """Predicts token t+1 from tokens <= t.

    Args:
        vocab_size: V.
        cell: any registered variant (``lstmkit.variants()``).
        hidden_size: H; ``embed_size`` defaults to H.
        num_layers, dropout, proj_size, recurrent_dropout, zoneout: as the layer's.
        tie_weights: decoder weight = embedding weight (needs embed_size == output width).
        init_range: > 0 draws every parameter from U(-r, r) (Zaremba's init); 0 keeps the
            layer's own initialisation (torch's, with the forget bias).

    ``forward(x, state)`` takes x (T, B) token ids, time-major, and the layer's state (or
    None for zeros) and returns logits (T, B, V) and the final state.
    """

    def __init__(self, vocab_size: int, cell: str = "lstm", hidden_size: int = 128, num_layers: int = 1,
                 embed_size: int = 0, dropout: float = 0.0, proj_size: int = 0, recurrent_dropout: float = 0.0,
                 zoneout: float = 0.0, tie_weights: bool = False, init_range: float = 0.0, depth_gate: bool = False):
        super().__init__()
        embed_size = embed_size or hidden_size
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.drop = nn.Dropout(dropout)
        self.rnn = stack_layer(cell, embed_size, hidden_size, num_layers=num_layers, dropout=dropout,
                               proj_size=proj_size, recurrent_dropout=recurrent_dropout, zoneout=zoneout,
                               depth_gate=depth_gate)
        out_width = proj_size or hidden_size
        self.decoder = nn.Linear(out_width, vocab_size)
        self.family = get_variant(cell).family
        if tie_weights:
            if embed_size != out_width:
                raise ValueError(f"tie_weights needs embed_size == {out_width} (the layer's output width); "
                                 f"got embed_size={embed_size}")
            self.decoder.weight = self.embed.weight
        if init_range > 0:
            with torch.no_grad():
                for p in self.parameters():
                    p.uniform_(-init_range, init_range)

    def forward(self, x: Tensor, state=None):
        emb = self.drop(self.embed(x))  # (T, B, E)
        out, state = self.rnn(emb, state)  # (T, B, P or H)
        return self.decoder(self.drop(out)), state  # (T, B, V)


def detach_state(state):
    """The state with its history cut: truncated BPTT's window boundary."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return tuple(s.detach() for s in state)
