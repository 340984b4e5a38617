"""Pieces shared by every family's step function."""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor


def project(x: Tensor, weight: Tensor, bias: Tensor | None, ln_weight: Tensor | None = None) -> Tensor:
    """``W x + b``, or ``LN(W x; α) + b`` with layer normalisation (Ba et al. 2016, eq. 4).

    With layer norm the whole stacked pre-activation vector is normalised, as in the
    paper's own code, and the bias is added after normalising (it plays the role of β).
    """
    if ln_weight is None:
        return F.linear(x, weight, bias)
    y = F.linear(x, weight)
    # β through layer_norm's own bias: one pass and one allocation fewer than "+ bias" (measured at
    # 6400 × 2048: 42 against 81 ms forward, 81 against 118 ms with backward).
    return F.layer_norm(y, (y.shape[-1],), ln_weight, bias)


def init_uniform(params: Iterable[tuple[str, Tensor]], hidden_size: int) -> None:
    """torch.nn's default: every weight and bias ~ U(-1/√H, 1/√H), in registration order.

    Layer-norm gains start at 1 and layer-norm shifts at 0, as in torch.nn.LayerNorm.
    Because the order matches torch.nn.LSTM/GRU/RNN, the same seed gives the same values.
    """
    k = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for name, p in params:
            if name.startswith("weight_ln"):
                p.fill_(1.0)
            elif name.startswith("bias_ln"):
                p.fill_(0.0)
            else:
                p.uniform_(-k, k)
