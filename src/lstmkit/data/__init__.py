"""Data readers: text files, word corpora in PTB format, and the LM batching they share."""
from .text import (CharVocab, WordVocab, batchify, read_ptb_dir, read_text, text_to_ids)

__all__ = ["CharVocab", "WordVocab", "batchify", "read_ptb_dir", "read_text", "text_to_ids"]
