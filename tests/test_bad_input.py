"""Bad arguments and inputs fail early with ValueError/TypeError, and the message names the
argument, what was expected and what was given."""
from __future__ import annotations

import contextlib

import pytest
import torch
from conftest import ALL_VARIANTS, LSTM_VARIANTS
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit

pytestmark = pytest.mark.usefixtures("single_thread")


@contextlib.contextmanager
def raises(exc, *substrings):
    """pytest.raises, plus: every substring appears in the message (literally, not a regex)."""
    with pytest.raises(exc) as info:
        yield info
    message = str(info.value)
    for s in substrings:
        assert s in message, f"{s!r} not in {message!r}"


# ---- forward input ----------------------------------------------------------------------

MODULES = [
    pytest.param(lambda **kw: lstmkit.LSTM(10, 20, num_layers=2, **kw), id="LSTM"),
    pytest.param(lambda **kw: lstmkit.GRU(10, 20, num_layers=2, **kw), id="GRU"),
    pytest.param(lambda **kw: lstmkit.RNN(10, 20, num_layers=2, **kw), id="RNN"),
]


@pytest.mark.parametrize("make", MODULES)
@pytest.mark.parametrize("shape", [(5,), (5, 2, 3, 10)], ids=["1-D", "4-D"])
def test_wrong_input_rank(make, shape):
    m = make()
    with raises(ValueError, "input", "2-D", "3-D", f"got {len(shape)}-D", str(tuple(shape))):
        m(torch.randn(*shape))


@pytest.mark.parametrize("make", MODULES)
@pytest.mark.parametrize("shape", [(5, 2, 7), (5, 7)], ids=["batched", "unbatched"])
def test_wrong_feature_size(make, shape):
    with raises(ValueError, "input_size=10", "7"):
        make()(torch.randn(*shape))


def test_wrong_feature_size_batch_first_and_packed():
    m = lstmkit.GRU(10, 20, batch_first=True)
    with raises(ValueError, "input_size=10", "7"):
        m(torch.randn(2, 5, 7))
    packed = pack_padded_sequence(torch.randn(5, 2, 7), torch.tensor([5, 3]), enforce_sorted=False)
    with raises(ValueError, "input_size=10", "7"):
        lstmkit.LSTM(10, 20)(packed)


def test_not_a_tensor():
    with raises(TypeError, "input", "Tensor", "list"):
        lstmkit.LSTM(10, 20)([[1.0] * 10])


def test_empty_input():
    with raises(ValueError, "0 time steps", ">= 1"):
        lstmkit.LSTM(10, 20)(torch.zeros(0, 2, 10))
    with raises(ValueError, "batch size 0", ">= 1"):
        lstmkit.RNN(10, 20)(torch.zeros(3, 0, 10))


@pytest.mark.parametrize("make", MODULES)
def test_dtype_mismatch(make):
    m = make()
    with raises(TypeError, "dtype", "torch.float64", "torch.float32"):
        m(torch.randn(5, 2, 10, dtype=torch.float64))
    with raises(TypeError, "dtype", "torch.float32", "torch.float64"):
        make(dtype=torch.float64)(torch.randn(5, 2, 10))


# ---- initial state ----------------------------------------------------------------------

X = torch.randn(5, 3, 10)
X_UNBATCHED = torch.randn(5, 10)


@pytest.mark.parametrize("which, h, c, expected", [
    ("h_0", (2, 4, 20), (2, 3, 20), "(2, 3, 20)"),  # wrong batch
    ("h_0", (1, 3, 20), (2, 3, 20), "(2, 3, 20)"),  # wrong number of layers
    ("c_0", (2, 3, 20), (2, 3, 19), "(2, 3, 20)"),  # wrong width
    ("c_0", (2, 3, 20), (3, 2, 20), "(2, 3, 20)"),
])
def test_lstm_hx_shape_batched(which, h, c, expected):
    m = lstmkit.LSTM(10, 20, num_layers=2)
    given = h if which == "h_0" else c
    with raises(ValueError, which, str(given), expected, "num_layers * num_directions"):
        m(X, (torch.zeros(h), torch.zeros(c)))


