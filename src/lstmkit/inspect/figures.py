"""PNG figures of a :class:`~lstmkit.inspect.record.Recording` (matplotlib, imported lazily).

* :func:`gate_saturation`: for each sigmoid gate, the fraction of steps each cell spends
  left-saturated (< 0.1) against right-saturated (> 0.9), one dot per cell, coloured by
  layer: Karpathy et al. 2015, fig. 3.
* :func:`cell_traces`: chosen cells' values (c by default) over a text, one panel each,
  newlines marked, so a line-length or quote cell shows its shape.
* :func:`series_traces`: an input series (a forecasting or classification input, any
  (T,) or (T, F) array) on top, and below it the chosen cells' gates and states over the
  same steps.

None of them depends on the task: each takes a recording plus whatever input it saw, so
they work for any model :func:`~lstmkit.inspect.record.record` can record, e.g.::

    rec = lstmkit.inspect.record(forecaster, x)              # x: the model's own input
    series_traces(rec, x[:, 0, :], "traces.png", batch=0)    # its first sequence, (T, F)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .record import SIGMOID_GATES
from ..plots import pyplot, save_figure

LAYER_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _pyplot():
    return pyplot("the inspect figures")


def _save(fig, path) -> Path:
    return save_figure(fig, path, dpi=None)


def saturation(recording, *, low: float = 0.1, high: float = 0.9) -> dict[str, np.ndarray]:
    """Per sigmoid gate, (L, D, W, 2): the fraction of valid steps (over every sequence) with the
    gate below ``low`` and above ``high``."""
    valid = recording.mask().float()  # (T, B)
    n = valid.sum()
    out = {}
    for g in recording.gates:
        if g not in SIGMOID_GATES:
            continue
        x = recording[g]  # (L, D, T, B, W)
        w = valid[None, None, :, :, None]
        left = ((x < low).float() * w).sum((2, 3)) / n  # (L, D, W)
        right = ((x > high).float() * w).sum((2, 3)) / n
        out[g] = np.stack([left.numpy(), right.numpy()], axis=-1)
    return out


def gate_saturation(recording, path, *, low: float = 0.1, high: float = 0.9, title: str | None = None) -> Path:
    """Karpathy et al. 2015, fig. 3: one panel per sigmoid gate, x = fraction of steps below
    ``low``, y = fraction above ``high``, one dot per cell and direction, colour = layer."""
    fractions = saturation(recording, low=low, high=high)
    if not fractions:
        raise ValueError(f"a {recording.variant} recording has no sigmoid gates to plot")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(fractions), figsize=(3.2 * len(fractions), 3.4), dpi=100, squeeze=False)
    for ax, (g, fr) in zip(axes[0], fractions.items()):
        for layer in range(fr.shape[0]):
            pts = fr[layer].reshape(-1, 2)
            ax.scatter(pts[:, 0], pts[:, 1], s=9, alpha=0.6, color=LAYER_COLOURS[layer % len(LAYER_COLOURS)],
                       label=f"layer {layer + 1}", linewidths=0)
        ax.plot([0, 1], [1, 0], color="#bbb", lw=0.8)
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel=f"fraction < {low}", title=f"{g} gate")
        ax.set_aspect("equal")
    axes[0][0].set_ylabel(f"fraction > {high}")
    axes[0][-1].legend(loc="upper right", fontsize=8, frameon=False)
    fig.suptitle(title or f"gate saturation ({recording.variant})", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _cell_refs(cells, quantity: str, layer: int) -> list[tuple[str, int, int, int]]:
    """Cells as (quantity, layer, direction, cell): ints, (layer, cell), (quantity, layer, cell) or CellMatch."""
    refs = []
    for c in cells:
        if hasattr(c, "quantity"):  # a CellMatch from search_cells
            refs.append((c.quantity, c.layer, c.direction, c.cell))
        elif isinstance(c, (tuple, list)):
            refs.append((c[0], c[1], 0, c[2]) if len(c) == 3 else (quantity, c[0], 0, c[1]))
        else:
            refs.append((quantity, layer, 0, int(c)))
    return refs


def cell_traces(recording, cells, path, *, quantity: str = "c", layer: int = -1, text=None, batch: int = 0,
                labels=None, title: str | None = None) -> Path:
    """One panel per cell: its value over the steps of sequence ``batch``.

    ``cells``: ints (cells of ``quantity`` in ``layer``), (layer, cell) pairs, (quantity,
    layer, cell) triples, or matches from ``search_cells``. ``text``: the tokens of the
    recorded text; short texts get them as tick labels, long ones a grey line at every
    newline. ``labels``: one extra caption per cell (e.g. the feature it tracks).
    """
    refs = _cell_refs(cells, quantity, layer)
    if not refs:
        raise ValueError("cell_traces needs at least one cell")
    T = int(recording.lengths[batch])
    plt = _pyplot()
    fig, axes = plt.subplots(len(refs), 1, figsize=(10, 1.2 + 1.0 * len(refs)), dpi=100, sharex=True, squeeze=False)
    for k, (q, lay, d, c) in enumerate(refs):
        ax = axes[k][0]
        y = recording[q][lay, d, :T, batch, c].numpy()
        ax.plot(np.arange(T), y, lw=0.9, color=LAYER_COLOURS[k % len(LAYER_COLOURS)])
        ax.axhline(0, color="#ddd", lw=0.6, zorder=0)
        lay_n = lay if lay >= 0 else recording.num_layers + lay
        caption = f"{q}  layer {lay_n}{' reverse' if d else ''}  cell {c}"
        if labels is not None:
            caption += f"   {labels[k]}"
        ax.set_title(caption, fontsize=8, loc="left", pad=2)
        ax.tick_params(labelsize=7)
        if text is not None:
            for t, tok in enumerate(text[:T]):
                if tok == "\n" and T > 120:
                    ax.axvline(t, color="#ccc", lw=0.5, zorder=0)
    ax = axes[-1][0]
    if text is not None and T <= 120:
        ax.set_xticks(np.arange(T))
        ax.set_xticklabels(["\u21b5" if tok == "\n" else tok for tok in text[:T]], fontsize=7, family="monospace")
    else:
        ax.set_xlabel("step (grey lines: newlines)" if text is not None else "step", fontsize=8)
    ax.set_xlim(-0.5, T - 0.5)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def series_traces(recording, series, path, *, quantities=None, layer: int = -1, cells=None, batch: int = 0,
                  direction: int = 0, series_names=None, max_cells: int = 8, title: str | None = None) -> Path:
    """The input series on top, then one panel per quantity with the chosen cells' traces.

    Args:
        series: what the model read for sequence ``batch``: (T,) or (T, F) (array or tensor),
            e.g. a forecasting window or a classified sequence. T must match the recording.
        quantities: which recorded quantities to draw (default: the gates, then c, h).
        cells: cell indices in ``layer`` (default: the ``max_cells`` with the largest
            variance of the last quantity, usually h).
        series_names: a label per input feature.
    """
    s = np.asarray(series.detach().cpu() if hasattr(series, "detach") else series, dtype=np.float64)
    if s.ndim == 1:
        s = s[:, None]
    if s.ndim != 2:
        raise ValueError(f"series must be (T,) or (T, F); got shape {s.shape}")
    T = int(recording.lengths[batch])
    if s.shape[0] != T:
        raise ValueError(f"series has {s.shape[0]} steps but sequence {batch} of the recording has {T}")
    names = list(quantities) if quantities is not None else list(recording.quantities)
    for q in names:
        recording[q]  # KeyError naming what was recorded
    if cells is None:
        var = recording[names[-1]][layer, direction, :T, batch].var(0)  # (W,)
        cells = var.argsort(descending=True)[:max_cells].sort().values.tolist()
    plt = _pyplot()
    fig, axes = plt.subplots(1 + len(names), 1, figsize=(10, 1.6 * (1 + len(names))), dpi=100, sharex=True,
                             squeeze=False)
    ax = axes[0][0]
    for f in range(s.shape[1]):
        ax.plot(np.arange(T), s[:, f], lw=0.9, label=series_names[f] if series_names else None)
    if series_names:
        ax.legend(fontsize=7, frameon=False, ncol=min(len(series_names), 6))
    ax.set_title("input", fontsize=8, loc="left", pad=2)
    lay_n = layer if layer >= 0 else recording.num_layers + layer
    for k, q in enumerate(names):
        ax = axes[k + 1][0]
        y = recording[q][layer, direction, :T, batch].numpy()  # (T, W)
        for j, c in enumerate(cells):
            ax.plot(np.arange(T), y[:, c], lw=0.8, color=LAYER_COLOURS[j % len(LAYER_COLOURS)] if j < 6 else None,
                    label=f"cell {c}")
        ax.set_title(f"{q}  layer {lay_n}{' reverse' if direction else ''}", fontsize=8, loc="left", pad=2)
        if q in SIGMOID_GATES:
            ax.set_ylim(-0.03, 1.03)
        ax.tick_params(labelsize=7)
    axes[1][0].legend(fontsize=7, frameon=False, ncol=min(len(cells), 8), loc="upper right")
    axes[-1][0].set_xlabel("step", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
