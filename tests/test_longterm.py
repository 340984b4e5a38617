"""The long-time-lag suite: generators against their definitions, criteria on hand-made outputs,
the stop-when-solved hook, tiny CLI runs, `lstmkit gradflow`, and bad input."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
import lstmkit

from cli_helpers import run_cli
from conftest import FP64
from lstmkit.data import longterm as gen
from lstmkit.tasks import get_task
from lstmkit.tasks.longterm import Batch, _reber_step_ok
from lstmkit.train.config import from_preset

pytestmark = pytest.mark.usefixtures("single_thread")

RNG = lambda i=0: gen.rng_for(7, gen.TRAIN, i)  # noqa: E731


# ---- Exp. 1: embedded Reber ----------------------------------------------------------------------

def test_reber_grammar_by_hand():
    assert gen.is_embedded_reber("BTBTXSETE")  # T branch, shortest inner path T X S
    assert gen.is_embedded_reber("BPBPVVEPE")
    assert gen.is_embedded_reber("BTBTSSXXTVPSETE")
    assert not gen.is_embedded_reber("BTBTXSEPE")  # the branch is not repeated: the long-term dependency
    assert not gen.is_embedded_reber("BTBTXSET")  # unfinished
    assert not gen.is_embedded_reber("BTBTXXETE")  # X X then E is not a path of the inner grammar
    legal = gen.reber_legal_next("BTBTXSETE")
    assert legal == ["PT", "B", "PT", "SX", "SX", "E", "T", "E", ""]


def test_generated_reber_strings_are_in_the_grammar():
    strings = [gen.embedded_reber(RNG(i)) for i in range(300)]
    assert all(gen.is_embedded_reber(s) for s in strings)
    assert all(len(s) >= 9 and s[1] == s[-2] and s[1] in "TP" for s in strings)
    assert {s[1] for s in strings} == {"T", "P"}
    x, target, mask, strs = gen.reber_batch(RNG(), 16)
    for b, s in enumerate(strs):
        assert "".join(gen.REBER_SYMBOLS[i] for i in x[:len(s), b].argmax(-1)) == s
        assert not x[len(s):, b].any()
        for t, nxt in enumerate(gen.reber_legal_next(s)):
            assert "".join(c for c, v in zip(gen.REBER_SYMBOLS, target[t, b]) if v) == "".join(
                sorted(nxt, key=gen.REBER_SYMBOLS.index))
            assert mask[t, b] == bool(nxt)


def test_continual_reber_stream():
    x, target, mask, strings = gen.continual_reber(RNG(), 5)
    stream = "".join(strings)
    assert x.shape[:2] == (len(stream), 1)
    ends = np.cumsum([len(s) for s in strings]) - 1  # positions of each string's final E
    for e in ends[:-1]:
        assert target[e, 0].tolist() == [1, 0, 0, 0, 0, 0, 0]  # after an E comes the next string's B
        assert mask[e, 0]
    assert not mask[ends[-1], 0]


# ---- Exp. 4 and 5 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("T", [10, 100])
def test_adding_matches_definition(T):
    x, y, lengths = gen.adding_batch(RNG(), 400, T)
    assert ((lengths >= T) & (lengths <= T + T // 10)).all()
    for b in range(400):
        L = lengths[b]
        v, m = x[:L, b, 0], x[:L, b, 1]
        marked = np.nonzero(m == 1.0)[0]
        assert len(marked) == 2
        lim = max(T // 2 - 1, 2)  # X1 among the first ten, X2 among the first T/2 - 1 (either may come first)
        assert (marked[0] < 10 and marked[1] < lim) or (marked[1] < 10 and marked[0] < lim)
        assert set(np.unique(m)) <= {-1.0, 0.0, 1.0}
        if marked[0] == 0:
            assert v[0] == 0.0  # the paper's rare case: the first pair marked, X1 = 0
        # the first and the last pair have marker -1, unless marked (with T = 10, the last may be)
        assert set(np.nonzero(m == -1.0)[0]) == {0, L - 1} - set(marked.tolist())
        assert ((v >= -1) & (v <= 1)).all() and not x[L:, b].any()
        assert y[b] == pytest.approx(0.5 + v[marked].sum() / 4, abs=1e-6)
    assert (x[0, :, 1] == 1.0).any()  # the rare case occurred in 400 sequences (p = 1 - 0.9^400)


def test_multiplication_matches_definition():
    x, y, lengths = gen.multiplication_batch(RNG(), 300, 20)
    for b in range(300):
        v, m = x[:lengths[b], b, 0], x[:lengths[b], b, 1]
        marked = np.nonzero(m == 1.0)[0]
        assert ((v >= 0) & (v <= 1)).all()
        if marked[0] == 0:
            assert v[0] == 1.0  # the paper's rare case
        assert y[b] == pytest.approx(v[marked].prod(), abs=1e-6)


def test_fixed_length_adding_for_measurements():
    x, y, lengths = gen.adding_batch(RNG(), 50, 30, jitter=False)
    assert (lengths == 30).all() and x.shape[0] == 30 and (x[29, :, 1] == -1).all()


# ---- Exp. 6 ----------------------------------------------------------------------------------------

def test_temporal_order_class_mapping():
    assert [gen.temporal_order_class(s) for s in ("XX", "XY", "YX", "YY")] == [0, 1, 2, 3]
    assert [gen.temporal_order_class(s) for s in ("XXX", "XXY", "YXX", "YYY")] == [0, 1, 4, 7]


@pytest.mark.parametrize("symbols", [2, 3])
def test_temporal_order_matches_definition(symbols):
    x, y, lengths = gen.temporal_order_batch(RNG(), 200, symbols, 100)
    assert x.shape[-1] == 8 and ((lengths >= 100) & (lengths <= 110)).all()
    ranges = {2: [(10, 20), (50, 60)], 3: [(10, 20), (33, 43), (66, 76)]}[symbols]
    for b in range(200):
        seq = "".join(gen.TEMPORAL_SYMBOLS[i] for i in x[:lengths[b], b].argmax(-1))
        assert seq[0] == "E" and seq[-1] == "B" and set(seq[1:-1]) <= set("abcdXY")
        pos = [t for t, c in enumerate(seq) if c in "XY"]
        assert len(pos) == symbols and all(lo <= p <= hi for p, (lo, hi) in zip(pos, ranges))
        assert y[b] == gen.temporal_order_class("".join(seq[p] for p in pos))
    assert set(y.tolist()) == set(range(2 ** symbols))


# ---- Exp. 2 and copy -------------------------------------------------------------------------------

def test_lag_2a_2b_2c_match_definition():
    p = 6
    x, target, lengths = gen.lag_batch(RNG(), 20, "2a", p)
    assert x.shape == (p, 20, p + 1) and (lengths == p).all()
    for b in range(20):
        seq = x[:, b].argmax(-1).tolist() + [int(target[-1, b])]
        assert seq[0] == seq[-1] and seq[0] in (p - 1, p) and seq[1:-1] == list(range(p - 1))
        assert target[:, b].tolist() == seq[1:]
    x, first, lengths = gen.lag_batch(RNG(), 20, "2b", p)
    assert (x[0].argmax(-1) == np.where(first == 0, p - 1, p)).all() and (x[1:, :, p - 1:].sum() == 0)
    q, d = 20, 5
    x, first, lengths = gen.lag_batch(RNG(), 50, "2c", q, d)
    assert ((lengths >= q + 3) & (lengths <= q + 3 + q // 10)).all() and x.shape[-1] == d + 4
    for b in range(50):
        seq = x[:lengths[b], b].argmax(-1)
        assert seq[0] == d and seq[1] == d + 2 + first[b] and seq[-1] == d + 1  # b, x/y, ..., e
        assert (seq[2:-1] < d).all()


def test_copy_matches_definition():
    T, n = 15, 8
    x, y = gen.copy_batch(RNG(), n, T, 10)
    assert x.shape == (T + 20, n, 10) and y.shape == (T + 20, n)
    sym = x.argmax(-1)
    assert ((sym[:10] >= 1) & (sym[:10] <= 8)).all()
    assert (sym[10:T + 9] == 0).all() and (sym[T + 9] == 9).all() and (sym[T + 10:] == 0).all()
    assert (y[:T + 10] == 0).all() and (y[T + 10:] == sym[:10]).all()


# ---- determinism -----------------------------------------------------------------------------------

def test_generators_are_deterministic_per_seed_and_index():
    a = gen.adding_batch(gen.rng_for(3, gen.TRAIN, 5), 8, 20)
    b = gen.adding_batch(gen.rng_for(3, gen.TRAIN, 5), 8, 20)
    c = gen.adding_batch(gen.rng_for(3, gen.TRAIN, 6), 8, 20)
    d = gen.adding_batch(gen.rng_for(3, gen.VALID, 5), 8, 20)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[1], c[1]) and not np.array_equal(a[1], d[1])


@pytest.mark.parametrize("task", ["adding", "multiplication", "temporal-order", "lag", "reber", "continual-reber",
                                  "copy"])
def test_task_batches_are_indexed_and_deterministic(task):
    t = get_task(task)
    cfg = from_preset(t.default_preset)
    cfg.train.batch_size = 4
    opts = cfg.options
    for name, small in (("T", 12), ("lag", 8), ("distractors", 4), ("strings", 3)):
        if hasattr(opts, name):
            setattr(opts, name, small)
    b1, b2 = t.batches(cfg, None), t.batches(cfg, None)
    assert len(b1) == -(-opts.budget // (4 * t.units_per_sequence(opts)))
    for i in (0, 3):
        assert all(torch.equal(u, v) for u, v in zip(b1[i], b2[i]) if u is not None)
    assert not torch.equal(b1[0].x, b1[1].x) or not torch.equal(b1[0].target, b1[1].target)
    # a model built from the config reads the batch
    model = t.build_model(cfg, None)
    out = t.loss_fn(cfg)(model, b1[0], None)
    assert torch.isfinite(out.loss) and out.count == 4 * t.units_per_sequence(opts)


# ---- criteria on hand-made outputs -------------------------------------------------------------------

def test_adding_criterion():
    t = get_task("adding")
    target = torch.tensor([0.5, 0.2, 0.9, 0.7])
    b = Batch(torch.zeros(3, 4, 2), target, torch.full((4,), 3))
    y = (target + torch.tensor([0.039, -0.039, 0.041, -0.0405]))[:, None]
    assert t.errors(y, b, None) == (2, 4)


def test_multiplication_allows_max_wrong():
    t = get_task("multiplication")
    cfg = from_preset(t.default_preset)
    assert t.allowed_wrong(cfg.options) == 140 and get_task("adding").allowed_wrong(cfg.options) == 0


def test_temporal_order_criterion_is_the_papers_absolute_error():
    t = get_task("temporal-order")
    # probabilities of the right class 0.71 (every output within 0.3 of one-hot) and 0.69 (not)
    p = torch.tensor([[0.71, 0.1, 0.1, 0.09], [0.1, 0.69, 0.11, 0.1], [0.05, 0.05, 0.05, 0.85]])
    b = Batch(torch.zeros(2, 3, 8), torch.tensor([0, 1, 2]), torch.full((3,), 2))
    assert t.errors(p.log(), b, None) == (2, 3)  # the third is confidently wrong


def test_reber_criterion_on_hand_made_outputs():
    # two steps, one string: legal sets {T, P} and {B}
    target = torch.zeros(2, 1, 7)
    target[0, 0, [1, 2]] = 1
    target[1, 0, 0] = 1
    mask = torch.ones(2, 1, dtype=torch.bool)
    b = Batch(torch.zeros(2, 1, 7), target, torch.tensor([2]), mask)
    good = torch.tensor([[[0.0, 2, 1.5, 1, 0, 0, 0]], [[3.0, 0, 0, 0, 0, 0, 2.9]]])
    assert _reber_step_ok(good, b).all()
    bad = good.clone()
    bad[0, 0, 3] = 1.6  # S above the weaker legal symbol P
    assert _reber_step_ok(bad, b).tolist() == [[False], [True]]
    t = get_task("reber")
    assert t.errors(good, b, None) == (0, 1) and t.errors(bad, b, None) == (1, 1)
    masked = Batch(b.x, b.target, b.lengths, torch.tensor([[False], [True]]))
    assert t.errors(bad, masked, None) == (0, 1)  # an unscored step does not count


def test_continual_reber_counts_wrong_strings():
    t = get_task("continual-reber")
    x, target, mask, strings = gen.continual_reber(RNG(), 4)
    seg = torch.from_numpy(np.repeat(np.arange(4), [len(s) for s in strings])[:, None])
    b = Batch(torch.from_numpy(x), torch.from_numpy(target), torch.tensor([x.shape[0]]), torch.from_numpy(mask), seg)
    y = torch.from_numpy(target) * 2 - 1  # legal symbols above all others: perfect
    assert t.errors(y, b, None) == (0, 4)
    start2 = len(strings[0]) + len(strings[1])
    y[start2 + 1] = -y[start2 + 1]  # one wrong step in the third string
    y[start2 + 2] = -y[start2 + 2]  # and another in the same string
    assert t.errors(y, b, None) == (1, 4)


def test_copy_criterion_scores_only_the_recall():
    t = get_task("copy")
    x, yt = gen.copy_batch(RNG(), 2, 5, 3)
    b = t.make(RNG(), 2, type("O", (), {"T": 5, "copy_length": 3})())
    logits = torch.nn.functional.one_hot(b.target, 10).float()
    assert t.errors(logits, b, None) == (0, 2)
    logits[0, 1] = 0  # a blank step wrong: not scored
    assert t.errors(logits, b, None) == (0, 2)
    logits[-1, 1] = torch.roll(logits[-1, 1], 1)  # the last recalled symbol of sequence 1 wrong
    assert t.errors(logits, b, None) == (1, 2)


# ---- the stop hook, and runs through the CLI ---------------------------------------------------------

def test_trainer_stop_fn_stops_with_its_reason():
    from lstmkit.train.config import TrainConfig
    from lstmkit.train.trainer import StepOutput, Trainer
    model = torch.nn.Linear(1, 1)
    batches = [torch.ones(1, 1)] * 10

    def loss_fn(m, batch, carry):
        loss = m(batch).pow(2).mean()
        return StepOutput(loss, loss.item(), 1)
    tr = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), TrainConfig(epochs=3), batches, loss_fn,
                 stop_fn=lambda trainer: "solved" if trainer.state.step >= 4 else None)
    assert tr.fit() == "solved" and tr.state.step == 4
    tr = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), TrainConfig(epochs=1), batches, loss_fn,
                 stop_fn=lambda trainer: "budget" if trainer.state.epoch >= 1 else None)
    assert tr.fit() == "budget" and tr.state.step == 10  # asked at the epoch boundary, before "epochs"
    # a criterion met by the final validation (after max steps) becomes the reason
    tr = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), TrainConfig(epochs=0, max_steps=3), batches,
                 loss_fn, evaluate_fn=lambda m, poll: 0.0,
                 stop_fn=lambda trainer: "solved" if trainer.state.last_eval_step == 3 else None)
    assert tr.fit() == "solved" and tr.state.step == 3


TINY = ["--hidden", "8", "--batch-size", "32", "--eval-every", "5", "--valid-size", "64", "--test-size", "64",
        "--log-every", "5"]


def test_tiny_adding_run_through_the_cli(tmp_path, capsys):
    rc, out, err = run_cli("train", "adding", "--T", "10", "--budget", "640", *TINY, "--out", tmp_path / "run",
                           capsys=capsys)
    assert rc == 0, err
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["stopped"] in ("budget", "solved") and s["tokens"] <= 640 and s["test_size"] == 64
    assert 0 <= s["test_errors"] <= 64 and s["valid_size"] == 64
    assert "validation:" in out and "test:" in out
    assert " seq/s " in out and "tok/s" not in out  # the rate counts this task's unit, sequences
    if s["stopped"] == "budget":
        assert s["tokens"] == 640 and "solved" not in out and "criterion not met" in out
    # resuming from a step-10 checkpoint ends exactly where the uninterrupted run ended
    assert run_cli("train", "adding", "--T", "10", "--budget", "640", *TINY, "--max-steps", "10",
                   "--out", tmp_path / "half", capsys=capsys)[0] == 0
    assert run_cli("train", "adding", "--out", tmp_path / "half", "--resume", "--max-steps", "20",
                   capsys=capsys)[0] == 0
    h = json.loads((tmp_path / "half" / "summary.json").read_text())
    assert h["steps"] == s["steps"] and h["valid_loss"] == s["valid_loss"] and h["test_loss"] == s["test_loss"]


@pytest.mark.parametrize("task, opts", [
    ("multiplication", ["--T", "10"]), ("temporal-order", ["--T", "10", "--symbols", "3"]),
    ("lag", ["--experiment", "2a", "--lag", "5"]), ("lag", ["--experiment", "2b", "--lag", "5"]),
    ("lag", ["--experiment", "2c", "--lag", "5", "--distractors", "3"]), ("reber", []),
    ("continual-reber", ["--strings", "2"]), ("copy", ["--T", "5", "--copy-length", "3"])])
def test_every_task_trains_and_reports(tmp_path, capsys, task, opts):
    rc, out, err = run_cli("train", task, *opts, "--budget", "64", "--hidden", "4", "--batch-size", "16",
                           "--eval-every", "2", "--valid-size", "16", "--test-size", "20", "--out", tmp_path / "r",
                           capsys=capsys)
    assert rc == 0, err
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["test_size"] == 20 and 0 <= s["test_errors"] <= 20 and s["valid_size"] == 16
    assert s["stopped"] in ("solved", "budget") and ("solved after" in out) == s["solved"]


def test_solved_run_prints_solved_with_the_sequence_count(tmp_path, capsys):
    # max_wrong = the whole validation set: the criterion holds at the first validation (step 5)
    rc, out, err = run_cli("train", "multiplication", "--T", "10", "--max-wrong", "64", "--budget", "3200", *TINY,
                           "--out", tmp_path / "run", capsys=capsys)
    assert rc == 0, err
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["stopped"] == "solved" and s["solved"] and s["sequences_to_solve"] == 5 * 32 and s["steps"] == 5
    assert "solved after 160 training sequences" in out and "done (solved)" in out


# ---- gradient flow -----------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "fgr"])
def test_gradient_flow_matches_autograd_through_the_layer(cell):
    from lstmkit.inspect.gradflow import adding_sequences, gradient_flow
    from lstmkit.models.longterm import LongTermNet
    torch.manual_seed(0)
    net = LongTermNet(cell, 2, 6, 1)
    x, target = adding_sequences(5, 12, seed=0)
    g = gradient_flow(net, x, target)
    ref = net.double()
    xx = x.clone().requires_grad_(True)
    y = ref(xx)[:, 0]
    ((y - target) ** 2).sum().backward()
    assert np.allclose(g["grad_x"], xx.grad.norm(dim=-1).mean(1).flip(0).tolist(), **{"rtol": FP64["rtol"],
                                                                                       "atol": FP64["atol"]})
    # at lag 0, dL_b/dh_T = 2 (y_b - target_b) w_head
    lag0 = (2 * (y - target).abs() * ref.head.weight.norm()).mean().item()
    assert g["grad_h"][0] == pytest.approx(lag0, rel=1e-10)
    assert (g["grad_c"] is not None) == (cell in ("lstm", "fgr"))


def test_gradflow_cli_writes_csv_and_png(tmp_path, capsys):
    rc, out, err = run_cli("gradflow", "--cells", "rnn,lstm", "--T", "20", "--hidden", "32", "--batch", "4",
                           "--train-steps", "3", "--explode-steps", "10", "--out", tmp_path / "gf", capsys=capsys)
    assert rc == 0, err
    d = tmp_path / "gf"
    for f in ("gradflow.csv", "gradflow.png", "exploding.csv", "exploding.png", "summary.json"):
        assert (d / f).is_file() and (d / f).stat().st_size > 0
    rows = list(csv.DictReader(open(d / "gradflow.csv")))
    assert len(rows) == 2 * 2 * 20
    rnn = {int(r["lag"]): float(r["grad_h"]) for r in rows if r["cell"] == "rnn" and r["stage"] == "init"}
    assert rnn[19] < 1e-2 * rnn[0]  # a tanh RNN at initialisation: the gradient vanishes with the lag
    assert all(r["grad_c"] for r in rows if r["cell"] == "lstm") and not any(r["grad_c"] for r in rows
                                                                               if r["cell"] == "rnn")
    s = json.loads((d / "summary.json").read_text())
    assert s["exploding"]["factor_per_step"] > 1  # large recurrent weights: it grows with the lag
    # SGD without clipping blows up (loss 1e6 here); clipped at 1, every update is bounded and it does not
    assert s["exploding"]["no_clip"]["max_loss"] > 100 * s["exploding"]["clip_1"]["max_loss"]


# ---- bad input ---------------------------------------------------------------------------------------

def _usage_error(result, *needles):
    rc, out, err = result
    lines = err.strip().splitlines()
    assert rc == 2, (rc, out, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.mark.parametrize("args, needle", [
    (["adding", "--symbols", "3"], "--symbols is an option of temporal-order, not of adding"),
    (["adding", "--T", "5"], "--T must be >= 10"),
    (["temporal-order", "--T", "9"], "--T must be >= 10"),
    (["temporal-order", "--symbols", "4"], "unknown symbols 4; expected one of: 2, 3"),
    (["lag", "--experiment", "2d"], "unknown experiment '2d'"),
    (["lag", "--experiment", "2a", "--lag", "1"], "--lag must be >= 2"),
    (["copy", "--T", "0"], "copy needs --T >= 1"),
    (["multiplication", "--max-wrong", "-1"], "--max-wrong must be >= 0"),
    (["adding", "--budget", "0"], "--budget must be >= 1"),
    (["reber", "--test-size", "0"], "--test-size must be >= 1"),
    (["adding", "--data", "x.txt"], "--data is not used"),
    (["adding", "--bidirectional"], "--bidirectional is not valid for adding"),
    (["adding", "--cell", "lstmm"], "unknown cell 'lstmm'"),
    (["continual-reber", "--strings", "0"], "--strings must be >= 1"),
    (["adding", "--chrono", "2"], "--chrono must be 0 (off) or a T_max >= 3; got 2"),
])
def test_bad_train_input(tmp_path, capsys, args, needle):
    out = tmp_path / "run"
    _usage_error(run_cli("train", *args, "--out", out, capsys=capsys), needle)
    assert not out.exists()


@pytest.mark.parametrize("args, needle", [
    (["--cells", "rnn,foo"], "unknown cell 'foo' in --cells"),
    (["--cells", ","], "--cells is empty"),
    (["--T", "5"], "--T must be >= 10"),
    (["--hidden", "0"], "--hidden must be >= 1"),
    (["--lr", "-1"], "--lr must be a positive number"),
])
def test_bad_gradflow_input(tmp_path, capsys, args, needle):
    _usage_error(run_cli("gradflow", *args, "--out", tmp_path / "gf", capsys=capsys), needle)
    assert not (tmp_path / "gf").exists()


def test_gradflow_refuses_a_non_empty_out(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    _usage_error(run_cli("gradflow", "--out", tmp_path, capsys=capsys), "already exists and is not empty")
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_forget_bias_reaches_every_cell_with_forget_gates():
    """The long-lag presets' forget bias reaches the LSTM family and the grid LSTM alike: the
    network's layer equals the layer built directly with that forget bias (same seed)."""
    from lstmkit.models.longterm import LongTermNet
    for cell in ("lstm", "peephole", "grid"):
        torch.manual_seed(0)
        net = LongTermNet(cell, 2, 8, 1, forget_bias=5.0)
        torch.manual_seed(0)
        direct = lstmkit.make_layer(cell, 2, 8, forget_bias=5.0)
        torch.manual_seed(0)
        default = lstmkit.make_layer(cell, 2, 8)
        got = dict(net.rnn.named_parameters())
        assert all(torch.equal(got[n], p) for n, p in direct.named_parameters()), cell
        assert any(not torch.equal(got[n], p) for n, p in default.named_parameters()), cell