@pytest.mark.parametrize("which, h, c", [
    ("h_0", (2, 1, 20), (2, 20)),  # a batched h_0 with unbatched input
    ("h_0", (2, 21), (2, 20)),
    ("c_0", (2, 20), (2, 1, 20)),
    ("c_0", (2, 20), (1, 20)),
])
def test_lstm_hx_shape_unbatched(which, h, c):
    m = lstmkit.LSTM(10, 20, num_layers=2)
    given = h if which == "h_0" else c
    with raises(ValueError, which, str(given), "(2, 20)"):
        m(X_UNBATCHED, (torch.zeros(h), torch.zeros(c)))


def test_lstm_hx_shape_with_projection_names_proj_size():
    m = lstmkit.LSTM(10, 20, proj_size=5, bidirectional=True)
    with raises(ValueError, "h_0", "(2, 3, 20)", "(2, 3, 5)", "proj_size"):
        m(X, (torch.zeros(2, 3, 20), torch.zeros(2, 3, 20)))
    with raises(ValueError, "c_0", "(2, 3, 5)", "(2, 3, 20)", "hidden_size"):
        m(X, (torch.zeros(2, 3, 5), torch.zeros(2, 3, 5)))


@pytest.mark.parametrize("cls", [lstmkit.GRU, lstmkit.RNN])
def test_single_state_hx_shape(cls):
    m = cls(10, 20, bidirectional=True)
    with raises(ValueError, "h_0", "(1, 3, 20)", "(2, 3, 20)"):
        m(X, torch.zeros(1, 3, 20))
    with raises(ValueError, "h_0", "(2, 3, 20)", "(2, 20)"):
        m(X_UNBATCHED, torch.zeros(2, 3, 20))


def test_hx_wrong_structure():
    with raises(TypeError, "hx", "(h_0, c_0)", "Tensor"):
        lstmkit.LSTM(10, 20)(X, torch.zeros(1, 3, 20))
    with raises(TypeError, "hx", "h_0", "tuple"):
        lstmkit.GRU(10, 20)(X, (torch.zeros(1, 3, 20),))


# ---- constructor arguments ----------------------------------------------------------------


def test_unknown_variant_lists_the_known_ones():
    for make in (lambda: lstmkit.LSTM(10, 20, variant="lstn"), lambda: lstmkit.make_layer("lstn", 10, 20),
                 lambda: lstmkit.get_variant("lstn"), lambda: lstmkit.LSTMCell(10, 20, variant="lstn")):
        with raises(ValueError, "variant", "'lstn'", "peephole", "cifg"):
            make()
    with raises(ValueError, "'lstn'", *ALL_VARIANTS):
        lstmkit.get_variant("lstn")


@pytest.mark.parametrize("make, given, known", [
    (lambda: lstmkit.LSTM(10, 20, variant="gru"), "'gru'", LSTM_VARIANTS),
    (lambda: lstmkit.LSTMCell(10, 20, variant="rnn"), "'rnn'", LSTM_VARIANTS),
    (lambda: lstmkit.GRU(10, 20, variant="lstm"), "'lstm'", lstmkit.variants("gru")),
    (lambda: lstmkit.RNN(10, 20, variant="peephole"), "'peephole'", ["rnn"]),
    (lambda: lstmkit.GRUCell(10, 20, variant="cifg"), "'cifg'", lstmkit.variants("gru")),
], ids=["LSTM-gru", "LSTMCell-rnn", "GRU-lstm", "RNN-peephole", "GRUCell-cifg"])
def test_variant_of_the_wrong_family(make, given, known):
    with raises(ValueError, "variant", given, *known) as info:
        make()
    offered = str(info.value).split("expected one of:")[1]
    assert [v.strip() for v in offered.split(",")] == known  # only the right family is offered


@pytest.mark.parametrize("proj", [20, 25])
def test_proj_size_not_below_hidden_size(proj):
    with raises(ValueError, "proj_size", "hidden_size=20", f"proj_size={proj}"):
        lstmkit.LSTM(10, 20, proj_size=proj)
    with raises(ValueError, "proj_size", "hidden_size=20", f"proj_size={proj}"):
        lstmkit.LSTMCell(10, 20, proj_size=proj)


def test_negative_proj_size():
    with raises(ValueError, "proj_size", ">= 0", "-1"):
        lstmkit.LSTM(10, 20, proj_size=-1)


@pytest.mark.parametrize("cls, name", [(lstmkit.GRU, "GRU"), (lstmkit.RNN, "RNN")])
def test_proj_size_only_for_lstm(cls, name):
    with raises(ValueError, "proj_size", "LSTM", name, "proj_size=5"):
        cls(10, 20, proj_size=5)


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, "0.5", True])
def test_dropout_outside_range(value):
    with raises(ValueError, "dropout", "[0, 1)", repr(value)):
        lstmkit.LSTM(10, 20, num_layers=2, dropout=value)


