"""torch.nn-compatible modules: the time loop, lengths, stacking and bidirectional layers."""
from .cells import GRUCell, LSTMCell, RNNCell
from .modules import GRU, LSTM, RNN
from .clockwork import ClockworkRNN  # noqa: I001  (registers "clockwork" after the cell variants)
from .grid import GridLSTM

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell", "ClockworkRNN", "GridLSTM"]
