"""The reference time loop: any family's step function over a whole (stacked, bidirectional) input.

Everything here works on the *packed* layout of ``torch.nn.utils.rnn.PackedSequence``:
a time-major ``(N, features)`` tensor where step t holds ``batch_sizes[t]`` rows, the
sequences sorted longest first. A padded (T, B, I) batch is the special case
``batch_sizes = [B] * T``. Because the active rows at step t are always a prefix, a
step computes only the sequences still running: no work is spent on padding.
"""
from __future__ import annotations

from itertools import accumulate

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import engine
from ..cells.lstm import depth_input


def _zone(prev: Tensor, new: Tensor, keep) -> Tensor:
    """Zoneout (Krueger et al. 2016, eq. 5): keep the previous value where ``keep`` says so.

    ``keep`` is a bool mask in training, or the zoneout rate (the expectation) in eval.
    """
    if isinstance(keep, float):
        return keep * prev + (1.0 - keep) * new
    return torch.where(keep, prev, new)


def run_direction(spec, p: dict, xw: Tensor, batch_sizes: list[int], state: tuple, *, reverse: bool = False,
                  h_mask: Tensor | None = None, zone: tuple | None = None, record: bool = False):
    """Run one layer in one direction.

    Args:
        xw: (N, G·H) input projections for every packed row.
        state: initial state tuple, each (B, width) with B = batch_sizes[0].
        h_mask: (B, width_h) recurrent-dropout mask, one per sequence, or None.
        zone: per state entry, None, a zoneout rate (eval) or an (N, width) bool mask.

    Returns:
        out (N, width_h), the final state tuple (each sequence's state after its own
        last step), and, if ``record``, a dict name -> (N, width) of gates and states.
    """
    offsets = [0, *accumulate(batch_sizes)]
    B, T = batch_sizes[0], len(batch_sizes)
    outs, recs = [None] * T, [None] * T
    for t in reversed(range(T)) if reverse else range(T):
        n, rows = batch_sizes[t], slice(offsets[t], offsets[t + 1])
        prev = tuple(s[:n] for s in state)  # the n sequences still running at step t
        new, gates = spec.step(xw[rows], prev, p, None if h_mask is None else h_mask[:n])
        if zone is not None:
            new = tuple(b if z is None else _zone(a, b, z if isinstance(z, float) else z[rows])
                        for a, b, z in zip(prev, new, zone))
        outs[t] = new[0]
        if record:
            recs[t] = {**gates, **{k: v for k, v in zip(spec.state_names, new) if k != "a"}}
        # Finished sequences keep their last state; out-of-place so autograd sees every step.
        state = new if n == B else tuple(torch.cat([a, s[n:]]) for a, s in zip(new, state))
    out = torch.cat(outs)
    if not record:
        return out, state, None
    return out, state, {k: torch.cat([r[k] for r in recs]) for k in recs[0]}


def run_stack(spec, params: list[list[dict]], x: Tensor, batch_sizes: list[int], hx: tuple, *,
              hidden_size: int, proj_size: int = 0, dropout: float = 0.0, recurrent_dropout: float = 0.0,
              zoneout: tuple = (), training: bool = False, record: bool = False, layer_specs: list | None = None):
    """Run a stacked, optionally bidirectional, recurrent network on packed input.

    Args:
        params: ``params[layer][direction]`` is a dict of parameters by base name.
        layer_specs: one spec per layer where they differ (depth-gated LSTM: layers >= 1 carry
            ``depth_gate=True`` and read the cells of the same direction in the layer below).
        x: (N, I) packed input; batch_sizes as in PackedSequence.
        hx: the torch-visible initial states, each (num_layers * D, B, width).
        zoneout: per state name in ``spec.state_names``, its zoneout rate (0 = none).

    Returns:
        out (N, D·width_h), final states shaped like ``hx``, and records
        ``[layer][direction] -> dict`` (or None).
    """
    D = len(params[0])
    widths = spec.state_widths(hidden_size, proj_size)
    B, N = batch_sizes[0], x.shape[0]
    finals = [[] for _ in hx]
    records = []
    specs = layer_specs or [spec] * len(params)
    cells_below: list = []  # per direction, the cell sequence (N, H) of the layer below (depth gate)
    for layer, directions in enumerate(params):
        lspec = specs[layer]
        # Cells of this layer are needed when the layer above is depth-gated (Yao et al. 2015).
        keep_cells = layer + 1 < len(specs) and getattr(specs[layer + 1], "depth_gate", False)
        # The one dispatch point: the compiled engine (lstmkit.engine) runs a layer-direction's whole
        # time loop, with the same parameters, whenever it covers this spec and these options.
        run = engine.direction_runner(lspec, x, record=record or keep_cells, zoneout=any(zoneout),
                                      recurrent_dropout=training and recurrent_dropout > 0) or run_direction
        project = getattr(run, "input_projection", lspec.input_projection)  # the engine's may use oneDNN
        outs, layer_records, cells = [], [], []
        for d, p in enumerate(directions):
            k = layer * D + d
            # States beyond hx (FGR's previous gates) start at zero.
            s0 = tuple(h[k] for h in hx) + tuple(x.new_zeros(B, w) for w in widths[len(hx):])
            h_mask = None
            if training and recurrent_dropout > 0:  # Gal & Ghahramani: one mask per sequence
                h_mask = F.dropout(x.new_ones(B, widths[0]), recurrent_dropout, True)
            zone = None
            if any(zoneout):
                zone = tuple((torch.rand(N, w, device=x.device) < z if training else float(z)) if z else None
                             for z, w in zip(zoneout, widths))
            xw = project(x, p)  # all time steps in one GEMM: (N, G·H)
            if getattr(lspec, "depth_gate", False):  # + the depth gate's input share, (N, 2H)
                xw = torch.cat([xw, depth_input(x, p, cells_below[d])], dim=1)
            # Under CPU autocast the input GEMMs ran in bf16; the recurrence stays in x's dtype on
            # both paths, so rounding does not compound from step to step (engine/function.py: run).
            with torch.autocast("cpu", enabled=False):
                out, state, rec = run(lspec, p, xw.to(x.dtype), batch_sizes, s0, reverse=d == 1,
                                      h_mask=h_mask, zone=zone, record=record or keep_cells)
            outs.append(out)
            if keep_cells:
                cells.append(rec["c"])
            if record and layer_specs is not None and not getattr(lspec, "depth_gate", False):
                rec["d"] = torch.zeros_like(rec["c"])  # no cell below: as if d = 0
            layer_records.append(rec)
            for f, s in zip(finals, state):
                f.append(s)
        cells_below = cells
        x = outs[0] if D == 1 else torch.cat(outs, dim=1)
        if training and dropout > 0 and layer < len(params) - 1:
            x = F.dropout(x, dropout, True)
        records.append(layer_records)
    return x, tuple(torch.stack(f) for f in finals), (records if record else None)