@pytest.mark.parametrize("cls", [lstmkit.LSTM, lstmkit.GRU, lstmkit.RNN])
@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_recurrent_dropout_outside_range(cls, value):
    with raises(ValueError, "recurrent_dropout", "[0, 1)", repr(value)):
        cls(10, 20, recurrent_dropout=value)


@pytest.mark.parametrize("cls", [lstmkit.LSTM, lstmkit.GRU, lstmkit.RNN])
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_zoneout_outside_range(cls, value):
    with raises(ValueError, "zoneout", "[0, 1]", repr(value)):
        cls(10, 20, zoneout=value)


def test_zoneout_pair():
    with raises(ValueError, "zoneout", "[0, 1]", "2.0"):
        lstmkit.LSTM(10, 20, zoneout=(0.1, 2.0))
    with raises(ValueError, "zoneout", "pair", "(0.1,)"):
        lstmkit.LSTM(10, 20, zoneout=(0.1,))
    # the closed upper end is allowed: zoneout 1 keeps the initial state
    assert lstmkit.LSTM(10, 20, zoneout=1.0).zoneout[:2] == (1.0, 1.0)


def test_dropout_with_one_layer_warns():
    with pytest.warns(UserWarning, match="dropout=0.5.*num_layers=1"):
        lstmkit.LSTM(10, 20, dropout=0.5)


@pytest.mark.parametrize("name, kwargs", [
    ("hidden_size", dict(input_size=10, hidden_size=0)),
    ("input_size", dict(input_size=0, hidden_size=20)),
    ("num_layers", dict(input_size=10, hidden_size=20, num_layers=0)),
    ("hidden_size", dict(input_size=10, hidden_size=2.5)),
    ("num_layers", dict(input_size=10, hidden_size=20, num_layers=-3)),
])
@pytest.mark.parametrize("cls", [lstmkit.LSTM, lstmkit.GRU, lstmkit.RNN])
def test_sizes(cls, name, kwargs):
    with raises(ValueError, name, ">= 1", repr(kwargs[name])):
        cls(**kwargs)


@pytest.mark.parametrize("cls", [lstmkit.LSTMCell, lstmkit.GRUCell, lstmkit.RNNCell])
def test_cell_sizes(cls):
    with raises(ValueError, "hidden_size", ">= 1", "0"):
        cls(10, 0)


@pytest.mark.parametrize("flag", ["bias", "batch_first", "bidirectional"])
def test_bool_flags(flag):
    with raises(TypeError, flag, "bool", "int"):
        lstmkit.GRU(10, 20, **{flag: 1})


def test_unknown_nonlinearity():
    with raises(ValueError, "nonlinearity", "'tanh'", "'relu'", "'sigmoid'"):
        lstmkit.RNN(10, 20, nonlinearity="sigmoid")
    with raises(ValueError, "nonlinearity", "'tanh'", "'relu'", "'sigmoid'"):
        lstmkit.RNNCell(10, 20, nonlinearity="sigmoid")
    with raises(ValueError, "nonlinearity", "'tanh'", "'relu'", "'sigmoid'"):
        lstmkit.make_layer("rnn", 10, 20, nonlinearity="sigmoid")


@pytest.mark.parametrize("variant, peepholes, expected", [
    ("nig", ("i",), "('f', 'o')"),  # NIG computes no input gate
    ("nog", ("o",), "('i', 'f')"),
    ("nfg", ("f", "o"), "('i', 'o')"),
    ("cifg", ("f",), "('i', 'o')"),  # CIFG's f = 1 - i has no weights to peep with
])
def test_peephole_on_an_absent_gate(variant, peepholes, expected):
    absent = [g for g in peepholes if g not in expected]
    with raises(ValueError, "peepholes", str(absent), expected):
        lstmkit.LSTM(10, 20, variant=variant, peepholes=peepholes)
    with raises(ValueError, "peepholes", str(absent), expected):
        lstmkit.LSTMCell(10, 20, variant=variant, peepholes=peepholes)


@pytest.mark.parametrize("peepholes", [("x",), ("i", "g"), ("if",)])
def test_peephole_on_an_unknown_gate(peepholes):
    bad = [g for g in peepholes if g not in ("i", "f", "o")]
    with raises(ValueError, "peepholes", "('i', 'f', 'o')", str(bad)):
        lstmkit.LSTM(10, 20, peepholes=peepholes)


