"""Generators for the long-time-lag benchmarks of Hochreiter & Schmidhuber 1997 (section 5).

Every generator takes a ``numpy.random.Generator`` and returns numpy arrays, so the
same generator state gives the same sequences on every machine. :func:`rng_for` makes
the generator of one (seed, stream, index) triple: training batch ``i`` of seed ``s`` is
always ``rng_for(s, TRAIN, i)``, which is what makes a resumed run see exactly the
batches an uninterrupted one would.

Layouts: sequences are time-major and padded, ``x`` (T, B, I) float32 with ``lengths``
(B,) int64; past a sequence's length, inputs are zero and targets are ignored.

The tasks (paper = Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural
Computation 9(8), 1997; section 5 numbers its experiments):

* Exp. 1, embedded Reber grammar: :func:`embedded_reber`, :func:`reber_batch`.
* Exp. 2a/2b/2c, long time lags without and with noise: :func:`lag_batch`.
* Exp. 4, the adding problem: :func:`adding_batch`.
* Exp. 5, the multiplication problem: :func:`multiplication_batch`.
* Exp. 6a/6b, temporal order: :func:`temporal_order_batch`.
* The continual embedded Reber grammar (Gers, Schmidhuber & Cummins 2000): :func:`continual_reber`.
* The copy (memory) task in the form of Arjovsky, Shah & Bengio 2016: :func:`copy_batch`.

Each function's docstring states the definition and the success criterion the task
(``lstmkit.tasks.longterm``) applies; where the paper's own wording is not followed
exactly, the docstring says so.
"""
from __future__ import annotations

import numpy as np

TRAIN, VALID, TEST = 0, 1, 2  # the streams of rng_for


