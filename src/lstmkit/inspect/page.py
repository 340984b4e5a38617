"""One self-contained HTML page to look inside a language model: coloured text, heatmap, cell search.

The page holds everything it needs: the recording as JSON inside a ``<script
type="application/json">`` block, plain JavaScript and CSS, no external resources, so it
opens from disk without a server or a network. It shows

* the text coloured token by token by one cell's value (Karpathy et al. 2015, fig. 2),
  with controls for the layer, the quantity (a gate, the cell state c, the hidden state h)
  and the cell; hovering shows a token's value;
* a heatmap of one gate (or state) of every cell of the layer over time; clicking a row
  picks that cell;
* the interpretable cells found by :func:`lstmkit.inspect.features.search_cells`, each a
  link to its coloured view, and the selected cell's correlation with every feature.

``page.html#q=c&layer=1&cell=17&feature=in_comment&heatmap=i`` opens on a given view
(``layer`` indexes the layer menu: layer, then direction).

Values travel as one byte per cell and step (base64), cell-major. Sigmoid gates are stored
on their fixed [0, 1] scale; everything else (g, n, c, h) relative to the cell's own
largest |value| over the text, whose scale is stored next to it. Both map to a colour
u ∈ [-1, 1]: blue for -1 (a gate at 0), white for 0, red for +1 (a gate at 1).
"""
from __future__ import annotations

import base64
import html
import json
import os
import re
from pathlib import Path

import numpy as np

from .features import FEATURE_HELP
from .record import SIGMOID_GATES

LABELS = {"i": "input gate i", "f": "forget gate f", "g": "candidate g (C̃)", "o": "output gate o",
          "c": "cell state c", "h": "hidden state h", "r": "reset gate r", "z": "update gate z",
          "n": "candidate n (h̃)"}


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).decode("ascii")


def _quantize(x: np.ndarray, gate: bool) -> tuple[np.ndarray, np.ndarray]:
    """(T, W) values -> (W, T) bytes and (W,) scales (1 for gates; else each cell's max |value|)."""
    if gate:
        return np.rint(np.clip(x.T, 0.0, 1.0) * 255).astype(np.uint8), np.ones(x.shape[1])
    scale = np.maximum(np.abs(x).max(axis=0), 1e-12)  # (W,)
    u = np.clip(x / scale, -1.0, 1.0)
    return np.rint((u.T + 1.0) * 127.5).astype(np.uint8), scale


def page_data(recording, tokens: list[str], *, matches: dict | None = None, features: dict | None = None,
              title: str = "lstmkit inspect", subtitle: str = "", batch: int = 0) -> dict:
    """The JSON the page embeds (see the module docstring for the encoding)."""
    T = int(recording.lengths[batch])
    if len(tokens) != T:
        raise ValueError(f"{len(tokens)} tokens for a recording of {T} steps")
    layers = [{"label": f"layer {layer}" + (" reverse" if d else ""), "layer": layer, "direction": d}
              for layer in range(recording.num_layers) for d in range(recording.num_directions)]
    quantities = []
    for q in recording.quantities:
        gate = q in SIGMOID_GATES
        blocks, scales = [], []
        for entry in layers:
            x = recording[q][entry["layer"], entry["direction"], :T, batch].numpy().astype(np.float64)  # (T, W)
            b, s = _quantize(x, gate)
            blocks.append(_b64(b))
            scales.append([float(f"{v:.4g}") for v in s])
        quantities.append({"name": q, "label": LABELS.get(q, q), "kind": "gate" if gate else "signed",
                           "width": recording.width(q), "blocks": blocks, "scale": scales})
    feats = []
    for name, v in (features or {}).items():
        v = np.asarray(v, dtype=np.float64)
        hi = float(v.max()) if v.size else 0.0
        feats.append({"name": name, "label": FEATURE_HELP.get(name, name), "max": hi,
                      "values": _b64(np.rint(v / hi * 255) if hi > 0 else np.zeros(T))})
    table = []
    for name, items in (matches or {}).items():
        table.append({"feature": name, "label": FEATURE_HELP.get(name, name),
                      "items": [{"q": m.quantity, "l": m.layer, "d": m.direction, "cell": m.cell, "r": round(m.r, 3)}
                                for m in items]})
    best = max((m for items in (matches or {}).values() for m in items), key=lambda m: abs(m.r), default=None)
    if best is not None:
        initial = {"q": best.quantity, "l": best.layer, "d": best.direction, "cell": best.cell}
    else:
        initial = {"q": "c" if "c" in recording else "h", "l": recording.num_layers - 1, "d": 0, "cell": 0}
    return {"title": title, "subtitle": subtitle, "tokens": list(tokens), "layers": layers,
            "quantities": quantities, "features": feats, "matches": table, "initial": initial}


