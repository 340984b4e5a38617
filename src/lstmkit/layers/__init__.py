"""torch.nn-compatible modules: the time loop, lengths, stacking and bidirectional layers."""
from .cells import GRUCell, LSTMCell, RNNCell
from .modules import GRU, LSTM, RNN

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"]