def rng_for(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    """The generator of batch ``index`` of ``stream`` (TRAIN, VALID, TEST) for ``seed``.

    Independent of every other (seed, stream, index): numpy's SeedSequence hashes the triple.
    """
    return np.random.default_rng([int(seed), int(stream), int(index)])


def one_hot(symbols: np.ndarray, n: int) -> np.ndarray:
    """(...,) int -> (..., n) float32; negative entries (padding) become all-zero rows."""
    out = np.zeros(symbols.shape + (n,), dtype=np.float32)
    idx = np.nonzero(symbols >= 0)
    out[idx + (symbols[idx],)] = 1.0
    return out


# ---- Exp. 1: the embedded Reber grammar ----------------------------------------------------

REBER_SYMBOLS = "BTPSXVE"
# The Reber grammar after its initial B (Reber 1967; the graph of the paper's figure 5):
# node -> {symbol: next node}; node 5 emits E and ends.
_REBER = {0: {"T": 1, "P": 2}, 1: {"S": 1, "X": 3}, 2: {"T": 2, "V": 4}, 3: {"X": 2, "S": 5},
          4: {"P": 3, "V": 5}, 5: {"E": "end"}}


def _embedded_next(state) -> dict:
    """Transitions of the embedded Reber automaton: state -> {symbol: next state}.

    States: "start" -B-> "branch" -T/P-> (c, "B") -B-> (c, node) ... (c, 5) -E-> (c, "close")
    -c-> "last" -E-> "end", where c is the branch symbol the network must remember.
    """
    if state == "start":
        return {"B": "branch"}
    if state == "branch":
        return {"T": ("T", "B"), "P": ("P", "B")}
    if state == "last":
        return {"E": "end"}
    if state == "end":
        return {}
    c, node = state
    if node == "B":
        return {"B": (c, 0)}
    if node == "close":
        return {c: "last"}
    return {s: ((c, "close") if nxt == "end" else (c, nxt)) for s, nxt in _REBER[node].items()}


def embedded_reber(rng: np.random.Generator) -> str:
    """One string of the embedded Reber grammar (Exp. 1), e.g. ``"BTBPVVETE"``.

    Definition: B, then T or P (probability 1/2 each), then a string of the Reber
    grammar (B ... E; at every node of the grammar's graph both arcs have probability
    1/2), then the same T or P again, then E. The second-to-last symbol repeats the
    second one, across the whole inner string: the long-term dependency. The shortest
    string has 9 symbols; long ones are rare (the inner loops are geometric).
    """
    state, out = "start", []
    while state != "end":
        arcs = _embedded_next(state)
        symbols = sorted(arcs)
        s = symbols[int(rng.integers(len(symbols)))] if len(symbols) > 1 else symbols[0]
        out.append(s)
        state = arcs[s]
    return "".join(out)


def reber_legal_next(string: str) -> list[str]:
    """For each symbol of an embedded Reber string, the set of legal next symbols (as a string).

    The last symbol's set is empty (the string ends); a ValueError names the first symbol
    the grammar does not allow.
    """
    state, out = "start", []
    for k, s in enumerate(string):
        arcs = _embedded_next(state)
        if s not in arcs:
            raise ValueError(f"{string!r} is not an embedded Reber string: {s!r} at position {k}")
        state = arcs[s]
        out.append("".join(sorted(_embedded_next(state))))
    return out


def is_embedded_reber(string: str) -> bool:
    """Whether the embedded Reber grammar accepts ``string`` (a whole string, ending in E)."""
    try:
        return bool(string) and reber_legal_next(string)[-1] == ""
    except ValueError:
        return False


def reber_arrays(strings: list[str], continual: bool = False):
    """Network arrays for next-symbol prediction on strings (or, ``continual``, one stream of them).

    Returns ``x`` (T, B, 7) one-hot inputs, ``targets`` (T, B, 7) multi-hot legal next
    symbols and ``mask`` (T, B) bool: where a prediction is scored. Each string is a column;
    with ``continual`` all strings are one column, and after each E the legal next symbol
    is the B that starts the next string (the last E of the stream is not scored).
    """
    cols = ["".join(strings)] if continual else strings
    legal_cols = []
    for col in cols:
        legal = [] if continual else reber_legal_next(col)
        if continual:
            for s in strings:
                legal += [n or "B" for n in reber_legal_next(s)]
            legal[-1] = ""
        legal_cols.append(legal)
    T, B = max(len(c) for c in cols), len(cols)
    sym = np.full((T, B), -1, dtype=np.int64)
    targets = np.zeros((T, B, 7), dtype=np.float32)
    mask = np.zeros((T, B), dtype=bool)
    index = {s: i for i, s in enumerate(REBER_SYMBOLS)}
    for b, (col, legal) in enumerate(zip(cols, legal_cols)):
        sym[:len(col), b] = [index[s] for s in col]
        for t, nxt in enumerate(legal):
            for s in nxt:
                targets[t, b, index[s]] = 1.0
            mask[t, b] = bool(nxt)
    return one_hot(sym, 7), targets, mask


def reber_batch(rng: np.random.Generator, n: int):
    """``n`` embedded Reber strings as :func:`reber_arrays` (x, targets, mask) plus the strings.

    Success criterion (Exp. 1): a string is processed correctly when, at every step, the
    legal next symbols are the most active outputs (with k legal successors, the k
    largest outputs are exactly those); the task is solved when every string is.
    """
    strings = [embedded_reber(rng) for _ in range(n)]
    return (*reber_arrays(strings), strings)


def continual_reber(rng: np.random.Generator, n_strings: int):
    """One continual stream of ``n_strings`` embedded Reber strings (Gers, Schmidhuber & Cummins 2000).

    Definition: embedded Reber strings concatenated without any marker or reset between
    them; the network predicts the legal next symbols throughout, and after each final E
    the next string's B. Without a reset the state of a cell that only accumulates
    (the 1997 LSTM, no forget gate) grows without bound: the task needs the forget gate.
    Returns (x, targets, mask) of one column (T, 1, ...) and the strings.

    Success criterion (ours, after Gers et al.'s "perfect solution": a test stream processed
    without an error): a string of the stream is correct when all its predictions are (the
    k most active outputs are the k legal next symbols); solved when every string of the
    validation stream is.
    """
    strings = [embedded_reber(rng) for _ in range(n_strings)]
    return (*reber_arrays(strings, continual=True), strings)


# ---- Exp. 2: long time lags, with and without local regularities ------------------------------

def lag_batch(rng: np.random.Generator, n: int, experiment: str, lag: int, distractors: int = 0):
    """Exp. 2a, 2b or 2c: the first relevant symbol must be recalled after a long time lag.

    2a (noise-free, local regularities): p + 1 symbols a_1..a_{p-1}, x, y with p = ``lag``;
    two sequences, (y, a_1, ..., a_{p-1}, y) and (x, a_1, ..., a_{p-1}, x), each with
    probability 1/2. The task predicts the next symbol at every step; all but the last
    follow from the fixed middle, the last needs the first.
    2b (no local regularities): as 2a, but the p - 1 middle symbols are drawn uniformly at
    random from a_1..a_{p-1}: only the final x or y is predictable, and only it is scored.
    2c (very long lags, the trigger): p = ``distractors`` distractor symbols plus b, e, x, y.
    A sequence is b, then x or y, then ``lag`` + k random distractors (k uniform in
    0..lag/10: ours, the paper also randomises the length), then the trigger e, then
    the x or y from the start; the network reads up to e and names x or y.

    Returns ``x`` (T, n, I) one-hot, ``target`` and ``lengths`` (n,). For 2a ``target``
    is (T, n) next-symbol indices (-1 past the end, and no target after the final input);
    for 2b and 2c it is (n,) with 0 = x, 1 = y, read after the last input.

    Success criterion (ours, in the spirit of the paper's absolute-error thresholds): 2a,
    every next-symbol prediction gets probability > 0.75 (so every output is within 0.25
    of its one-hot target); 2b and 2c, the final x/y gets probability > 0.75 (0.8 for 2c).
    """
    if experiment in ("2a", "2b"):
        p = lag
        X, Y = p - 1, p  # a_1..a_{p-1} are 0..p-2
        first = rng.integers(2, size=n)
        c = np.where(first == 0, X, Y)
        if experiment == "2a":
            middle = np.broadcast_to(np.arange(p - 1), (n, p - 1))
        else:
            middle = rng.integers(p - 1, size=(n, p - 1))
        seq = np.concatenate([c[:, None], middle, c[:, None]], axis=1).T  # (p + 1, n)
        if experiment == "2a":
            x = one_hot(seq[:-1], p + 1)
            return x, seq[1:].copy(), np.full(n, p, dtype=np.int64)
        x = one_hot(seq[:-1], p + 1)  # the network reads all but the final symbol
        return x, first.astype(np.int64), np.full(n, p, dtype=np.int64)
    if experiment != "2c":
        raise ValueError(f"experiment must be 2a, 2b or 2c; got {experiment!r}")
    p = distractors
    B_, E_, X, Y = p, p + 1, p + 2, p + 3
    first = rng.integers(2, size=n)
    extra = rng.integers(lag // 10 + 1, size=n)
    lengths = 2 + lag + extra + 1  # b, x/y, distractors, e
    T = int(lengths.max())
    seq = np.full((T, n), -1, dtype=np.int64)
    for b in range(n):
        L = int(lengths[b])
        seq[0, b], seq[1, b] = B_, X + first[b]
        seq[2:L - 1, b] = rng.integers(p, size=L - 3)
        seq[L - 1, b] = E_
    return one_hot(seq, p + 4), first.astype(np.int64), lengths.astype(np.int64)


# ---- Exp. 4 and 5: adding and multiplication ----------------------------------------------------

def _marked_pairs(rng: np.random.Generator, n: int, T: int, low: float, high: float, jitter: bool = True):
    """Shared layout of Exp. 4 and 5: values, markers, lengths and the two marked positions."""
    lengths = T + rng.integers(T // 10 + 1 if jitter else 1, size=n)  # random lengths between T and T + T/10
    Tmax = int(lengths.max())
    values = rng.uniform(low, high, size=(Tmax, n)).astype(np.float32)
    markers = np.zeros((Tmax, n), dtype=np.float32)
    first = rng.integers(min(10, T), size=n)  # one of the first ten pairs
    second = np.empty(n, dtype=np.int64)
    for b in range(n):
        # one of the first T/2 - 1 pairs still unmarked
        choices = [k for k in range(max(T // 2 - 1, 2)) if k != first[b]]
        second[b] = choices[int(rng.integers(len(choices)))]
        markers[0, b] = -1.0
        markers[lengths[b] - 1, b] = -1.0
        values[lengths[b]:, b] = 0.0
    cols = np.arange(n)
    markers[first, cols] = 1.0
    markers[second, cols] = 1.0
    return values, markers, lengths.astype(np.int64), first, second


def adding_batch(rng: np.random.Generator, n: int, T: int, jitter: bool = True):
    """Exp. 4, the adding problem.

    Definition: each element of a sequence is a pair (value, marker). Values are uniform
    in [-1, 1]; markers are 1.0, 0.0 or -1.0. Lengths are uniform between T and T + T/10.
    Exactly two pairs are marked with 1.0: one of the first ten (its value is X1), then one
    of the first T/2 - 1 still-unmarked pairs (X2). The first and the last pair have marker
    -1, unless marked; when the first pair is marked, its value (the paper's X1) is set to 0. The
    target, given after the last pair, is 0.5 + (X1 + X2) / 4, in [0, 1].

    Success criterion: a sequence is correct when the absolute error at its end is below
    0.04; the paper stops training when the 2000 most recent sequences are all correct
    (and the mean training error is below 0.01). Here: all of a fixed validation set.

    Returns ``x`` (T', n, 2), ``target`` (n,), ``lengths`` (n,). ``jitter=False`` makes
    every length exactly T (for measurements that index steps by their lag from the end).
    """
    values, markers, lengths, first, second = _marked_pairs(rng, n, T, -1.0, 1.0, jitter)
    cols = np.arange(n)
    values[0, markers[0] == 1.0] = 0.0  # the paper's rare case: the first pair is marked, its value is 0
    target = 0.5 + (values[first, cols] + values[second, cols]) / 4.0
    return np.stack([values, markers], axis=-1), target.astype(np.float32), lengths


def multiplication_batch(rng: np.random.Generator, n: int, T: int):
    """Exp. 5, the multiplication problem: as :func:`adding_batch`, with values in [0, 1].

    The target is X1 * X2; when the first pair is marked, its value is set to 1.0.
    Success criterion: a sequence is correct when its absolute error is below 0.04; the
    paper stops when at most n_seq of the 2000 most recent sequences are wrong (n_seq =
    140, and in a second run 13). Here: at most ``max_wrong`` of a fixed validation set.
    """
    values, markers, lengths, first, second = _marked_pairs(rng, n, T, 0.0, 1.0)
    cols = np.arange(n)
    values[0, markers[0] == 1.0] = 1.0  # the paper's rare case: the first pair is marked, its value is 1
    target = values[first, cols] * values[second, cols]
    return np.stack([values, markers], axis=-1), target.astype(np.float32), lengths


# ---- Exp. 6: temporal order ---------------------------------------------------------------------

TEMPORAL_SYMBOLS = "abcdBEXY"
# Where the relevant X/Y symbols may appear, as fractions of T (with T = 100, the paper's
# ranges: 6a t1 in [10, 20], t2 in [50, 60]; 6b t1 in [10, 20], t2 in [33, 43], t3 in [66, 76]).
TEMPORAL_RANGES = {2: ((0.10, 0.20), (0.50, 0.60)), 3: ((0.10, 0.20), (0.33, 0.43), (0.66, 0.76))}


def temporal_order_batch(rng: np.random.Generator, n: int, symbols: int = 2, T: int = 100):
    """Exp. 6a (``symbols=2``, 4 classes) and 6b (``symbols=3``, 8 classes): temporal order.

    Definition: the alphabet is a, b, c, d, B, E, X, Y. A sequence has a random length
    between T and T + T/10 (the paper: 100 to 110), starts with E, ends with B, and is
    otherwise made of random a-d, except at ``symbols`` positions t_k drawn from the
    ranges in :data:`TEMPORAL_RANGES`, which hold X or Y. The class is the order of the
    X/Y symbols read as a binary number (X = 0, Y = 1, first symbol most significant):
    6a XX -> 0 (the paper's Q), XY -> 1 (R), YX -> 2 (S), YY -> 3 (U); 6b XXX -> 0 ... YYY -> 7.

    Success criterion: after the final B, the absolute error of every output unit is below
    0.3 (here, with softmax outputs: the right class has probability > 0.7); the paper
    stops when the 2000 most recent sequences are all correct. Here: a fixed validation set.

    Returns ``x`` (T', n, 8) one-hot, ``target`` (n,) classes, ``lengths`` (n,).
    """
    ranges = TEMPORAL_RANGES[symbols]
    lengths = T + rng.integers(T // 10 + 1, size=n)
    Tmax = int(lengths.max())
    seq = rng.integers(4, size=(Tmax, n))  # a, b, c, d
    which = rng.integers(2, size=(symbols, n))  # 0 = X, 1 = Y
    target = np.zeros(n, dtype=np.int64)
    for k, (lo, hi) in enumerate(ranges):
        pos = rng.integers(round(lo * T), round(hi * T) + 1, size=n)
        seq[pos, np.arange(n)] = 6 + which[k]
        target = target * 2 + which[k]
    seq[0] = 5  # E
    for b in range(n):
        seq[lengths[b] - 1, b] = 4  # B
        seq[lengths[b]:, b] = -1
    return one_hot(seq, 8), target, lengths.astype(np.int64)


def temporal_order_class(order: str) -> int:
    """The class of an X/Y order string: "XY" -> 1, "YX" -> 2, "YYX" -> 6."""
    return int(order.replace("X", "0").replace("Y", "1"), 2)


# ---- the copy task (Arjovsky, Shah & Bengio 2016) --------------------------------------------------

COPY_ALPHABET = 8  # data symbols 1..8; 0 is the blank and 9 the delimiter


def copy_batch(rng: np.random.Generator, n: int, T: int, length: int = 10):
    """The copy (memory) task in the form of Arjovsky, Shah & Bengio 2016, section 4.1.

    Definition: an input sequence of T + 2·length symbols over 0..9: ``length`` (10)
    symbols drawn uniformly from 1..8, then T - 1 blanks (0), then the delimiter 9, then
    ``length`` blanks. The target is blank for the first T + length steps, then the
    ``length`` data symbols in order: the network must reproduce them after T steps.
    A network that outputs blanks and then guesses uniformly has cross-entropy
    ``length · log 8 / (T + 2·length)``: the memoryless baseline.

    Success criterion (ours; the paper reports the cross-entropy curve): every copied
    symbol is the most active output, in every sequence of the validation set.

    Returns ``x`` (T + 2·length, n, 10) one-hot and ``target`` (T + 2·length, n) symbols.
    """
    data = rng.integers(1, COPY_ALPHABET + 1, size=(length, n))
    total = T + 2 * length
    inp = np.zeros((total, n), dtype=np.int64)
    inp[:length] = data
    inp[T + length - 1] = 9
    target = np.zeros((total, n), dtype=np.int64)
    target[T + length:] = data
    return one_hot(inp, 10), target
