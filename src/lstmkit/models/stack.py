"""The recurrent stack every task head builds: one place for the options they share."""
from __future__ import annotations

from .. import make_layer


def stack_layer(cell: str, input_size: int, hidden_size: int, *, num_layers: int = 1, dropout: float = 0.0,
                proj_size: int = 0, recurrent_dropout: float = 0.0, zoneout: float = 0.0, depth_gate: bool = False,
                **extra):
    """``make_layer(cell, ...)`` with dropout only between layers (a 1-layer stack has none), and
    ``proj_size`` / ``depth_gate`` passed only when set, so cells without them are not offered them."""
    kw = dict(num_layers=num_layers, dropout=dropout if num_layers > 1 else 0.0,
              recurrent_dropout=recurrent_dropout, zoneout=zoneout, **extra)
    if proj_size:
        kw["proj_size"] = proj_size
    if depth_gate:  # Yao et al. 2015 (lstmkit.LSTM's depth_gate)
        kw["depth_gate"] = True
    return make_layer(cell, input_size, hidden_size, **kw)