@pytest.mark.parametrize("cell", ["lstm", "cifg", "nig", "peephole"])
def test_chrono_init_sets_forget_and_input_biases(cell):
    """Tallec & Ollivier 2018: b_f = log U(1, T_max - 1) per unit in every layer-direction, input
    biases -b_f (a coupled input gate too), the bias_hh rows 0, everything else untouched."""
    from lstmkit.layers.params import chrono_init
    torch.manual_seed(0)
    m = lstmkit.make_layer(cell, 3, 6, num_layers=2, bidirectional=True)
    before = {n: p.clone() for n, p in m.named_parameters()}
    chrono_init(m, 100)
    gates, H = m.spec.gates, 6
    rows = {g: slice(k * H, (k + 1) * H) for k, g in enumerate(gates)}
    for name, p in m.named_parameters():
        changed = [g for g in ("f", "i") if g in rows]
        if name.startswith("bias_ih"):
            bf = p[rows["f"]] if "f" in rows else -p[rows["i"]]
            assert ((bf >= 0) & (bf <= math.log(99) + 1e-6)).all() and bf.std() > 0
            if "i" in rows and "f" in rows:
                assert torch.equal(p[rows["i"]], -p[rows["f"]])
        elif name.startswith("bias_hh"):
            assert all((p[rows[g]] == 0).all() for g in changed)
        else:
            assert torch.equal(p, before[name]), name
    with pytest.raises(ValueError, match="t_max must be >= 3"):
        chrono_init(m, 2)


def test_chrono_init_leaves_gru_alone_and_reaches_the_task_net():
    from lstmkit.layers.params import chrono_init
    from lstmkit.models.longterm import LongTermNet
    g = lstmkit.make_layer("gru", 3, 6)
    before = {n: p.clone() for n, p in g.named_parameters()}
    chrono_init(g, 100)
    assert all(torch.equal(p, before[n]) for n, p in g.named_parameters())
    net = LongTermNet("lstm", 2, 8, 1, chrono=50)
    b = net.rnn.bias_ih_l0
    assert torch.equal(b[:8], -b[8:16]) and (b[8:16] > 0).all()  # i = -f, f in (0, log 49]
