"""The equations: one step function per family; importing this registers every variant."""
from .lstm import LSTMSpec, lstm_cell  # noqa: I001  (registration order = listing order)
from .gru import GRUSpec, gru_cell
from .mut import MUTSpec, mut_cell
from .rnn import RNNSpec, rnn_cell

__all__ = ["LSTMSpec", "GRUSpec", "MUTSpec", "RNNSpec", "lstm_cell", "gru_cell", "mut_cell", "rnn_cell"]