def build_page(recording, tokens: list[str], **kwargs) -> str:
    """The page's HTML for ``recording`` of the text ``tokens`` (one display string per step).

    ``kwargs``: ``matches`` (from ``search_cells``), ``features`` (name -> (T,) values, shown
    as an underline and correlated with the selected cell), ``title``, ``subtitle``, ``batch``.
    """
    data = page_data(recording, tokens, **kwargs)
    # JSON inside <script>: "<" escaped so no "</script>" or "<!--" in the text can end the block.
    blob = json.dumps(data, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")
    parts = {"TITLE": html.escape(data["title"]), "DATA": blob, "SCRIPT": _SCRIPT, "STYLE": _STYLE}
    return re.sub(r"__(TITLE|DATA|SCRIPT|STYLE)__", lambda m: parts[m.group(1)], _TEMPLATE)  # one pass


def write_page(path, text: str) -> Path:
    """Write the page atomically (a temporary file in the same directory, then os.replace)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>__TITLE__</title>
<style>__STYLE__</style>
</head>
<body>
<header><h1 id="title"></h1><div id="subtitle"></div></header>
<section id="controls">
  <label>layer <select id="layer"></select></label>
  <label>quantity <select id="quantity"></select></label>
  <label>cell <button id="prev" type="button" title="previous cell">&#9664;</button><input id="cell" type="number" min="0" value="0"><button id="next" type="button" title="next cell">&#9654;</button></label>
  <label>underline <select id="feature"><option value="">(no feature)</option></select></label>
  <span id="legend"></span>
</section>
<div id="corr"></div>
<div id="text" class="text"></div>
<div id="status">&nbsp;</div>
<section>
  <h2>Heatmap over time <select id="hmq"></select> <small>(rows: the cells of the selected layer; click a row to pick that cell)</small></h2>
  <div id="hmwrap"><canvas id="heatmap"></canvas><div id="hmrow"></div></div>
</section>
<section>
  <h2>Interpretable cells</h2>
  <p class="note">Pearson correlation of each cell's value with a feature of the text, over this text; the cells with the largest |r| per feature. Click one to colour the text by it.</p>
  <table id="matches"><thead><tr><th>feature</th><th>top cells (r)</th></tr></thead><tbody></tbody></table>
</section>
<footer class="note">Colours: blue = -1, white = 0, red = +1. Gates are drawn on their own scale (0 blue, 0.5 white, 1 red); c, h and the candidates relative to the cell's largest |value| over the text. Written by lstmkit inspect.</footer>
<script type="application/json" id="data">__DATA__</script>
<script>__SCRIPT__</script>
</body>
</html>
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1em 2em; color: #222; }
h1 { font-size: 1.3em; margin: 0; } h2 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
#subtitle, .note { color: #666; font-size: 0.9em; }
#controls { margin: 0.8em 0; display: flex; flex-wrap: wrap; gap: 1em; align-items: center; }
#cell { width: 4.5em; }
#legend { font-size: 0.85em; color: #444; }
#corr { font-size: 0.85em; color: #444; margin-bottom: 0.4em; }
.text { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; line-height: 1.45;
        white-space: pre-wrap; word-break: break-all; border: 1px solid #ddd; padding: 0.6em;
        max-height: 60vh; overflow-y: auto; }
.text span.nl { color: #aaa; }
#status { font-family: ui-monospace, monospace; font-size: 0.85em; min-height: 1.3em; margin-top: 0.3em; }
#hmwrap { position: relative; overflow-x: auto; border: 1px solid #ddd; }
#heatmap { display: block; image-rendering: pixelated; cursor: crosshair; }
#hmrow { position: absolute; left: 0; border-top: 1px solid #000; border-bottom: 1px solid #000;
         pointer-events: none; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border-bottom: 1px solid #eee; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
a.cell { margin-right: 0.8em; white-space: nowrap; }
"""

_SCRIPT = r"""
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const T = D.tokens.length;
const $ = (id) => document.getElementById(id);
const cache = new Map();
function bytes(key, b64) {  // decode a base64 block once
  if (!cache.has(key)) {
    const s = atob(b64), a = new Uint8Array(s.length);
    for (let k = 0; k < s.length; k++) a[k] = s.charCodeAt(k);
    cache.set(key, a);
  }
  return cache.get(key);
}
const Q = {};
D.quantities.forEach((q) => { Q[q.name] = q; });
const state = {q: D.initial.q, ld: 0, cell: D.initial.cell, feature: "", hmq: null};
D.layers.forEach((e, k) => { if (e.layer === D.initial.l && e.direction === D.initial.d) state.ld = k; });

function block(qname, ld) { return bytes(qname + "/" + ld, Q[qname].blocks[ld]); }
function u(b) { return b / 127.5 - 1; }  // byte -> [-1, 1]
function value(qname, ld, cell, b) {
  const q = Q[qname];
  return q.kind === "gate" ? b / 255 : u(b) * q.scale[ld][cell];
}
function colour(x) {  // [-1, 1] -> blue / white / red
  const a = Math.min(1, Math.abs(x));
  const c = x >= 0 ? [214, 39, 40] : [31, 119, 180];
  return [255 + (c[0] - 255) * a, 255 + (c[1] - 255) * a, 255 + (c[2] - 255) * a].map(Math.round);
}
const css = (rgb) => "rgb(" + rgb[0] + "," + rgb[1] + "," + rgb[2] + ")";

// ---- controls ----------------------------------------------------------------------------
$("title").textContent = D.title;
$("subtitle").textContent = D.subtitle;
function option(sel, value, text) {
  const o = document.createElement("option");
  o.value = value; o.textContent = text; sel.appendChild(o);
}
D.layers.forEach((e, k) => option($("layer"), k, e.label));
D.quantities.forEach((q) => option($("quantity"), q.name, q.label));
D.quantities.forEach((q) => option($("hmq"), q.name, q.label));
D.features.forEach((f) => option($("feature"), f.name, f.label));
const gates = D.quantities.filter((q) => q.kind === "gate");
state.hmq = (Q.f ? "f" : (gates.length ? gates[0].name : D.quantities[0].name));
// page.html#q=c&layer=1&cell=17&feature=in_comment&heatmap=i opens on that view
(location.hash || "").replace(/^#/, "").split("&").forEach((kv) => {
  const [k, v] = kv.split("=").map(decodeURIComponent);
  if (k === "q" && Q[v]) state.q = v;
  else if (k === "layer" && D.layers[Number(v)]) state.ld = Number(v);
  else if (k === "cell" && v !== "" && !isNaN(Number(v))) state.cell = Number(v);
  else if (k === "feature" && D.features.some((f) => f.name === v)) state.feature = v;
  else if (k === "heatmap" && Q[v]) state.hmq = v;
});

// ---- the text ----------------------------------------------------------------------------
const spans = [];
const frag = document.createDocumentFragment();
D.tokens.forEach((tok, t) => {
  const s = document.createElement("span");
  if (tok === "\n") { s.textContent = "\u21b5\n"; s.className = "nl"; } else { s.textContent = tok; }
  s.dataset.t = t;
  spans.push(s); frag.appendChild(s);
});
$("text").appendChild(frag);

function featureValues(name) {
  const f = D.features.find((x) => x.name === name);
  return f ? bytes("feature/" + name, f.values) : null;
}

function correlation(a, b) {  // Pearson r of two equally long arrays
  let ma = 0, mb = 0;
  for (let k = 0; k < a.length; k++) { ma += a[k]; mb += b[k]; }
  ma /= a.length; mb /= b.length;
  let sab = 0, saa = 0, sbb = 0;
  for (let k = 0; k < a.length; k++) {
    const x = a[k] - ma, y = b[k] - mb;
    sab += x * y; saa += x * x; sbb += y * y;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : null;  // null: a constant has no correlation
}

function render() {
  const q = Q[state.q], W = q.width;
  state.cell = Math.max(0, Math.min(W - 1, state.cell | 0));
  $("layer").value = String(state.ld); $("quantity").value = state.q; $("hmq").value = state.hmq;
  $("cell").max = W - 1; $("cell").value = state.cell; $("feature").value = state.feature;
  const bl = block(state.q, state.ld), off = state.cell * T;
  const fv = state.feature ? featureValues(state.feature) : null;
  for (let t = 0; t < T; t++) {
    spans[t].style.backgroundColor = css(colour(u(bl[off + t])));
    spans[t].style.borderBottom = fv ? "2px solid rgba(0,0,0," + (fv[t] / 255).toFixed(2) + ")" : "";
  }
  const range = q.kind === "gate" ? "0 … 1" : "\u00b1" + q.scale[state.ld][state.cell].toPrecision(3);
  $("legend").textContent = q.label + ", " + D.layers[state.ld].label + ", cell " + state.cell + " of " + W +
    " (colour range " + range + ")";
  const series = bl.subarray(off, off + T);
  $("corr").textContent = D.features.length ? "this cell's r with: " + D.features.map((f) => {
    const r = correlation(series, featureValues(f.name));
    return f.label + " " + (r === null ? "\u2013" : r.toFixed(2));
  }).join(", ") : "";
  document.body.dataset.cell = state.q + "/" + state.ld + "/" + state.cell;
  drawHeatmap();
}

// ---- heatmap -----------------------------------------------------------------------------
const canvas = $("heatmap");
let hm = {key: null, rowPx: 3, colPx: 2};
function drawHeatmap() {
  const q = Q[state.hmq], W = q.width, key = state.hmq + "/" + state.ld;
  hm.rowPx = W <= 128 ? 3 : 2; hm.colPx = T <= 2000 ? 3 : 2;  // wide: the box scrolls sideways
  if (hm.key !== key) {
    const bl = block(state.hmq, state.ld), ctx = canvas.getContext("2d");
    canvas.width = T; canvas.height = W;
    const img = ctx.createImageData(T, W);
    for (let c = 0; c < W; c++) for (let t = 0; t < T; t++) {
      const rgb = colour(u(bl[c * T + t])), p = 4 * (c * T + t);
      img.data[p] = rgb[0]; img.data[p + 1] = rgb[1]; img.data[p + 2] = rgb[2]; img.data[p + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    canvas.style.width = (T * hm.colPx) + "px"; canvas.style.height = (W * hm.rowPx) + "px";
    hm.key = key;
  }
  const row = $("hmrow");
  if (state.cell < W) {
    row.style.display = "block"; row.style.top = (state.cell * hm.rowPx - 1) + "px";
    row.style.width = (T * hm.colPx) + "px"; row.style.height = hm.rowPx + "px";
  } else { row.style.display = "none"; }
}
function heatmapAt(e) {
  const r = canvas.getBoundingClientRect();
  return [Math.floor((e.clientX - r.left) / hm.colPx), Math.floor((e.clientY - r.top) / hm.rowPx)];
}
canvas.addEventListener("mousemove", (e) => {
  const [t, c] = heatmapAt(e);
  if (t < 0 || t >= T || c < 0 || c >= Q[state.hmq].width) return;
  const b = block(state.hmq, state.ld)[c * T + t];
  $("status").textContent = "step " + t + "  " + JSON.stringify(D.tokens[t]) + "  " + state.hmq + " cell " + c +
    " = " + value(state.hmq, state.ld, c, b).toFixed(3);
});
canvas.addEventListener("click", (e) => {
  const [, c] = heatmapAt(e);
  if (c >= 0 && c < Q[state.hmq].width) { state.q = state.hmq; state.cell = c; render(); }
});

// ---- events ------------------------------------------------------------------------------
$("text").addEventListener("mouseover", (e) => {
  const t = e.target.dataset ? e.target.dataset.t : undefined;
  if (t === undefined) return;
  const b = block(state.q, state.ld)[state.cell * T + Number(t)];
  $("status").textContent = "step " + t + "  " + JSON.stringify(D.tokens[t]) + "  " + state.q + " = " +
    value(state.q, state.ld, state.cell, b).toFixed(3);
});
$("layer").addEventListener("change", (e) => { state.ld = Number(e.target.value); render(); });
$("quantity").addEventListener("change", (e) => { state.q = e.target.value; render(); });
$("hmq").addEventListener("change", (e) => { state.hmq = e.target.value; render(); });
$("feature").addEventListener("change", (e) => { state.feature = e.target.value; render(); });
$("cell").addEventListener("change", (e) => { state.cell = Number(e.target.value); render(); });
$("prev").addEventListener("click", () => { state.cell = (state.cell + Q[state.q].width - 1) % Q[state.q].width; render(); });
$("next").addEventListener("click", () => { state.cell = (state.cell + 1) % Q[state.q].width; render(); });

// ---- the table of interpretable cells ------------------------------------------------------
const tbody = document.querySelector("#matches tbody");
D.matches.forEach((m) => {
  const tr = document.createElement("tr"), th = document.createElement("td"), td = document.createElement("td");
  th.textContent = m.label;
  if (!m.items.length) td.textContent = "(constant on this text)";
  m.items.forEach((it) => {
    const a = document.createElement("a");
    a.href = "#"; a.className = "cell";
    const ld = D.layers.findIndex((e) => e.layer === it.l && e.direction === it.d);
    a.textContent = it.q + " " + D.layers[ld].label + " #" + it.cell + " (" + it.r.toFixed(2) + ")";
    a.addEventListener("click", (e) => {
      e.preventDefault();
      Object.assign(state, {q: it.q, ld: ld, cell: it.cell, feature: m.feature});
      render();
    });
    td.appendChild(a);
  });
  tr.appendChild(th); tr.appendChild(td); tbody.appendChild(tr);
});

render();
document.body.dataset.ready = "1";
"""
