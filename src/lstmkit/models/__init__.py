"""Task heads around the recurrent layers."""
from .lm import LanguageModel

__all__ = ["LanguageModel"]
