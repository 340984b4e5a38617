"""Streaming: a stateful single-step runner for real-time use (keyboard completion, sensor streams).

>>> lstm = lstmkit.LSTM(32, 256, num_layers=2).eval()
>>> stepper = lstmkit.Stepper(lstm)        # or lstm.stepper()
>>> y = stepper.step(x_t)                  # x_t (32,) or (B, 32) -> y_t (256,) or (B, 256)
>>> stepper.reset()                        # zero state (or reset(hx) with the module's hx format)

The stepper packs the weights once, when it is made, and keeps (h, c) of every layer between
calls; each ``step`` runs one time step of the whole stack in one compiled call (the engine's
``Stream``: matrix-vector products on the packed weights into preallocated buffers, the
variant's pointwise pass, no autograd). It computes exactly what the module's forward computes
in eval mode on the same sequence, one step at a time: dropout between layers and recurrent
dropout are off, zoneout uses its expectation.

Where the engine does not cover the module (``fgr``, MUT1-3, depth gates, layer norm, zoneout, other dtypes or
devices, or no compiler) the stepper runs the reference loop for one step per call instead:
same results, slower. Bidirectional modules cannot be streamed (the backward direction needs
the future) and are refused. After changing the module's parameters make a new stepper (or call
:meth:`Stepper.repack`): the packed copy does not follow them.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import function

# Per-layer weight bytes from which a step uses two threads by default. One step at H=256 is about
# 15 µs of work, and threads meet once per layer: on a busy machine a descheduled thread turns
# each meeting into a scheduler time slice (a 20-100x slowdown measured at load 3 on 2 cores), so
# by default only very large layers split; pass threads=2 on a quiet machine.
TWO_THREADS_FROM_BYTES = 1 << 24


class Stepper:
    """One time step at a time through a unidirectional lstmkit ``LSTM``, ``GRU`` or ``RNN``.

    Args:
        module: the recurrent module (its parameters are copied and packed now).
        batch_size: how many independent streams advance together (default 1).
        threads: threads per step; default: 1 for small layers, else ``torch.get_num_threads()``.
        engine: None (use the compiled engine when it covers the module), True (require it),
            False (always the reference loop).
    """

    def __init__(self, module, batch_size: int = 1, *, threads: int | None = None, engine: bool | None = None):
        from .. import engine as engine_mod

        if getattr(module, "bidirectional", False):
            raise ValueError("Stepper: a bidirectional module cannot be streamed one step at a time (its reverse "
                             "direction needs the whole future sequence); use a unidirectional module")
        if getattr(getattr(module, "spec", None), "family", None) in ("clockwork", "grid"):
            raise TypeError(f"Stepper streams lstmkit LSTM, GRU and RNN modules; {type(module).__name__} runs "
                            "its own loop and has no one-step path yet")
        if not hasattr(module, "_params") or not hasattr(module, "num_layers"):
            raise TypeError(f"Stepper needs an lstmkit LSTM, GRU or RNN; got {type(module).__name__}")
        if batch_size < 1:
            raise ValueError(f"Stepper: batch_size must be >= 1; got {batch_size}")
        self.module, self.batch_size, self.spec = module, int(batch_size), module.spec
        first = next(module.parameters())
        covered = (function.supports_streaming(self.spec) and not any(module.zoneout) and not getattr(module, "depth_gate", False) and first.device.type == "cpu"
                   and first.dtype in (torch.float32, torch.float64))
        if engine is False or engine_mod.mode() == "off" or not covered:
            ext = None
        else:
            ext = engine_mod.load()
        if engine and ext is None:
            raise RuntimeError("Stepper(engine=True): the compiled engine does not cover this module "
                               f"(spec {self.spec}, zoneout {module.zoneout}, {first.dtype} on {first.device}) "
                               "or is unavailable")
        self._ext, self._threads = ext, threads
        self._dtype, self._device = first.dtype, first.device
        self.repack()

    @property
    def uses_engine(self) -> bool:
        """Whether steps run in the compiled engine (else the reference loop)."""
        return self._ext is not None

    def repack(self) -> None:
        """Copy and pack the module's current parameters; the state is reset to zeros."""
        m = self.module
        if self._ext is not None:
            names = ("weight_ih", "bias_ih", "weight_hh", "bias_hh")
            if self.spec.family == "lstm":
                names += ("weight_ci", "weight_cf", "weight_co", "weight_hr")
            with torch.no_grad():
                layers = [[None if p.get(n) is None else p[n].detach().contiguous() for n in names]
                          for (p,) in m._params()]
            threads = self._threads
            if threads is None:
                big = max(sum(t.numel() * t.element_size() for t in ps if t is not None) for ps in layers)
                threads = torch.get_num_threads() if big >= TWO_THREADS_FROM_BYTES else 1
            self._stream = self._ext.Stream(self.spec.family, function.flags(self.spec), m.hidden_size, layers,
                                            self.batch_size, int(threads))
            # Steps go straight to C++ (which checks shape and dtype): no Python frame per step.
            self.step = self._stream.step
        self.reset()

    def reset(self, hx=None) -> None:
        """Start new sequences: zero state, or ``hx`` in the module's format (LSTM ``(h_0, c_0)``,
        each (num_layers, B, width); GRU/RNN ``h_0``; or without the B axis when batch_size is 1)."""
        m = self.module
        widths = self.spec.state_widths(m.hidden_size, m.proj_size)
        n_given = 2 if self.spec.family == "lstm" else 1
        if hx is None:
            states = [torch.zeros(m.num_layers, self.batch_size, w, dtype=self._dtype, device=self._device)
                      for w in widths[:n_given]]
        else:
            states = list(hx) if isinstance(hx, (tuple, list)) else [hx]
            if len(states) != n_given:
                raise ValueError(f"Stepper.reset: expected {n_given} state tensor(s); got {len(states)}")
            states = [s.unsqueeze(1) if s.dim() == 2 else s for s in states]
            for s, w in zip(states, widths):
                if tuple(s.shape) != (m.num_layers, self.batch_size, w):
                    raise ValueError(f"Stepper.reset: state of shape {tuple(s.shape)}; expected "
                                     f"{(m.num_layers, self.batch_size, w)}")
            states = [s.detach().to(self._dtype) for s in states]
        if self._ext is not None:
            self._stream.set_state([s.contiguous() for s in states])
        else:  # per layer, the full state tuple (FGR's previous gates start at zero, as in forward)
            B = self.batch_size
            self._state = [tuple(s[k] for s in states) + tuple(states[0].new_zeros(B, w) for w in widths[n_given:])
                           for k in range(m.num_layers)]

    @property
    def state(self):
        """The current state in the module's format: LSTM ``(h, c)``, GRU/RNN ``h``; each (L, B, width)."""
        if self._ext is not None:
            s = [t.clone() for t in self._stream.state()]
        else:
            s = [torch.stack([layer[k] for layer in self._state]) for k in range(len(self._state[0]))]
            s = s[:2 if self.spec.family == "lstm" else 1]
        return tuple(s) if self.spec.family == "lstm" else s[0]

    @torch.no_grad()
    def step(self, x: Tensor) -> Tensor:
        """Advance every stream by one step: x (input_size,) or (batch_size, input_size) -> the top
        layer's h_t, (P or H,) or (batch_size, P or H)."""
        single = x.dim() == 1
        xb = x.unsqueeze(0) if single else x
        if xb.dim() != 2 or xb.shape[0] != self.batch_size or xb.shape[1] != self.module.input_size:
            raise ValueError(f"Stepper.step: x of shape {tuple(x.shape)}; expected ({self.batch_size}, "
                             f"{self.module.input_size})" + (" or (input_size,)" if self.batch_size == 1 else ""))
        if single and self.batch_size != 1:
            raise ValueError("Stepper.step: a 1-D x needs batch_size=1")
        if xb.dtype != self._dtype:
            raise TypeError(f"Stepper.step: x is {xb.dtype}; the module's parameters are {self._dtype}")
        if self._ext is not None:
            y = self._stream.step(xb)
        else:
            y = self._reference_step(xb)
        return y[0] if single else y

    def _reference_step(self, x: Tensor) -> Tensor:
        """The reference step function layer by layer, with eval-mode zoneout (the expectation)."""
        from ..cells.lstm import depth_input
        from ..layers.loop import _zone

        specs = getattr(self.module, "layer_specs", None) or [self.spec] * self.module.num_layers
        for k, (p,) in enumerate(self.module._params()):
            prev = self._state[k]
            xw = specs[k].input_projection(x, p)
            if getattr(specs[k], "depth_gate", False):  # Yao et al.: the cell of the layer below, this step
                xw = torch.cat([xw, depth_input(x, p, self._state[k - 1][1])], dim=1)
            new, _ = specs[k].step(xw, prev, p)
            new = tuple(b if not z else _zone(a, b, float(z)) for a, b, z in zip(prev, new, self.module.zoneout))
            self._state[k] = new
            x = new[0]
        return x
