"""The engine under per-step noise and threading: recurrent dropout, zoneout and the unit-split threads.

Each against the reference loop it mirrors (the layer loop draws the masks on either path, so one
seed gives both the same masks), and float64 gradcheck with the masks fixed by reseeding.
"""
from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from test_engine import _inputs, _make, _run, assert_close_scaled, engine_calls, ext  # noqa: F401  (fixtures)


@pytest.fixture
def two_threads():
    """Two threads for the test (the unit and batch splits need them), then the old count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def _bidirectional_inputs(m, T, B, gen):
    """(x, lengths, hx, weight) for a one-layer bidirectional module: B sequences of unequal lengths
    (the longest T, sorted for packing), random initial states and a loss weight per output."""
    width = m.proj_size or m.hidden_size
    x = torch.randn(T, B, m.input_size, generator=gen)
    lengths = torch.sort(torch.randint(1, T + 1, (B,), generator=gen), descending=True).values
    lengths[0] = T
    hx = [torch.randn(2, B, width, generator=gen)]
    if m.spec.family == "lstm":
        hx.append(torch.randn(2, B, m.hidden_size, generator=gen))
    weight = torch.randn(int(lengths.sum()) * 2 * width, generator=gen)
    return x, lengths, hx, weight


def _both_paths(m, x, hx, lengths, weight, monkeypatch, engine_calls, seed, directions):
    """(reference, engine) results of `_run` from the same seed, so both paths draw the same masks;
    checks that the engine ran every layer-direction and that the two agree."""
    def run(engine_on):
        monkeypatch.setenv("LSTMKIT_ENGINE", "1" if engine_on else "0")
        torch.manual_seed(seed)
        return _run(m, x, hx, lengths, weight)

    ref = run(False)
    engine_calls.clear()
    got = run(True)
    assert len(engine_calls) == directions, "every layer-direction must run on the engine"
    for name in ref:
        assert_close_scaled(got[name], ref[name], name)
    return ref, got


# Recurrent dropout (Gal & Ghahramani): one mask per sequence on h_{t-1} where it enters W_hh.
# The layer loop draws the masks on either path, so the same seed gives both paths the same masks.
DROPOUT_CASES = [("lstm", {}), ("peephole", {"proj_size": 3}), ("cifg", {}), ("nog", {}), ("lstm", {"layer_norm": True}),
                 ("gru", {}), ("gru", {"reset_after": False}), ("rnn", {}), ("rnn", {"nonlinearity": "relu"}),
                 ("fgr", {}), ("fgr", {"proj_size": 3}), ("fgr", {"layer_norm": True}), ("rnn", {"layer_norm": True}),
                 ("gru", {"layer_norm": True}), ("gru", {"layer_norm": True, "reset_after": False})]


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("variant,cfg", DROPOUT_CASES)
def test_recurrent_dropout_engine_matches_reference(ext, engine_calls, monkeypatch, gen, variant, cfg, packed):
    m = _make(variant, dict(cfg, recurrent_dropout=0.4, num_layers=2, bidirectional=True), torch.float32, gen).train()
    x, hx, lengths = _inputs(m, 6, 4, torch.float32, gen, packed)
    weight = torch.randn(6 * 4 * 2 * 19, generator=gen)
    _, got = _both_paths(m, x, hx, lengths, weight, monkeypatch, engine_calls, seed=7, directions=4)
    torch.manual_seed(8)  # and the masks really are applied: other masks, other outputs
    assert not torch.allclose(_run(m, x, hx, lengths, weight)["out"], got["out"])


# Zoneout (Krueger et al.): per row and unit, keep h_{t-1} / C_{t-1} (bool masks in training, the
# rate as a weight in eval). The layer loop draws the masks, so one seed gives both paths the same.
ZONEOUT_CASES = [("lstm", {"zoneout": 0.3}), ("peephole", {"zoneout": (0.2, 0.5), "proj_size": 3}),
                 ("cifg", {"zoneout": (0.0, 0.4)}), ("lstm", {"zoneout": (0.3, 0.0), "recurrent_dropout": 0.2}),
                 ("gru", {"zoneout": 0.3}), ("gru", {"zoneout": 0.3, "reset_after": False, "recurrent_dropout": 0.2}),
                 ("rnn", {"zoneout": 0.3}), ("rnn", {"zoneout": 0.3, "nonlinearity": "relu", "recurrent_dropout": 0.2}),
                 ("peephole", {"zoneout": (0.2, 0.4), "layer_norm": True, "proj_size": 3}),
                 ("fgr", {"zoneout": (0.3, 0.2)}), ("fgr", {"zoneout": 0.3, "proj_size": 3, "recurrent_dropout": 0.2}),
                 ("fgr", {"zoneout": 0.3, "layer_norm": True}), ("rnn", {"zoneout": 0.3, "layer_norm": True}),
                 ("gru", {"zoneout": 0.3, "layer_norm": True, "recurrent_dropout": 0.2}),
                 ("gru", {"zoneout": 0.3, "layer_norm": True, "reset_after": False, "recurrent_dropout": 0.2})]


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("variant,cfg", ZONEOUT_CASES)
def test_zoneout_engine_matches_reference(ext, engine_calls, monkeypatch, gen, variant, cfg, mode):
    m = _make(variant, dict(cfg, num_layers=2, bidirectional=True), torch.float32, gen)
    m.train(mode == "train")
    x, hx, lengths = _inputs(m, 6, 4, torch.float32, gen, packed=True)
    weight = torch.randn(6 * 4 * 2 * 19, generator=gen)
    _both_paths(m, x, hx, lengths, weight, monkeypatch, engine_calls, seed=5, directions=4)


# float64 gradcheck of the engine's backward with per-step noise; the masks are fixed by
# reseeding on every call.
MASKED_GRADCHECK_CASES = [
    ("lstm", {"proj_size": 2, "recurrent_dropout": 0.5}), ("cifg", {"recurrent_dropout": 0.5}),
    ("gru", {"recurrent_dropout": 0.5}), ("gru", {"reset_after": False, "recurrent_dropout": 0.5}),
    ("rnn", {"recurrent_dropout": 0.5}),
    ("lstm", {"proj_size": 2, "zoneout": (0.3, 0.5)}), ("peephole", {"zoneout": 0.4}), ("gru", {"zoneout": 0.4}),
    ("lstm", {"layer_norm": True, "zoneout": (0.3, 0.5), "recurrent_dropout": 0.5}),
    ("gru", {"zoneout": 0.4, "reset_after": False}), ("rnn", {"zoneout": 0.4}),
    ("fgr", {"recurrent_dropout": 0.5}), ("fgr", {"proj_size": 2, "zoneout": (0.3, 0.5), "recurrent_dropout": 0.5}),
    ("fgr", {"layer_norm": True, "zoneout": 0.3, "recurrent_dropout": 0.5}),
    ("rnn", {"layer_norm": True, "zoneout": 0.3, "recurrent_dropout": 0.5}),
    ("gru", {"layer_norm": True, "zoneout": 0.3, "recurrent_dropout": 0.5}),
    ("gru", {"layer_norm": True, "reset_after": False, "zoneout": 0.3, "recurrent_dropout": 0.5}),
]


@pytest.mark.parametrize("variant,cfg", MASKED_GRADCHECK_CASES)
def test_gradcheck_with_masks_through_engine(ext, engine_calls, monkeypatch, gen, variant, cfg):
    monkeypatch.setenv("LSTMKIT_ENGINE", "1")
    m = _make(variant, cfg, torch.float64, gen, input_size=3, hidden_size=5).train()
    x, hx, lengths = _inputs(m, 4, 3, torch.float64, gen, packed=True)
    names = [n for n, _ in m.named_parameters()]

    def f(x, *tensors):
        torch.manual_seed(0)
        hs, params = tensors[:len(hx)], dict(zip(names, tensors[len(hx):]))
        state = tuple(hs) if len(hs) == 2 else hs[0]
        out, st = torch.func.functional_call(m, params, (pack_padded_sequence(x, lengths), state))
        return (out.data, *(st if isinstance(st, tuple) else (st,)))

    inputs = [t.clone().requires_grad_(True) for t in [x, *hx, *(p.detach() for p in m.parameters())]]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)
    assert engine_calls, "the engine did not run"


@pytest.mark.parametrize("variant,dropout,extra", [(v, d, {}) for v in ("lstm", "peephole", "cifg", "nog", "gru")
                                                   for d in (0.0, 0.3)]
                         + [("fgr", 0.0, {}), ("fgr", 0.3, {}), ("gru", 0.0, {"reset_after": False, "hidden_size": 192}),
                            ("gru", 0.0, {"reset_after": False, "layer_norm": True, "hidden_size": 192}), ("lstm", 0.3, {"layer_norm": True}), ("noaf", 0.0, {"layer_norm": True}),
                            ("nog", 0.0, {"layer_norm": True})])
@pytest.mark.parametrize("B", [12, 36], ids=["units", "batch"])
def test_unit_split_threads_match_reference(ext, two_threads, engine_calls, monkeypatch, gen, variant, dropout, extra,
                                            B):
    """Float32 steps of at least 0.25 MFLOP on the panel kernel run on two threads: with H in whole
    panels and B = 12, each owns some hidden units (forward_split / backward_split in
    csrc/lstm_split.h and csrc/gru_split.h); with B = 36 (at least two row blocks per thread) the
    batch splits instead (batch_split in csrc/panels.h). Unequal lengths in both directions, training and
    no_grad, against the reference loop."""
    # Cho's GRU splits from 3 panels per thread (unit_split_threads in csrc/panels.h): H = 192.
    H = extra.get("hidden_size", 64)
    cfg = {k: v for k, v in extra.items() if k != "hidden_size"}
    m = _make(variant, dict(bidirectional=True, recurrent_dropout=dropout, **cfg), torch.float32, gen,
              input_size=5, hidden_size=H).train()
    with torch.no_grad():  # moderate weights: randn * 0.5 would saturate every gate at H = 64
        for p in m.parameters():
            p.mul_(0.2 * (64 / H) ** 0.5)
    x, lengths, hx, weight = _bidirectional_inputs(m, 6, B, gen)  # 2·12·256·64 = 0.4 MFLOP per full step at H = 64

    _both_paths(m, x, hx, lengths, weight, monkeypatch, engine_calls, seed=3, directions=2)
    m.eval()
    monkeypatch.setenv("LSTMKIT_ENGINE", "1")
    state = tuple(hx) if len(hx) == 2 else hx[0]
    with torch.no_grad():
        out, _ = m(pack_padded_sequence(x, lengths), state)
    monkeypatch.setenv("LSTMKIT_ENGINE", "0")
    with torch.no_grad():
        ref_out, _ = m(pack_padded_sequence(x, lengths), state)
    assert_close_scaled(out.data, ref_out.data, "no_grad out")


@pytest.mark.parametrize("variant", ["lstm", "peephole"])
def test_unit_split_threads_with_projection_match_reference(ext, two_threads, engine_calls, monkeypatch, gen, variant):
    """LSTMP on the unit-split threads (H and P in whole panels): unequal lengths in both
    directions, training, against the reference loop."""
    m = _make(variant, dict(bidirectional=True, proj_size=64), torch.float32, gen, input_size=5,
              hidden_size=128).train()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(0.1)
    x, lengths, hx, weight = _bidirectional_inputs(m, 5, 20, gen)

    _both_paths(m, x, hx, lengths, weight, monkeypatch, engine_calls, seed=0, directions=2)


# (variant, options, H): H not in whole panels, and a full step of at least 0.25 MFLOP at B = 36
BATCH_SPLIT_CASES = [("lstm", {"zoneout": (0.2, 0.3)}, 40), ("peephole", {"proj_size": 24, "recurrent_dropout": 0.3}, 40),
                     ("lstm", {"proj_size": 24, "layer_norm": True, "zoneout": 0.2}, 40), ("fgr", {"proj_size": 24}, 40),
                     ("cifg", {"layer_norm": True}, 40), ("lstm", {}, 40),
                     ("fgr", {"recurrent_dropout": 0.3, "zoneout": (0.2, 0.3)}, 40), ("gru", {"zoneout": 0.2}, 72),
                     ("fgr", {"layer_norm": True, "proj_size": 24, "recurrent_dropout": 0.3}, 40),
                     ("gru", {"reset_after": False, "recurrent_dropout": 0.3}, 72), ("gru", {"reset_after": False}, 72),
                     ("rnn", {}, 72), ("rnn", {"layer_norm": True, "recurrent_dropout": 0.3}, 72),
                     ("gru", {"layer_norm": True}, 72), ("rnn", {"nonlinearity": "relu", "zoneout": 0.2, "recurrent_dropout": 0.3}, 72)]


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("variant,cfg,H", BATCH_SPLIT_CASES)
def test_batch_split_threads_match_reference(ext, two_threads, engine_calls, monkeypatch, gen, variant, cfg, H, mode):
    """The loops split the batch over two threads (batch_split in csrc/panels.h) for any H, and also
    where the units cannot split (zoneout; recurrent dropout on the GRU; a projection with dropout,
    layer norm or FGR; the RNN, which has no unit split): B = 36 packed with unequal lengths, two
    layers, both directions, against the reference loop."""
    m = _make(variant, dict(cfg, num_layers=2, bidirectional=True), torch.float32, gen, input_size=5,
              hidden_size=H)
    m.train(mode == "train")
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(0.3)
    x, hx, _ = _inputs(m, 6, 36, torch.float32, gen, packed=False)
    lengths = torch.sort(torch.randint(1, 7, (36,), generator=gen), descending=True).values
    lengths[0] = 6
    weight = torch.randn(6 * 36 * 2 * H, generator=gen)
    _both_paths(m, x, hx, lengths, weight, monkeypatch, engine_calls, seed=11, directions=4)


def _zero_blocks(w):
    """Zero runs of the kinds the panel kernel skips (Panels::pack in csrc/panels.h: a panel's k-rows
    that are all zero, at least 32 in a row). For W_hh (G·H, 48): whole panels of rows (forward: a
    panel with nothing left; backward: an interior run of rows), a run inside some rows, and a
    trailing one. FGR's weight has such a block by construction; a pruned weight may too."""
    w[16:64] = 0
    w[100:140, 4:44] = 0
    w[-32:, 10:] = 0


@pytest.mark.parametrize("variant", ["lstm", "peephole", "gru"])
@pytest.mark.parametrize("B", [4, 14, 36], ids=["one-thread", "units", "batch"])
def test_zero_runs_in_recurrent_weight_match_reference(ext, two_threads, engine_calls, monkeypatch, gen, variant, B):
    """The panel kernel skips the zero runs it finds in the recurrent weight, forward (h W_hhᵀ) and
    backward (dz W_hh): the results equal the reference loop's, on one thread (B = 4), split over
    the units (B = 14) and over the batch (B = 36), training, both directions."""
    H = 48
    m = _make(variant, dict(bidirectional=True), torch.float32, gen, input_size=5, hidden_size=H).train()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(0.3)
        for name, p in m.named_parameters():
            if name.startswith("weight_hh"):
                _zero_blocks(p)
    x, lengths, hx, weight = _bidirectional_inputs(m, 5, B, gen)
    _both_paths(m, x, hx, lengths, weight, monkeypatch, engine_calls, seed=5, directions=2)
