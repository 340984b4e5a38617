"""Reading UTF-8 text and PTB-format corpora, vocabularies, and the stateful-LM batch layout.

Every reader checks its input and raises :class:`~lstmkit.errors.UsageError` with a
message that names the file and the problem (missing, empty, binary, not UTF-8).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UsageError

PTB_SPLITS = ("train", "valid", "test")
EOS = "<eos>"
UNK = "<unk>"


def read_text(path: str | os.PathLike, what: str = "data file") -> str:
    """The file's contents as a str; UsageError if it is missing, empty, binary or not UTF-8."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} {str(p)!r} does not exist")
    if p.is_dir():
        raise UsageError(f"{what} {str(p)!r} is a directory; expected a UTF-8 text file")
    raw = p.read_bytes()
    if not raw:
        raise UsageError(f"{what} {str(p)!r} is empty")
    if b"\x00" in raw[:65536]:  # UTF-8 text never holds NUL; binaries almost always do
        raise UsageError(f"{what} {str(p)!r} looks binary (it contains NUL bytes); expected UTF-8 text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{what} {str(p)!r} is not UTF-8 text (invalid byte 0x{raw[e.start]:02x} "
                         f"at offset {e.start})") from None
    if text.startswith("\ufeff"):  # a byte-order mark is not part of the text
        text = text[1:]
    if not text.strip():
        raise UsageError(f"{what} {str(p)!r} holds only whitespace")
    return text


@dataclass
class CharVocab:
    """Characters, sorted by code point; ids are positions in ``chars``."""

    chars: list[str]

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str, what: str = "text") -> list[int]:
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted(set(text) - index.keys())
        if unknown:
            shown = "".join(unknown[:20])
            raise UsageError(f"{what} holds {len(unknown)} character(s) the model never saw: {shown!r}; "
                             f"it knows {len(self.chars)}: {''.join(self.chars)!r}")
        return [index[c] for c in text]

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)

    def to_json(self) -> dict:
        return {"kind": "char", "tokens": self.chars}


@dataclass
class WordVocab:
    """Words in order of first appearance in the training split (``<eos>`` included)."""

    words: list[str]

    @classmethod
    def from_tokens(cls, tokens: list[str]) -> "WordVocab":
        return cls(list(dict.fromkeys(tokens)))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: list[str], what: str = "text") -> list[int]:
        """Word ids; unknown words become ``<unk>`` when the vocabulary has it, else an error."""
        index = {w: i for i, w in enumerate(self.words)}
        unk = index.get(UNK)
        unknown = [w for w in dict.fromkeys(tokens) if w not in index]
        if unknown and unk is None:
            raise UsageError(f"{what} holds {len(unknown)} word(s) the model never saw, e.g. "
                             f"{' '.join(unknown[:5])!r}, and the vocabulary has no {UNK}")
        return [index.get(w, unk) for w in tokens]

    def decode(self, ids) -> str:
        return " ".join(self.words[i] for i in ids).replace(f" {EOS} ", "\n").replace(EOS, "\n")

    def to_json(self) -> dict:
        return {"kind": "word", "tokens": self.words}


def vocab_from_json(d: dict):
    return CharVocab(d["tokens"]) if d["kind"] == "char" else WordVocab(d["tokens"])


def text_to_ids(text: str, vocab) -> torch.Tensor:
    return torch.tensor(vocab.encode(text), dtype=torch.long)


def ptb_tokens(text: str) -> list[str]:
    """PTB format: one sentence per line, tokens separated by spaces, ``<eos>`` added at each line end."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if words:
            out.extend(words)
            out.append(EOS)
    return out


def read_ptb_dir(path: str | os.PathLike, splits=("train", "valid", "test")) -> dict[str, list[str]]:
    """Token lists of a PTB-format directory's ``<split>.txt`` files."""
    d = Path(path)
    if not d.exists():
        raise UsageError(f"data directory {str(d)!r} does not exist")
    if not d.is_dir():
        raise UsageError(f"wordlm needs a directory with {', '.join(s + '.txt' for s in PTB_SPLITS)}; "
                         f"{str(d)!r} is a file")
    missing = [s + ".txt" for s in splits if not (d / f"{s}.txt").is_file()]
    if missing:
        raise UsageError(f"data directory {str(d)!r} has no {' or '.join(missing)} "
                         f"(PTB format: {', '.join(s + '.txt' for s in PTB_SPLITS)})")
    return {s: ptb_tokens(read_text(d / f"{s}.txt")) for s in splits}


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a token stream into ``batch_size`` contiguous columns: (N, B), time-major.

    Column b holds tokens ``[b*N, (b+1)*N)``, so consecutive windows of rows continue
    each column's text, which is what lets a language model carry its state across
    windows (truncated BPTT). The few tokens that do not fill a whole row are dropped.
    """
    n = ids.numel() // batch_size
    return ids[: n * batch_size].view(batch_size, n).t().contiguous()
