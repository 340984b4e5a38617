"""The music task: piano-roll readers and writers, the NLL per time step, the CLI, bad input."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import lstmkit
from cli_helpers import SHARED_DATA, run_cli
from lstmkit.data import pianoroll as pr
from lstmkit.errors import UsageError
from lstmkit.models.pianoroll import PianoRollModel, frame_nll
from lstmkit.tasks import get_task
from lstmkit.train import from_preset
from test_cli_errors import assert_usage_error

mido = pytest.importorskip("mido", reason="the music task needs mido (pip install 'lstmkit[music]')")

# Every test's model is tiny; the pure-torch loop avoids the engine's one-time build.
TINY = ["--hidden", "8", "--batch-size", "2", "--seq-len", "16", "--log-every", "1", "--eval-every", "2",
        "--lr", "0.01"]
# float64 sums of a few hundred terms against float32 ones: round-off ~1e-6 relative.
NLL_TOL = dict(rel=1e-5, abs=1e-4)


@pytest.fixture(autouse=True)
def _reference_loop(monkeypatch):
    monkeypatch.setenv("LSTMKIT_ENGINE", "0")


def chords(n: int, shift: int = 0) -> list[list[int]]:
    """n quarter-note steps of I-IV-V-I in C with a rest now and then, transposed by ``shift``."""
    pattern = [[48, 60, 64, 67], [53, 60, 65, 69], [55, 59, 62, 67], [48, 60, 64, 67], []]
    return [[p + shift for p in pattern[t % len(pattern)]] for t in range(n)]


def write_json_data(tmp_path, name="rolls.json", **overrides):
    d = {"train": [chords(12 + i, i % 3) for i in range(6)], "valid": [chords(10), chords(9, 2), []],
         "test": [chords(11, 1), chords(8)]}  # the empty piece is left out
    d.update(overrides)
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return p


def write_midi_file(path, notes, ticks_per_beat=96, channel=0, tempo=500000):
    """A type-1 MIDI file with ``notes`` = [(pitch, start_tick, end_tick)] on one track."""
    events = []
    for pitch, a, b in notes:
        events += [(a, 1, mido.Message("note_on", note=pitch, velocity=64, channel=channel)),
                   (b, 0, mido.Message("note_off", note=pitch, velocity=0, channel=channel))]
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo, time=0)])
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    mid = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    mid.tracks.append(track)
    mid.save(str(path))
    return path


def random_roll(gen: np.random.Generator, T: int = 24) -> np.ndarray:
    roll = (gen.random((T, pr.KEYS)) < 0.05).astype(np.float32)
    roll[min(3, T - 2)] = 0  # a rest
    roll[-1, [0, pr.KEYS - 1]] = 1  # the lowest and highest keys, on the last step
    return roll


# ---- readers and writers ----------------------------------------------------------------------

def test_json_reader(tmp_path):
    p = write_json_data(tmp_path)
    splits = pr.read_json(p)
    assert [len(splits[s]) for s in pr.SPLITS] == [6, 3, 2]
    assert splits["valid"][2].shape == (0, 88)  # the reader keeps an empty piece; the task leaves it out
    assert [len(r) for r in get_task("music").read_splits(from_preset("jsb-chung"), str(p))["valid"]] == [10, 9]
    roll = splits["train"][0]
    assert roll.shape == (12, 88) and roll.dtype == np.float32
    assert pr.roll_to_steps(roll) == chords(12)
    assert np.flatnonzero(roll[0]).tolist() == [48 - 21, 60 - 21, 64 - 21, 67 - 21]
    assert not roll[4].any()  # the rest


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not valid JSON"),
    ('{"valid": []}', '"train" list of pieces'),
    ('{"train": [[[60]]], "extra": []}', "unknown key(s) extra"),
    ('{"train": [[60, 62]]}', "expected a list of MIDI pitches"),
    ('{"train": [[["C4"]]]}', "pitches must be integers"),
    ('{"train": [[[60], [12]]]}', "train piece 0, time step 1: pitch 12 is outside the piano's 21-108"),
])
def test_json_reader_errors(tmp_path, content, needle):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(UsageError, match=None) as e:
        pr.read_json(p)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_json_out_of_range_drop(tmp_path, capsys):
    p = tmp_path / "wide.json"
    p.write_text(json.dumps({"train": [[[60, 12], [109, 64], [108]]]}))
    roll = pr.read_json(p, out_of_range="drop")["train"][0]
    assert pr.roll_to_steps(roll) == [[60], [64], [108]]
    assert "left out 2 note(s) outside the piano's 21-108" in capsys.readouterr().err


@pytest.mark.skipif(not (SHARED_DATA / "jsb-chorales-quarter.json").is_file(),
                    reason="../shared/data/jsb-chorales-quarter.json is not there")
def test_shared_jsb_chorales():
    splits = pr.read_json(SHARED_DATA / "jsb-chorales-quarter.json")
    assert [len(splits[s]) for s in pr.SPLITS] == [229, 76, 77]  # Boulanger-Lewandowski's split
    assert sum(len(r) for r in splits["test"]) == 4725
    assert max(r.sum(1).max() for r in splits["train"]) == 4  # four voices


@pytest.mark.parametrize("steps_per_beat", [1, 4])
def test_midi_round_trip(tmp_path, steps_per_beat):
    roll = random_roll(np.random.default_rng(steps_per_beat))
    path = tmp_path / "roll.mid"
    pr.write_midi(roll, path, steps_per_beat=steps_per_beat)
    mid = mido.MidiFile(str(path))
    ons = [m for m in mid if m.type == "note_on" and m.velocity > 0]
    assert len(ons) > 0
    # roll -> MIDI -> roll is exact (a key on in consecutive steps is one held note)
    np.testing.assert_array_equal(pr.read_midi(path, steps_per_beat), roll)
    # and the file lasts T steps: T / steps_per_beat quarter notes at 120 bpm
    assert mid.length == pytest.approx(len(roll) / steps_per_beat * 0.5, abs=1e-6)


def test_midi_quantisation_to_quarter_notes(tmp_path):
    """Ticks -> quarter notes via ticks_per_beat (tempo plays no part); onsets and offsets round to
    the nearest step; an off-beat eighth is left out; percussion (channel 10) is ignored."""
    q = 96  # ticks per quarter note
    notes = [(60, 0, 2 * q),             # two quarter notes long: steps 0, 1
             (64, q - 3, 2 * q + 2),     # a slightly early, slightly long performed quarter: step 1
             (67, 2 * q + q // 2, 3 * q),  # an off-beat eighth: no step
             (72, 3 * q, 3 * q + q // 2)]  # an on-beat eighth: step 3
    path = write_midi_file(tmp_path / "perf.mid", notes, ticks_per_beat=q, tempo=300000)
    roll = pr.read_midi(path)
    assert pr.roll_to_steps(roll) == [[60], [60, 64], [], [72]]
    drums = write_midi_file(tmp_path / "drums.mid", [(36, 0, q)], channel=9)
    with pytest.raises(UsageError, match="holds no notes"):
        pr.read_midi(drums)


def test_midi_directory_splits(tmp_path):
    d = tmp_path / "midi"
    d.mkdir()
    for i in range(10):
        pr.write_midi(pr.read_json(write_json_data(tmp_path))["train"][i % 6], d / f"piece{i}.mid")
    splits = pr.read_midi_dir(d, valid_fraction=0.2)
    assert [len(splits[s]) for s in pr.SPLITS] == [6, 2, 2]
    again = pr.read_midi_dir(d, valid_fraction=0.2)  # the split is fixed
    assert all(np.array_equal(a, b) for s in pr.SPLITS for a, b in zip(splits[s], again[s]))


# ---- the loss ------------------------------------------------------------------------------

def hand_nll(logits: torch.Tensor, target: torch.Tensor) -> float:
    """-sum over frames and keys of x log sigma(z) + (1 - x) log(1 - sigma(z)), in Python floats."""
    total = 0.0
    for z_row, x_row in zip(logits.tolist(), target.tolist()):
        for z, x in zip(z_row, x_row):
            p = 1 / (1 + math.exp(-z))
            total -= x * math.log(p) + (1 - x) * math.log(1 - p)
    return total


def test_frame_nll_is_the_summed_binary_cross_entropy(gen):
    logits = torch.randn(5, 3, 88, generator=gen, dtype=torch.float64) * 2
    target = (torch.rand(5, 3, 88, generator=gen) < 0.1).double()
    lengths = torch.tensor([5, 2, 4])
    total, frames = frame_nll(logits, target, lengths)
    expected = sum(hand_nll(logits[:n, b], target[:n, b]) for b, n in enumerate(lengths.tolist()))
    assert frames == 11
    assert float(total) == pytest.approx(expected, rel=1e-12)


def test_evaluate_is_nll_per_time_step_of_whole_pieces():
    """task.evaluate = the hand-computed NLL of every frame, each predicted from the frames before it
    (the first from a silent start frame), summed over pieces and divided by their total length."""
    task, cfg = get_task("music"), from_preset("jsb-chung")
    cfg.model.hidden, cfg.train.eval_batch_size = 6, 2  # a batch with padding
    model = task.build_model(cfg, None).double()
    pieces = [random_roll(np.random.default_rng(i), T) for i, T in enumerate((7, 3, 5))]
    total = 0.0
    for roll in pieces:
        x = torch.from_numpy(np.concatenate([np.zeros((1, 88)), roll[:-1]])).unsqueeze(1)  # (T, 1, 88)
        with torch.no_grad():
            logits, _ = model(x)
        total += hand_nll(logits[:, 0], torch.from_numpy(roll).double())
    model.float()
    assert task.evaluate(model, pieces, cfg) == pytest.approx(total / 15, **NLL_TOL)


def test_batches_cover_every_frame_and_reshuffle_per_epoch():
    task, cfg = get_task("music"), from_preset("jsb-chung")
    cfg.train.seq_len, cfg.train.batch_size = 4, 3
    pieces = [random_roll(np.random.default_rng(i), T) for i, T in enumerate((9, 4, 6, 1))]
    batches = task.batches(cfg, type("D", (), {"train": pieces})())
    assert len(batches) == 3  # windows 4+4+1, 4, 4+2, 1 = 7 windows -> 3 batches
    frames = sum(int(batches[i][2].sum()) for i in range(len(batches)))
    assert frames == 20
    first = [batches[i][1].sum().item() for i in range(3)]
    batches.set_epoch(1)
    assert [batches[i][1].sum().item() for i in range(3)] != first
    batches.set_epoch(0)
    assert [batches[i][1].sum().item() for i in range(3)] == first
    # piece 0 (9 frames) in windows of 4: inputs = the frames shifted by one after a silent start frame
    x = np.concatenate([np.zeros((1, 88), np.float32), pieces[0][:-1]])
    for w, s in zip(batches.windows[:3], (0, 4, 8)):
        np.testing.assert_array_equal(w[0], x[s:s + 4])
        np.testing.assert_array_equal(w[1], pieces[0][s:s + 4])


def test_jsb_chung_sizes_are_about_20k_parameters():
    task = get_task("music")
    counts = {}
    for cell, hidden in (("lstm", 34), ("gru", 41), ("rnn", 78)):
        cfg = from_preset("jsb-chung")
        cfg.model.cell, cfg.model.hidden = cell, hidden
        counts[cell] = sum(p.numel() for p in task.build_model(cfg, None).parameters())
    assert counts == {"lstm": 19944, "gru": 19809, "rnn": 20056}
    cfg = from_preset("jsb-chung")
    assert (cfg.train.optimizer, cfg.train.clip, cfg.model.layers) == ("rmsprop", 1.0, 1)


@pytest.mark.parametrize("cell", lstmkit.variants())
def test_every_cell_trains_a_step(cell):
    task, cfg = get_task("music"), from_preset("jsb-chung")
    cfg.model.cell, cfg.model.hidden = cell, 5
    model = PianoRollModel(cell, 5)
    batch = task.batches(cfg, type("D", (), {"train": [random_roll(np.random.default_rng(0), 6)] * 2})())[0]
    out = task.loss_fn(cfg)(model, batch, None)
    out.loss.backward()
    assert math.isfinite(out.value) and out.count == 12
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# ---- the command line --------------------------------------------------------------------

def test_train_evaluate_generate(tmp_path, capsys):
    data = write_json_data(tmp_path)
    run = tmp_path / "run"
    rc, out, err = run_cli("train", "music", "--data", data, *TINY, "--max-steps", 6, "--out", run, capsys=capsys)
    assert rc == 0, err
    assert "test NLL" in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metric"] == "nll" and summary["test_steps"] == 19 and summary["parameters"] > 0

    rc, out, err = run_cli("evaluate", run, "--split", "test", capsys=capsys)
    assert rc == 0, err
    assert out.startswith("test: NLL ") and "19 time steps in 2 pieces" in out
    assert float(out.split()[2]) == pytest.approx(summary["test_nll"], **NLL_TOL)

    piece = tmp_path / "piece.mid"
    rc, out, err = run_cli("generate", run, "--out", piece, "--steps", 12, "--seed", 3, capsys=capsys)
    assert rc == 0, err
    mid = mido.MidiFile(str(piece))
    assert sum(1 for m in mid if m.type == "note_on" and m.velocity > 0) > 0
    assert len(pr.read_midi(piece)) <= 12 and (tmp_path / "piece.png").stat().st_size > 1000

    # primed with that file: the output starts with the prime, and the seed decides the rest
    prime = pr.read_midi(piece)
    for name, seed in (("a.mid", 1), ("b.mid", 1), ("c.mid", 2)):
        rc, out, err = run_cli("generate", run, "--out", tmp_path / name, "--prime", piece, "--steps", 10,
                               "--seed", seed, capsys=capsys)
        assert rc == 0, err
    a, b, c = (pr.read_midi(tmp_path / n) for n in ("a.mid", "b.mid", "c.mid"))
    np.testing.assert_array_equal(a[:len(prime)], prime)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("cell", ["rnn", "gru", "peephole"])
def test_cells_through_the_cli(tmp_path, capsys, cell):
    data = write_json_data(tmp_path)
    rc, _, err = run_cli("train", "music", "--data", data, *TINY, "--cell", cell, "--max-steps", 2,
                         "--out", tmp_path / "run", capsys=capsys)
    assert rc == 0, err
    rc, _, err = run_cli("generate", tmp_path / "run", "--out", tmp_path / "x.mid", "--steps", 4, capsys=capsys)
    assert rc == 0, err


def test_resume_is_exact_across_epochs(tmp_path, capsys):
    """The per-epoch reshuffle is seeded by the epoch, so 3 + 3 steps = 6 steps, weights and all."""
    from lstmkit.train import checkpoint as ckpt
    data = write_json_data(tmp_path)
    args = ["train", "music", "--data", data, *TINY, "--eval-every", 0]
    assert run_cli(*args, "--max-steps", 7, "--out", tmp_path / "a", capsys=capsys)[0] == 0
    assert run_cli(*args, "--max-steps", 4, "--out", tmp_path / "b", capsys=capsys)[0] == 0
    assert run_cli("train", "music", "--out", tmp_path / "b", "--resume", "--max-steps", 7, capsys=capsys)[0] == 0
    ta, tb = (ckpt.read_tensors(tmp_path / r, ckpt.read_meta(tmp_path / r), "state") for r in "ab")
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


def test_midi_directory_with_a_corrupt_and_a_non_midi_file(tmp_path, capsys):
    d = tmp_path / "midi"
    d.mkdir()
    rolls = pr.read_json(write_json_data(tmp_path))["train"]
    for i, roll in enumerate(rolls):
        pr.write_midi(roll, d / f"piece{i}.mid")
    (d / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01garbage")
    (d / "notes.txt").write_text("not music")
    rc, out, err = run_cli("train", "music", "--data", d, *TINY, "--max-steps", 2, "--valid-fraction", 0.2,
                           "--out", tmp_path / "run", capsys=capsys)
    assert rc == 0, err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 2
    assert "skipping broken.mid" in warnings[0] and "not a readable MIDI file" in warnings[0]
    assert "skipping notes.txt" in warnings[1] and "not a .mid or .midi file" in warnings[1]


def test_midi_directory_with_nothing_readable(tmp_path, capsys):
    d = tmp_path / "midi"
    d.mkdir()
    (d / "broken.mid").write_bytes(b"\x00\x01garbage")
    (d / "readme.txt").write_text("hello")
    assert_usage_error(run_cli("train", "music", "--data", d, *TINY, "--out", tmp_path / "run", capsys=capsys),
                       "no readable MIDI file", "broken.mid (not a readable MIDI file", "readme.txt")
    assert not (tmp_path / "run").exists()


def test_pitch_outside_the_piano(tmp_path, capsys):
    data = write_json_data(tmp_path, train=[chords(12), [[60], [110, 64]]])
    assert_usage_error(run_cli("train", "music", "--data", data, *TINY, "--out", tmp_path / "run", capsys=capsys),
                       "train piece 1, time step 1: pitch 110 is outside the piano's 21-108", "--out-of-range drop")
    d = tmp_path / "midi"
    d.mkdir()
    write_midi_file(d / "low.mid", [(60, 0, 96), (15, 96, 192)])
    assert_usage_error(run_cli("train", "music", "--data", d, *TINY, "--out", tmp_path / "run", capsys=capsys),
                       "low.mid", "pitch 15 at quarter note 1 is outside the piano's 21-108")
    rc, _, err = run_cli("train", "music", "--data", data, *TINY, "--max-steps", 1, "--out-of-range", "drop",
                         "--out", tmp_path / "run", capsys=capsys)
    assert rc == 0 and "left out 1 note(s)" in err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A one-step music run on the tiny JSON data (--seq-len 16: the model's context)."""
    tmp = tmp_path_factory.mktemp("music")
    data = write_json_data(tmp)
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse fixture has not run yet
        mp.setenv("LSTMKIT_ENGINE", "0")
        assert run_cli("train", "music", "--data", data, *TINY, "--max-steps", 1, "--out", tmp / "run")[0] == 0
    return tmp / "run"


