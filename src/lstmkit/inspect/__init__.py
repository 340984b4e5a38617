"""Looking inside trained networks: recordings of gates and states, interpretable cells, pictures,
and gradient flow over time (``gradflow.py``, ``lstmkit gradflow``).

>>> rec = lstmkit.inspect.record(model, x)   # per layer, direction, step: i, f, g, o, c, h
>>> rec["f"].shape                           # (L, D, T, B, H)

See ``docs/inspect.md``. Matplotlib (figures) is imported only when a figure is drawn.
"""
from .features import FEATURES, CellMatch, correlate, search_cells, text_features, token_features
from .page import build_page, write_page
from .record import Recording, find_recurrent, record, record_all

__all__ = ["record", "record_all", "Recording", "find_recurrent", "FEATURES", "text_features", "token_features",
           "correlate", "search_cells", "CellMatch", "build_page", "write_page"]