@pytest.mark.parametrize("variant", ["nig", "nfg"])
def test_cifg_needs_input_and_forget_gates(variant):
    with raises(ValueError, "cifg", "input", "forget gate"):
        lstmkit.LSTM(10, 20, variant=variant, cifg=True)


# ---- cells -------------------------------------------------------------------------------

CELLS = [
    pytest.param(lambda: lstmkit.LSTMCell(10, 20), id="LSTMCell"),
    pytest.param(lambda: lstmkit.GRUCell(10, 20), id="GRUCell"),
    pytest.param(lambda: lstmkit.RNNCell(10, 20), id="RNNCell"),
]


@pytest.mark.parametrize("make", CELLS)
def test_cell_input_wrong_shape(make):
    cell = make()
    with raises(ValueError, "input_size=10", "7"):
        cell(torch.randn(3, 7))
    with raises(ValueError, "input_size=10", "7"):
        cell(torch.randn(7))
    with raises(ValueError, "1-D", "2-D", "3-D"):
        cell(torch.randn(2, 3, 10))


def test_cell_hx_wrong_shape():
    with raises(ValueError, "hx[0]", "(3, 20)", "(2, 20)"):
        lstmkit.GRUCell(10, 20)(torch.randn(2, 10), torch.randn(3, 20))
    with raises(ValueError, "hx[1]", "(c)", "(1, 20)", "(20,)"):
        lstmkit.LSTMCell(10, 20)(torch.randn(10), (torch.randn(20), torch.randn(1, 20)))
    with raises(ValueError, "hx", "2 entries", "got 1"):
        lstmkit.LSTMCell(10, 20)(torch.randn(2, 10), (torch.randn(2, 20),))
    with raises(ValueError, "hx[0]", "(h)", "(2, 5)", "(2, 3)"):  # LSTMP: h has proj_size columns
        lstmkit.LSTMCell(10, 4, proj_size=3)(torch.randn(2, 10), (torch.randn(2, 5), torch.randn(2, 4)))


# ---- conversions -------------------------------------------------------------------------


def test_to_torch_names_what_torch_lacks():
    with raises(ValueError, "to_torch", "torch.nn has no equivalent", "peephole"):
        lstmkit.LSTM(10, 20, variant="peephole").to_torch()
    with raises(ValueError, "to_torch", "zoneout"):
        lstmkit.GRU(10, 20, zoneout=0.1).to_torch()


def test_from_torch_wrong_class():
    with raises(TypeError, "from_torch", "torch.nn.modules.rnn.LSTM", "GRU"):
        lstmkit.LSTM.from_torch(torch.nn.GRU(10, 20))


# ---- follow-ups from the review: every bad hx / dtype gets a named, typed error --------------

def test_lstm_hx_entry_not_a_tensor():
    m = lstmkit.LSTM(3, 4)
    with pytest.raises(TypeError, match=r"c_0 must be a Tensor; got NoneType"):
        m(torch.randn(5, 2, 3), (torch.zeros(1, 2, 4), None))


def test_hx_dtype_mismatch():
    m = lstmkit.GRU(3, 4)
    with pytest.raises(TypeError, match=r"h_0 has dtype torch.float64; expected the input's dtype torch.float32"):
        m(torch.randn(5, 2, 3), torch.zeros(1, 2, 4, dtype=torch.float64))


@pytest.mark.parametrize("cls", [lstmkit.LSTMCell, lstmkit.GRUCell, lstmkit.RNNCell])
def test_cell_input_dtype_mismatch(cls):
    cell = cls(3, 4)
    with pytest.raises(TypeError, match=r"input dtype torch.float64 differs from the parameters' dtype torch.float32"):
        cell(torch.randn(2, 3, dtype=torch.float64))


def test_gru_zoneout_pair_is_refused_without_mentioning_lstm():
    with pytest.raises(ValueError, match=r"zoneout must be a number \(the rate for h\); got \(0.1, 0.2\)"):
        lstmkit.GRU(3, 4, zoneout=(0.1, 0.2))


def test_cifg_on_a_variant_without_forget_gate_names_the_setting():
    with pytest.raises(ValueError, match=r"forget_gate=False"):
        lstmkit.LSTM(3, 4, variant="nfg", cifg=True)
