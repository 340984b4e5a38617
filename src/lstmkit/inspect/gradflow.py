"""Gradient flow over time: ‖∂L/∂h_t‖ and ‖∂L/∂x_t‖ as a function of the lag T − t.

The loss L is read at the end of a sequence (the adding problem), so how much of it
reaches step t says how well the network can learn a dependency t steps back
(Hochreiter 1991; Bengio, Simard & Frasconi 1994; Hochreiter & Schmidhuber 1997,
section 3). For a tanh RNN, ∂L/∂h_t = ∂L/∂h_T · Π_{s=t+1..T} diag(1 − h_s²) W_hh, a product
of T − t Jacobians: it shrinks (vanishes) or grows (explodes) exponentially with the lag.
The LSTM's cell state c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t passes it on through f_t alone.

How it is measured: the layer's own step function runs in a Python loop (as the
reference time loop does) in float64, and a zero tensor ε_t is added to each h_t (and
c_t for LSTMs); ∂L/∂ε_t is then exactly the total derivative ∂L/∂h_t. L is the sum of
the per-sequence losses, so each sequence's gradient is its own; the norms are averaged
over the batch. ∂L/∂x_t is the gradient of the input itself.
"""
from __future__ import annotations

import copy
import math

import torch

from ..data import longterm as gen


def adding_sequences(n: int, T: int, seed: int):
    """``n`` adding-problem sequences of exactly T steps (no length jitter, so the lag is T − 1 − t).

    Returns x (T, n, 2) float64 and target (n,) float64.
    """
    x, y, _ = gen.adding_batch(gen.rng_for(seed, gen.TEST, 10_000), n, T, jitter=False)
    return torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)


def gradient_flow(net, x: torch.Tensor, target: torch.Tensor) -> dict:
    """Per-step gradient norms of a :class:`~lstmkit.models.longterm.LongTermNet` with a one-layer, one-direction layer.

    Args:
        net: the network (read-out "last"; it is copied and converted to float64, not changed).
        x: (T, B, I) inputs; target: (B,) regression targets (squared error at step T − 1).

    Returns a dict of numpy-free lists indexed by lag k = T − 1 − t (k = 0 is the last step):
    ``grad_h`` and ``grad_x`` (mean over sequences of ‖∂L_b/∂h_t‖, ‖∂L_b/∂x_t‖), ``grad_c``
    for LSTM-family cells (else None), and ``loss`` (the mean per-sequence loss).
    """
    layer = net.rnn
    if layer.num_layers != 1 or layer.bidirectional or layer.proj_size:
        raise ValueError("gradient_flow needs a single-layer, unidirectional layer without projection")
    net = copy.deepcopy(net).double().eval()
    layer = net.rnn
    spec, p = layer.spec, layer._params()[0][0]
    T, B, _ = x.shape
    x = x.detach().to(torch.float64).clone().requires_grad_(True)
    xw = spec.input_projection(x.reshape(T * B, -1), p).view(T, B, -1)  # (T, B, G·H)
    widths = spec.state_widths(layer.hidden_size, 0)
    state = tuple(x.new_zeros(B, w) for w in widths)
    lstm = spec.family == "lstm"
    eps_h = x.new_zeros(T, B, widths[0], requires_grad=True)  # ∂L/∂ε_t = ∂L/∂h_t
    eps_c = x.new_zeros(T, B, widths[1], requires_grad=True) if lstm else None
    for t in range(T):
        new, _ = spec.step(xw[t], state, p, None)
        h = new[0] + eps_h[t]
        state = (h, new[1] + eps_c[t], *new[2:]) if lstm else (h, *new[1:])
    y = net.head(state[0])[:, 0]  # (B,)
    per_seq = (y - target.to(torch.float64)) ** 2
    per_seq.sum().backward()
    flip = lambda v: v.flip(0).tolist()  # noqa: E731  (time order -> lag order)
    return {
        "grad_h": flip(eps_h.grad.norm(dim=-1).mean(1)),
        "grad_x": flip(x.grad.norm(dim=-1).mean(1)),
        "grad_c": flip(eps_c.grad.norm(dim=-1).mean(1)) if lstm else None,
        "loss": float(per_seq.detach().mean()),
    }


def decay_per_step(norms: list[float], lo: int = 1, hi: int | None = None) -> float:
    """The factor by which a norm changes per step of lag: exp of the least-squares slope of log-norm on lag.

    Below 1: vanishing; above 1: exploding. Zero norms (underflow) are left out.
    """
    pts = [(k, math.log(v)) for k, v in enumerate(norms[lo:hi], start=lo) if v > 0 and math.isfinite(v)]
    if len(pts) < 2:
        return float("nan")
    n = len(pts)
    mk = sum(k for k, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    var = sum((k - mk) ** 2 for k, _ in pts)
    slope = sum((k - mk) * (v - mv) for k, v in pts) / var
    return math.exp(slope)


def large_recurrent_weights_(net, gain: float, seed: int) -> None:
    """Set W_hh ~ N(0, gain² / H): with gain > 1 a tanh RNN is chaotic and its gradients explode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, w in net.rnn.named_parameters():
            if name.startswith("weight_hh"):
                w.copy_(torch.randn(w.shape, generator=g, dtype=w.dtype) * gain / math.sqrt(w.shape[1]))