def test_prime_longer_than_the_context(tmp_path, capsys, tiny_run):
    long_prime = tmp_path / "long.mid"
    pr.write_midi(np.tile(pr.read_json(write_json_data(tmp_path))["train"][0], (2, 1)), long_prime)  # 24 steps
    out = tmp_path / "out.mid"
    assert_usage_error(run_cli("generate", tiny_run, "--out", out, "--prime", long_prime, capsys=capsys),
                       "24 time steps long, longer than the model's context of 16")
    assert not out.exists() and not out.with_suffix(".png").exists()


@pytest.mark.parametrize("args, needle", [
    ((), "needs --out FILE.mid"),
    (("--out", "x.wav"), "must end in .mid or .midi"),
    (("--out", "x.mid", "--steps", "0"), "--steps must be >= 1"),
    (("--out", "x.mid", "--prime", "nope.mid"), "does not exist"),
])
def test_generate_bad_arguments(tmp_path, capsys, args, needle, monkeypatch, tiny_run):
    monkeypatch.chdir(tmp_path)
    assert_usage_error(run_cli("generate", tiny_run, *args, capsys=capsys), needle)


@pytest.mark.parametrize("setup, needle", [
    (lambda tmp: tmp / "missing.json", "does not exist"),
    (lambda tmp: (tmp / "x.mid").write_bytes(b"MThd") and tmp / "x.mid", "not a .json file or a directory"),
    (lambda tmp: (tmp / "b.json").write_text("[1, 2") and tmp / "b.json", "not valid JSON"),
])
def test_bad_data_paths(tmp_path, capsys, setup, needle):
    assert_usage_error(run_cli("train", "music", "--data", setup(tmp_path), *TINY, "--out", tmp_path / "run",
                               capsys=capsys), needle)


