"""Sentence pairs for translation: a TSV reader, tokenisers, vocabularies, batches, and a date task.

* :func:`read_pairs` reads ``SOURCE<TAB>TARGET`` lines, one pair per line, and names the
  file and line of anything it cannot use (no tab, an empty side, bytes that are not UTF-8).
* :func:`tokenize` / :func:`detokenize`: characters, or words split on whitespace.
* :class:`Vocab`: ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>`` (ids 0..3), then the training
  tokens by frequency, cut to a size limit; anything else encodes as ``<unk>``.
* :class:`PairBatches`: padded, length-bucketed batches in a fixed seeded order.
* :func:`date_pairs`: the built-in task, no download. Random dates written out by babel's
  CLDR locale data in several languages and formats ("Samstag, 21. November 2026",
  "21 de noviembre de 2026") paired with their ISO 8601 form ("2026-11-21"); or date
  intervals in CLDR's interval formats ("21 nov. – 5 déc. 2026") paired with ISO 8601
  intervals ("2026-11-21/2026-12-05"): the long inputs.
"""
from __future__ import annotations

import datetime
import os
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UsageError

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
TOKENISERS = ("char", "word")


# ---- reading -------------------------------------------------------------------------------

def read_pairs(path: str | os.PathLike, what: str = "data file") -> list[tuple[str, str]]:
    """The (source, target) pairs of a TSV file: one ``SOURCE<TAB>TARGET`` per line.

    Blank lines are skipped; each side is stripped of surrounding whitespace. UsageError,
    naming the file and line, for a missing/empty/binary file, bytes that are not UTF-8,
    a line without exactly one tab, or an empty source or target.
    """
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} {str(p)!r} does not exist")
    if p.is_dir():
        raise UsageError(f"{what} {str(p)!r} is a directory; expected a UTF-8 TSV file of SOURCE<TAB>TARGET lines")
    raw = p.read_bytes()
    if not raw.strip():
        raise UsageError(f"{what} {str(p)!r} is empty; expected SOURCE<TAB>TARGET lines")
    if b"\x00" in raw[:65536]:
        raise UsageError(f"{what} {str(p)!r} looks binary (it contains NUL bytes); expected UTF-8 text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise UsageError(f"{what} {str(p)!r} line {line} is not UTF-8 (invalid byte 0x{raw[e.start]:02x}); "
                         f"save the file as UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    pairs = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            got = "no tab" if len(fields) == 1 else f"{len(fields) - 1} tabs"
            raise UsageError(f"{what} {str(p)!r} line {n} has {got}; expected SOURCE<TAB>TARGET "
                             f"(exactly one tab): {_clip(line)!r}")
        src, tgt = fields[0].strip(), fields[1].strip()
        for side, s in (("source", src), ("target", tgt)):
            if not s:
                raise UsageError(f"{what} {str(p)!r} line {n} has an empty {side}; expected SOURCE<TAB>TARGET "
                                 f"with text on both sides")
        pairs.append((src, tgt))
    return pairs


def _clip(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[:n] + "..."


# ---- tokens and vocabularies -----------------------------------------------------------------

def tokenize(text: str, kind: str) -> list[str]:
    """``"char"``: every character (spaces included); ``"word"``: whitespace-separated words."""
    return list(text) if kind == "char" else text.split()


def detokenize(tokens: list[str], kind: str) -> str:
    return "".join(tokens) if kind == "char" else " ".join(tokens)


@dataclass
class Vocab:
    """Token <-> id. ``tokens[:4]`` are the specials ``<pad> <bos> <eos> <unk>``."""

    tokens: list[str]

    @classmethod
    def build(cls, sequences, max_size: int = 0) -> "Vocab":
        """From token lists: most frequent first (ties in code-point order); ``max_size`` counts
        the four specials, 0 = no limit. Tokens that do not fit encode as ``<unk>``."""
        counts = Counter(t for seq in sequences for t in seq)
        for s in SPECIALS:  # a literal "<unk>" in the data is the special, not a second token
            counts.pop(s, None)
        ranked = sorted(counts, key=lambda t: (-counts[t], t))
        if max_size:
            ranked = ranked[:max(0, max_size - len(SPECIALS))]
        return cls(list(SPECIALS) + ranked)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: list[str]) -> list[int]:
        index = self._index()
        return [index.get(t, UNK) for t in tokens]

    def decode(self, ids) -> list[str]:
        """Tokens up to the first ``<eos>``; ``<pad>`` and ``<bos>`` dropped, ``<unk>`` kept."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i not in (PAD, BOS):
                out.append(self.tokens[i])
        return out

    def _index(self) -> dict:
        if getattr(self, "_idx", None) is None or len(self._idx) != len(self.tokens):
            self._idx = {t: i for i, t in enumerate(self.tokens)}
        return self._idx

    def to_json(self) -> list[str]:
        return list(self.tokens)

    @classmethod
    def from_json(cls, tokens: list[str]) -> "Vocab":
        if list(tokens[:len(SPECIALS)]) != list(SPECIALS):
            raise ValueError(f"a vocabulary must start with {' '.join(SPECIALS)}")
        return cls(list(tokens))


# ---- splits and batches ---------------------------------------------------------------------

@dataclass
class PairSplit:
    """One split: the raw pairs and their ids (the target without <bos>/<eos>)."""

    pairs: list[tuple[str, str]]
    src: list[list[int]]
    tgt: list[list[int]]

    def __len__(self) -> int:
        return len(self.pairs)


def encode_split(pairs, kind: str, src_vocab: Vocab, tgt_vocab: Vocab) -> PairSplit:
    return PairSplit(list(pairs), [src_vocab.encode(tokenize(s, kind)) for s, _ in pairs],
                     [tgt_vocab.encode(tokenize(t, kind)) for _, t in pairs])


def split_pairs(pairs: list, valid_fraction: float, test_fraction: float, seed: int) -> tuple[list, list, list]:
    """(train, valid, test): a seeded shuffle, then the test and validation fractions off the front."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_test = int(round(len(pairs) * test_fraction))
    n_valid = int(round(len(pairs) * valid_fraction))
    pick = [pairs[i] for i in order]
    return pick[n_test + n_valid:], pick[n_test:n_test + n_valid], pick[:n_test]


def pad_batch(seqs: list[list[int]], device="cpu", bos: bool = False, eos: bool = False) -> torch.Tensor:
    """(T, B) ids, time-major, padded with <pad>; optionally <bos> before / <eos> after each sequence."""
    seqs = [([BOS] if bos else []) + list(s) + ([EOS] if eos else []) for s in seqs]
    T = max(len(s) for s in seqs)
    out = torch.full((T, len(seqs)), PAD, dtype=torch.long)
    for b, s in enumerate(seqs):
        out[:len(s), b] = torch.tensor(s, dtype=torch.long)
    return out.to(device)


def make_batch(split: PairSplit, idx: list[int], device="cpu"):
    """(src (S, B), src_len (B,), tgt_in (T+1, B) = <bos> y, tgt_out (T+1, B) = y <eos>)."""
    src = [split.src[i] or [UNK] for i in idx]  # a source of only dropped tokens still needs one step
    tgt = [split.tgt[i] for i in idx]
    lengths = torch.tensor([len(s) for s in src], dtype=torch.long)
    return pad_batch(src, device), lengths, pad_batch(tgt, device, bos=True), pad_batch(tgt, device, eos=True)


class PairBatches:
    """The training batches of an epoch, in one fixed seeded order.

    Pairs are shuffled, cut into chunks of 50 batches, sorted by source length inside each
    chunk (so a batch holds similar lengths and little padding), batched, and the batches
    shuffled. The trainer indexes batches (``batches[i]``) to resume exactly, and is not
    told the epoch, so every epoch visits the same order. Process ``rank`` of ``world``
    takes every world-th batch.
    """

    def __init__(self, split: PairSplit, batch_size: int, seed: int = 0, rank: int = 0, world: int = 1,
                 device: str = "cpu"):
        rng = random.Random(seed)
        order = list(range(len(split)))
        rng.shuffle(order)
        chunk = batch_size * 50
        batches = []
        for s in range(0, len(order), chunk):
            part = sorted(order[s:s + chunk], key=lambda i: len(split.src[i]))
            batches += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
        rng.shuffle(batches)
        # Under torchrun every process must take the same number of steps (DDP all-reduces each).
        self.index = batches[:len(batches) // world * world][rank::world]
        self.split, self.device = split, device

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        return make_batch(self.split, self.index[i], self.device)


# ---- the built-in task: dates written out in several languages -> ISO 8601 ---------------------

DATE_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "nl_NL", "pl_PL", "fi_FI")
DATE_FORMAT_SETS = {
    "all": ("short", "medium", "long", "full"),
    "long": ("long", "full"),  # the month written out
    "full": ("full",),  # weekday, day, month name, year: the longest single dates
    # Intervals: CLDR interval-format skeletons (babel.dates.format_interval), which drop what
    # both ends share ("21.–23. Nov. 2026"); the target is the ISO 8601 interval start/end.
    "intervals": ("yMMMd", "yMMMMd", "yMMMEd", "yMMMMEEEEd"),
}
INTERVAL_DAYS = 400  # an interval's end is 1..400 days after its start
DATE_RANGE = (datetime.date(1900, 1, 1), datetime.date(2099, 12, 31))


def _babel_dates():
    try:
        from babel import dates
    except ModuleNotFoundError:
        raise UsageError("the built-in date task needs the babel package: pip install 'lstmkit[translate]'") from None
    return dates


def date_styles(formats: str = "all") -> list[tuple[str, str]]:
    """The (locale, babel format) pairs the generator draws from.

    A numeric format is used only where it is unambiguous within the mix: a four-digit year
    and the day before the month (so en_US's M/d/yy and two-digit years are left out).
    """
    dates = _babel_dates()
    if formats == "intervals":  # every skeleton spells the month out
        return [(loc, fmt) for loc in DATE_LOCALES for fmt in DATE_FORMAT_SETS[formats]]
    styles = []
    for loc in DATE_LOCALES:
        for fmt in DATE_FORMAT_SETS[formats]:
            pattern = dates.get_date_format(fmt, locale=loc).pattern
            if "MMM" not in pattern:  # all-numeric: day first, 4-digit year
                if pattern.count("y") == 2 or pattern.index("d") > pattern.index("M"):
                    continue
            styles.append((loc, fmt))
    return styles


def date_pairs(n: int, seed: int = 0, formats: str = "all", with_style: bool = False) -> list:
    """``n`` distinct (written date, ISO date) pairs, deterministic for a seed.

    Each pair draws a day uniformly from 1900-01-01..2099-12-31 and a (locale, format)
    uniformly from :func:`date_styles`; babel writes it out. With ``formats="intervals"`` the
    day starts an interval whose end is 1..400 days later, written by babel's
    ``format_interval`` and paired with the ISO 8601 interval ``start/end``. Sources are
    unique, so a test pair's source never occurs in training. ``with_style`` adds
    (locale, format) to each pair.
    """
    dates = _babel_dates()
    styles = date_styles(formats)
    rng = random.Random(seed)
    span = (DATE_RANGE[1] - DATE_RANGE[0]).days + 1
    limit = span * len(styles)
    if n > limit // 2:
        raise UsageError(f"--date-pairs {n} is too many; at most {limit // 2} distinct dates in format set {formats!r}")
    seen, out = set(), []
    while len(out) < n:
        day = DATE_RANGE[0] + datetime.timedelta(days=rng.randrange(span))
        loc, fmt = styles[rng.randrange(len(styles))]
        if formats == "intervals":
            end = min(day + datetime.timedelta(days=rng.randint(1, INTERVAL_DAYS)), DATE_RANGE[1])
            if end == day:
                continue
            src = dates.format_interval(day, end, fmt, locale=loc)
            tgt = f"{day.isoformat()}/{end.isoformat()}"
        else:
            src, tgt = dates.format_date(day, format=fmt, locale=loc), day.isoformat()
        if src in seen:
            continue
        seen.add(src)
        out.append((src, tgt, loc, fmt) if with_style else (src, tgt))
    return out
