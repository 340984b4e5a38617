"""Simple features of a text, and the search for cells that track them (Karpathy et al. 2015, sec. 4.2).

Karpathy, Johnson & Fei-Fei 2015, "Visualizing and Understanding Recurrent Networks"
(arXiv:1506.02078) found LSTM cells that count the position in a line, switch on inside
quotes, or follow the indentation of code. :func:`text_features` computes such features for
every character, and :func:`search_cells` ranks every recorded cell of a
:class:`~lstmkit.inspect.record.Recording` by its Pearson correlation with each of them.

Every feature is the state *after reading* character t, which is what the recurrent state
after step t can know (apart from ``line_remaining``, which a cell can only predict):

==================  ==========================================================================
``in_quotes``       1 inside a string: from its opening quote (1) to its closing quote (0).
                    ``"``, ``'`` and Python's triple quotes; a backslash escapes the next
                    character; a single-quoted string also ends at the end of its line, and a
                    ``'`` right after a word (``don't``, ``soldiers'``) opens nothing unless the
                    word is a string prefix (``f'...'``, ``rb'...'``).
``in_brackets``     1 while a ``(``, ``[`` or ``{`` (outside strings and comments) is open,
                    strings and comments inside it included; an unmatched closer is ignored
                    and a blank line closes everything (prose).
``line_position``   characters of the current line read so far (``abc\\n``: 1, 2, 3, 0).
``line_remaining``  characters still to come before the next newline (``abc\\n``: 2, 1, 0, then
                    the length of the next line).
``indent``          the indentation of the current line in columns (tabs to multiples of 8).
``in_comment``      1 from a ``#`` outside a string to the end of its line (the newline is 0).
==================  ==========================================================================
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURES = ("in_quotes", "in_brackets", "line_position", "line_remaining", "indent", "in_comment")
FEATURE_HELP = {
    "in_quotes": "inside a quoted string",
    "in_brackets": "inside parentheses or brackets",
    "line_position": "position in the line",
    "line_remaining": "characters left to the end of the line",
    "indent": "indentation depth of the line",
    "in_comment": "inside a # comment",
}


_STRING_PREFIXES = {"r", "b", "f", "u", "rb", "br", "fr", "rf"}


def _apostrophe(text: str, i: int) -> bool:
    """Whether the ' at ``i`` follows a letter (don't, the soldiers') rather than opening a string
    (Python's prefixed strings r'...', f'...' do open one)."""
    j = i
    while j > 0 and (text[j - 1].isalnum() or text[j - 1] == "_"):
        j -= 1
    word = text[j:i]
    return bool(word) and word.lower() not in _STRING_PREFIXES


def text_features(text: str) -> dict[str, np.ndarray]:
    """Every feature of :data:`FEATURES` for every character: name -> (len(text),) float64."""
    n = len(text)
    quotes, brackets, comment = np.zeros(n), np.zeros(n), np.zeros(n)
    quote, depth, in_comment, i = None, 0, False, 0
    while i < n:
        ch, step = text[i], 1  # step: characters consumed at once (an escape pair, a triple quote)
        if in_comment:
            in_comment = ch != "\n"
            comment[i] = in_comment
        elif quote is not None:  # inside a string: only its end, an escape or (single-line) the newline matter
            if ch == "\\" and i + 1 < n and text[i + 1] != "\n":
                quotes[i:i + 2], step = 1, 2
            elif text.startswith(quote, i):
                quotes[i:i + len(quote) - 1] = 1  # the closing quote's last character is outside
                quote, step = None, len(quote)
            elif ch == "\n" and len(quote) == 1:
                quote = None
            else:
                quotes[i] = 1
        elif ch == "#":
            in_comment = True
            comment[i] = 1
        elif text.startswith('"""', i) or text.startswith("'''", i):
            quote, step = text[i:i + 3], 3
            quotes[i:i + 3] = 1
        elif ch == '"' or (ch == "'" and not _apostrophe(text, i)):
            quote = ch
            quotes[i] = 1
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(depth - 1, 0)
        elif ch == "\n" and i > 0 and text[i - 1] == "\n":
            depth = 0
        brackets[i:i + step] = depth > 0  # strings and comments inside brackets are inside them too
        i += step

    position, remaining, indent = np.zeros(n), np.zeros(n), np.zeros(n)
    start = 0
    for line in text.split("\n"):
        width = len(line)
        stop = start + width  # index of this line's newline (== n for a last line without one)
        position[start:stop] = np.arange(1, width + 1)
        remaining[start:stop] = np.arange(width - 1, -1, -1)
        lead = line[: width - len(line.lstrip(" \t"))]
        indent[start:min(stop + 1, n)] = len(lead.expandtabs(8))
        if stop < n:  # the newline: position 0, and the next line is still to come
            nxt = text.find("\n", stop + 1)
            remaining[stop] = (n if nxt < 0 else nxt) - stop - 1
        start = stop + 1
    return {"in_quotes": quotes, "in_brackets": brackets, "line_position": position,
            "line_remaining": remaining, "indent": indent, "in_comment": comment}


def token_features(tokens: list[str]) -> dict[str, np.ndarray]:
    """The features at each token's last character, for tokens that concatenate to the text
    (a word model's words with their separators): name -> (len(tokens),)."""
    if any(len(t) == 0 for t in tokens):
        raise ValueError("token_features: tokens must be non-empty strings")
    text = "".join(tokens)
    ends = np.cumsum([len(t) for t in tokens]) - 1
    return {k: v[ends] for k, v in text_features(text).items()}


def correlate(acts: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of ``acts`` (T, N) with every column of ``feats`` (T, K): (N, K).

    A column that is constant over the T steps has no correlation with anything: 0.
    """
    a = np.asarray(acts, dtype=np.float64)
    f = np.asarray(feats, dtype=np.float64)
    if a.ndim != 2 or f.ndim != 2 or a.shape[0] != f.shape[0]:
        raise ValueError(f"correlate needs (T, N) and (T, K) arrays; got {a.shape} and {f.shape}")
    a = a - a.mean(0)
    f = f - f.mean(0)
    na, nf = np.sqrt((a * a).sum(0)), np.sqrt((f * f).sum(0))  # (N,), (K,)
    r = (a.T @ f) / np.maximum(np.outer(na, nf), 1e-300)
    # constant up to round-off of the mean: ~1e-16 relative per step, so 1e-9 is far above it
    tiny = lambda x, norm: norm <= 1e-9 * np.sqrt(x.shape[0]) * (1 + np.abs(x).max(0))  # noqa: E731
    r[tiny(np.asarray(acts, dtype=np.float64), na), :] = 0.0
    r[:, tiny(np.asarray(feats, dtype=np.float64), nf)] = 0.0
    return np.clip(r, -1.0, 1.0)


@dataclass(frozen=True)
class CellMatch:
    """One cell's correlation with one feature: quantity ``c`` of cell 17 in layer 1, r = -0.83."""

    feature: str
    quantity: str
    layer: int
    direction: int
    cell: int
    r: float

    def label(self) -> str:
        d = " reverse" if self.direction else ""
        return f"{self.quantity} L{self.layer}{d} #{self.cell}"


def search_cells(recording, features: dict[str, np.ndarray], *, top: int = 5, quantities=None,
                 batch: int = 0) -> dict[str, list[CellMatch]]:
    """The ``top`` cells with the largest |r| for each feature, over every layer, direction and quantity.

    Args:
        recording: a :class:`~lstmkit.inspect.record.Recording` of the text (sequence ``batch``).
        features: name -> (T,) values aligned with the recorded steps (e.g. :func:`text_features`).
        quantities: which recorded quantities to search (default: all of them).

    Returns:
        feature -> matches, best first; a feature that is constant on this text (no comments
        in Shakespeare) gets an empty list, since no correlation is defined.
    """
    names = list(quantities) if quantities is not None else list(recording.quantities)
    T = int(recording.lengths[batch])
    keys = list(features)
    F = np.stack([np.asarray(features[k], dtype=np.float64) for k in keys], axis=1) if keys else np.zeros((T, 0))
    if F.shape[0] != T:
        raise ValueError(f"features have {F.shape[0]} steps but the recording has {T}")
    columns, labels = [], []  # every (quantity, layer, direction, cell) as one column of activations
    for q in names:
        x = recording[q][:, :, :T, batch].numpy()  # (L, D, T, W)
        L, D, _, W = x.shape
        columns.append(x.transpose(2, 0, 1, 3).reshape(T, L * D * W))
        labels += [(q, layer, d, c) for layer in range(L) for d in range(D) for c in range(W)]
    r = correlate(np.concatenate(columns, axis=1), F)  # (N, K)
    out = {}
    for k, name in enumerate(keys):
        if np.ptp(F[:, k]) == 0:
            out[name] = []
            continue
        order = np.argsort(-np.abs(r[:, k]), kind="stable")[:top]
        out[name] = [CellMatch(name, *labels[j], float(r[j, k])) for j in order]
    return out