def test_bad_music_settings(tmp_path, capsys):
    data = write_json_data(tmp_path)
    for extra, needle in ((("--bidirectional",), "--bidirectional is not valid for music"),
                          (("--steps-per-beat", "0"), "--steps-per-beat must be >= 1"),
                          (("--out-of-range", "clip"), "unknown out-of-range 'clip'")):
        assert_usage_error(run_cli("train", "music", "--data", data, *TINY, *extra, "--out", tmp_path / "run",
                                   capsys=capsys), needle)


# ---- the built-in default: music21's Bach chorales -------------------------------------------

def test_builtin_bach_chorales(tmp_path, capsys, monkeypatch):
    """No --data: music21's bundled chorales, converted once and cached. (Three chorales here, to
    keep the test fast; the full conversion of ~370 takes a minute or two.)"""
    pytest.importorskip("music21", reason="the built-in chorales need music21 (pip install 'lstmkit[music]')")
    names = pr.chorale_names()
    assert len(names) > 300
    monkeypatch.setattr(pr, "chorale_names", lambda: names[:5])
    monkeypatch.setenv("LSTMKIT_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    rc, out, err = run_cli("train", "music", *TINY, "--max-steps", 2, "--out", run, capsys=capsys)
    assert rc == 0, err
    assert "converting 5 Bach chorales" in err
    cached = list((tmp_path / "cache" / "music").glob("bach-chorales-*.json"))
    assert len(cached) == 1
    splits = pr.read_json(cached[0])
    assert [len(splits[s]) for s in pr.SPLITS] == [3, 1, 1]
    roll = splits["train"][0]
    assert roll.shape[0] > 20 and 3 <= roll.sum(1).max() <= 8  # four voices, some steps with doublings

    def no_parsing(*a, **k):
        raise AssertionError("the cached rolls should be used")
    monkeypatch.setattr(pr, "chorale_roll", no_parsing)
    rc, out, err = run_cli("evaluate", run, "--split", "test", capsys=capsys)
    assert rc == 0 and out.startswith("test: NLL"), err
    rc, out, err = run_cli("generate", run, "--out", tmp_path / "bach.mid", "--steps", 16, capsys=capsys)
    assert rc == 0, err
    assert any(m.type == "note_on" and m.velocity > 0 for m in mido.MidiFile(str(tmp_path / "bach.mid")))
