"""lstmkit: the LSTM family from one readable definition, drop-in compatible with torch.nn.

>>> import lstmkit
>>> lstmkit.variants()            # every registered cell variant
>>> lstm = lstmkit.LSTM(10, 20, num_layers=2, variant="peephole")
"""
from . import cells  # noqa: F401  (registers the variants)
from .layers import GRU, LSTM, RNN, ClockworkRNN, GRUCell, GridLSTM, LSTMCell, RNNCell
from .engine.stream import Stepper
from .registry import get_variant, variants

__version__ = "0.1.0"

_MODULES = {"lstm": LSTM, "gru": GRU, "rnn": RNN, "clockwork": ClockworkRNN, "grid": GridLSTM}


def make_layer(variant: str, input_size: int, hidden_size: int, **kwargs):
    """The recurrent module for any registered variant, e.g. ``make_layer("cifg", 32, 64, num_layers=2)``.

    Picks LSTM, GRU, RNN, ClockworkRNN or GridLSTM by the variant's family; ``kwargs`` go to that class.
    """
    family = get_variant(variant).family
    return _MODULES[family](input_size, hidden_size, variant=variant, **kwargs)


__all__ = ["Stepper", "LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell", "ClockworkRNN", "GridLSTM", "variants", "get_variant", "make_layer"]
