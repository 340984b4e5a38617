"""Piano rolls: reading JSON rolls, MIDI files and music21's Bach chorales; writing MIDI and PNG.

A *roll* is a float32 array of shape (T, 88): row t holds the keys sounding at time step
t, column k is MIDI pitch ``LOW + k`` (A0 = 21 ... C8 = 108, the piano's 88 keys), 1 = on.

**Time steps.** A step is a fraction ``1 / steps_per_beat`` of a quarter note (a beat), 1
by default, as in the JSB Chorales set of Boulanger-Lewandowski et al. 2012. A note from
quarter-note time ``a`` to ``b`` sounds at steps ``round(a * s) ... round(b * s) - 1``
(onset and offset rounded to the nearest grid point, halves up). For notes on the grid
this is the chord sounding at the start of each step, as in JSB Chorales; a note that
rounds to no step (e.g. an off-beat eighth at quarter-note steps) is left out: use
``steps_per_beat = 2`` or more to keep it. MIDI time is in ticks, and a quarter note is
``ticks_per_beat`` ticks whatever the tempo: tempo changes only how many seconds a step
lasts, so they are ignored when reading and one tempo (120 bpm) is written.

**Writing MIDI.** A key that is on in consecutive steps is one held note (a roll cannot
tell a held note from a repeated one), so roll -> MIDI -> roll gives the same roll back.

mido and music21 (the ``music`` extra) are imported only by the functions that need them.
"""
from __future__ import annotations

import json
import math
import os
import random
import sys
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..plots import pyplot, save_figure

LOW, HIGH = 21, 108  # MIDI pitches of the piano's lowest (A0) and highest (C8) key
KEYS = HIGH - LOW + 1  # 88
SPLITS = ("train", "valid", "test")
MIDI_SUFFIXES = (".mid", ".midi")
DRUM_CHANNEL = 9  # General MIDI channel 10 (0-based 9) is percussion: its "pitches" are drums, not keys
CACHE_VERSION = 1  # bump when the chorale conversion changes, so old caches are rebuilt


def warn(message: str) -> None:
    """One warning line on stderr (the CLI shows it; it does not stop the run)."""
    print(f"lstmkit: warning: {message}", file=sys.stderr, flush=True)


class PitchRangeError(UsageError):
    """A pitch outside 21-108 with ``out_of_range="error"``."""


class UnreadableMidi(UsageError):
    """A file that mido cannot parse, or one without notes."""

    def __init__(self, path: str, why: str):
        super().__init__(f"MIDI file {path!r}: {why}")
        self.why = why


def _need(module: str):
    try:
        return __import__(module)
    except ModuleNotFoundError:
        raise UsageError(f"music data needs the {module} package: pip install 'lstmkit[music]'") from None


# ---- pitch lists <-> rolls ----------------------------------------------------------------------

def steps_to_roll(steps, where: str, out_of_range: str = "error") -> tuple[np.ndarray, int]:
    """``(roll (T, 88), dropped)`` from a list of time steps, each a list of MIDI pitches ([] = a rest).

    ``out_of_range``: "error" raises :class:`PitchRangeError` naming the first pitch outside
    21-108; "drop" leaves such pitches out and counts them in ``dropped`` (the caller warns).
    """
    if not isinstance(steps, list):
        raise UsageError(f"{where} must be a list of time steps; got {type(steps).__name__}")
    roll = np.zeros((len(steps), KEYS), dtype=np.float32)
    dropped = 0
    for t, chord in enumerate(steps):
        if not isinstance(chord, list):
            raise UsageError(f"{where}, time step {t}: expected a list of MIDI pitches; got {chord!r}")
        for p in chord:
            if isinstance(p, bool) or not isinstance(p, int):
                raise UsageError(f"{where}, time step {t}: pitches must be integers; got {p!r}")
            if not LOW <= p <= HIGH:
                if out_of_range == "error":
                    raise PitchRangeError(f"{where}, time step {t}: pitch {p} is outside the piano's {LOW}-{HIGH}; "
                                     f"give --out-of-range drop to leave such notes out")
                dropped += 1
                continue
            roll[t, p - LOW] = 1.0
    return roll, dropped


def roll_to_steps(roll: np.ndarray) -> list[list[int]]:
    """Inverse of :func:`steps_to_roll`: the sounding pitches of each step, ascending."""
    return [[int(k) + LOW for k in np.flatnonzero(row > 0.5)] for row in roll]


def notes_to_roll(notes, steps_per_beat: int = 1, out_of_range: str = "error",
                  where: str = "piece") -> tuple[np.ndarray, int]:
    """``(roll, dropped)`` from ``(pitch, start, end)`` notes, times in quarter notes (see the module
    docstring); ``out_of_range`` as in :func:`steps_to_roll`."""
    grid = []
    for pitch, start, end in notes:
        a = math.floor(start * steps_per_beat + 0.5)
        b = math.floor(end * steps_per_beat + 0.5)
        if b > a:  # a note that spans no grid point (an off-beat passing note) is not in the roll
            grid.append((pitch, a, b))
    T = max((b for _, _, b in grid), default=0)
    roll = np.zeros((T, KEYS), dtype=np.float32)
    dropped = 0
    for pitch, a, b in grid:
        if not LOW <= pitch <= HIGH:
            if out_of_range == "error":
                raise PitchRangeError(f"{where}: pitch {pitch} at quarter note {a / steps_per_beat:g} is outside the "
                                 f"piano's {LOW}-{HIGH}; give --out-of-range drop to leave such notes out")
            dropped += 1
            continue
        roll[a:b, pitch - LOW] = 1.0
    return roll, dropped


# ---- JSON ----------------------------------------------------------------------------------------

def read_json(path, out_of_range: str = "error") -> dict[str, list[np.ndarray]]:
    """``{"train": [roll, ...], "valid": [...], "test": [...]}`` from the JSB-style JSON format.

    The file is an object with a list of pieces per split; a piece is a list of time steps,
    a time step a list of MIDI pitches. ``train`` is required; ``valid`` and ``test`` may be
    missing (they are then empty lists).
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"music data {str(p)!r} does not exist" if not p.exists()
                         else f"music data {str(p)!r} is not a file")
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"music data {str(p)!r} is not valid JSON: {e}") from None
    if not isinstance(d, dict) or "train" not in d:
        raise UsageError(f"music data {str(p)!r}: expected a JSON object with a \"train\" list of pieces "
                         f"(and \"valid\", \"test\"), as ../shared/data/jsb-chorales-quarter.json")
    unknown = set(d) - set(SPLITS)
    if unknown:
        raise UsageError(f"music data {str(p)!r}: unknown key(s) {', '.join(sorted(unknown))}; expected "
                         f"{', '.join(SPLITS)}")
    out, dropped = {}, 0
    for split in SPLITS:
        pieces = d.get(split, [])
        if not isinstance(pieces, list):
            raise UsageError(f"music data {str(p)!r}: \"{split}\" must be a list of pieces")
        out[split] = []
        for i, piece in enumerate(pieces):
            roll, n = steps_to_roll(piece, f"{p.name}: {split} piece {i}", out_of_range)
            out[split].append(roll)
            dropped += n
    if dropped:
        warn(f"{p.name}: left out {dropped} note(s) outside the piano's {LOW}-{HIGH} (--out-of-range drop)")
    return out


def write_json(splits: dict, path) -> None:
    """Write rolls as the JSON format :func:`read_json` reads (atomically)."""
    d = {s: [roll_to_steps(r) for r in rolls] for s, rolls in splits.items()}
    _atomic_write(Path(path), json.dumps(d, separators=(",", ":")).encode())


# ---- MIDI ----------------------------------------------------------------------------------------

def midi_notes(path) -> list[tuple[int, float, float]]:
    """The notes of a MIDI file as ``(pitch, start, end)`` in quarter notes, percussion left out.

    Raises whatever mido raises for a file that is not MIDI (the caller decides what to do).
    A note-on while the same key is already on ends the earlier note; notes still on at the
    end of the file end there.
    """
    mido = _need("mido")
    mid = mido.MidiFile(str(path))  # clip=False: data bytes > 127 are an error, not silently clipped
    tpb = mid.ticks_per_beat
    if not tpb or tpb <= 0:
        raise ValueError("SMPTE time division (ticks per frame) is not supported; expected ticks per beat")
    notes, on, now = [], {}, 0
    for msg in mido.merge_tracks(mid.tracks):
        now += msg.time  # ticks since the start of the file
        if msg.type not in ("note_on", "note_off") or msg.channel == DRUM_CHANNEL:
            continue
        key = (msg.channel, msg.note)
        if key in on:  # a note-off, or a note-on that re-strikes a key still sounding
            notes.append((msg.note, on.pop(key) / tpb, now / tpb))
        if msg.type == "note_on" and msg.velocity > 0:
            on[key] = now
    notes += [(note, start / tpb, now / tpb) for (_, note), start in on.items()]
    return sorted(notes, key=lambda n: (n[1], n[0]))


def read_midi(path, steps_per_beat: int = 1, out_of_range: str = "error") -> np.ndarray:
    """One MIDI file as a roll; UsageError if it cannot be read or holds no notes."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"MIDI file {str(p)!r} does not exist")
    try:
        notes = midi_notes(p)
    except UsageError:
        raise
    except Exception as e:  # mido raises OSError, EOFError, ValueError, KeyError, ... for a bad file
        raise UnreadableMidi(str(p), f"not a readable MIDI file ({type(e).__name__}: {_first_line(e)})") from None
    if not notes:
        raise UnreadableMidi(str(p), "holds no notes (percussion on channel 10 is not counted)")
    roll, dropped = notes_to_roll(notes, steps_per_beat, out_of_range, f"MIDI file {str(p)!r}")
    if dropped:
        warn(f"{p.name}: left out {dropped} note(s) outside the piano's {LOW}-{HIGH} (--out-of-range drop)")
    return roll


def read_midi_dir(path, steps_per_beat: int = 1, out_of_range: str = "error",
                  valid_fraction: float = 0.1) -> dict[str, list[np.ndarray]]:
    """The MIDI files of a directory as ``{"train", "valid", "test"}`` lists of rolls.

    With subdirectories ``train/`` (and ``valid/``, ``test/``), those are the splits;
    otherwise every file below the directory is used, shuffled with a fixed seed, and
    ``valid_fraction`` of the pieces go to each of valid and test. A file that is not a
    .mid/.midi file, cannot be parsed or holds no notes is skipped with a warning naming
    it; when no piece is left, a UsageError names the skipped files instead.
    """
    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"MIDI directory {str(root)!r} does not exist")
    has_splits = (root / "train").is_dir()
    groups = {s: _files(root / s) for s in SPLITS} if has_splits else {"all": _files(root)}
    rolls: dict[str, list] = {}
    skipped = []  # (file name, why)
    for group, files in groups.items():
        rolls[group] = []
        for f in files:
            name = str(f.relative_to(root))
            if f.suffix.lower() not in MIDI_SUFFIXES:
                skipped.append((name, "not a .mid or .midi file"))
                continue
            try:
                rolls[group].append(read_midi(f, steps_per_beat, out_of_range))
            except PitchRangeError:  # --out-of-range error: the user asked for an error, not a skip
                raise
            except UnreadableMidi as e:
                skipped.append((name, e.why))
    found = sum(len(r) for r in rolls.values())
    if not has_splits:
        pieces = rolls["all"]
        random.Random(0).shuffle(pieces)  # a fixed split: the same files give the same pieces in each split
        n = len(pieces)
        k = int(n * valid_fraction) if n >= 3 else 0
        rolls = {"valid": pieces[:k], "test": pieces[k:2 * k], "train": pieces[2 * k:]}
    if not rolls["train"]:
        what = f"{found} readable piece(s) but none in train/" if found else "no readable MIDI file"
        names = "; ".join(f"{n} ({why})" for n, why in skipped[:3]) + ("; ..." if len(skipped) > 3 else "")
        raise UsageError(f"MIDI directory {str(root)!r} has {what}; expected .mid/.midi files with notes"
                         + (f"; skipped {len(skipped)} file(s): {names}" if skipped else ""))
    for name, why in skipped:
        warn(f"skipping {name} in {str(root)!r}: {why}")
    return rolls


def _files(d: Path) -> list[Path]:
    if not d.is_dir():
        return []
    return sorted(f for f in d.rglob("*") if f.is_file() and not any(part.startswith(".") for part in f.parts[-1:]))


def write_midi(roll: np.ndarray, path, steps_per_beat: int = 1, tempo_bpm: float = 120.0, velocity: int = 80,
               ticks_per_beat: int = 480) -> None:
    """Write a roll as a type-0 MIDI file (piano, channel 1), atomically.

    Consecutive on-steps of a key become one held note; each step lasts
    ``ticks_per_beat / steps_per_beat`` ticks.
    """
    mido = _need("mido")
    roll = np.asarray(roll) > 0.5
    per_step = ticks_per_beat // steps_per_beat
    events = []  # (tick, order, message): offs (order 0) before ons (order 1) at the same tick
    padded = np.concatenate([np.zeros((1, KEYS), bool), roll, np.zeros((1, KEYS), bool)])
    change = padded[1:].astype(np.int8) - padded[:-1].astype(np.int8)  # (T+1, 88): +1 onset, -1 offset
    for t, k in zip(*np.nonzero(change)):
        if change[t, k] > 0:
            events.append((t * per_step, 1, mido.Message("note_on", note=int(k) + LOW, velocity=velocity)))
        else:
            events.append((t * per_step, 0, mido.Message("note_off", note=int(k) + LOW, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1], e[2].note))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    track.append(mido.Message("program_change", program=0, time=0))  # acoustic grand piano
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    end = len(roll) * per_step
    track.append(mido.MetaMessage("end_of_track", time=max(end - now, 0)))
    mid = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
    mid.tracks.append(track)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        mid.save(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def plot_roll(roll: np.ndarray, path, title: str = "", prime_steps: int = 0) -> None:
    """A piano-roll PNG: time across, pitch up, only the range of keys used (plus a margin)."""
    plt = pyplot("the piano-roll PNG")
    roll = np.asarray(roll) > 0.5
    used = np.flatnonzero(roll.any(axis=0))
    lo, hi = (int(used.min()) - 2, int(used.max()) + 3) if used.size else (39 - LOW, 84 - LOW)
    lo, hi = max(lo, 0), min(hi, KEYS)
    fig, ax = plt.subplots(figsize=(max(6.0, min(len(roll) / 8, 24.0)), 4.0))
    ax.imshow(roll[:, lo:hi].T, origin="lower", aspect="auto", cmap="Greys", interpolation="nearest",
              extent=(0, len(roll), lo + LOW - 0.5, hi + LOW - 0.5))
    if prime_steps:
        ax.axvline(prime_steps, color="tab:red", lw=1, label="end of prime")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("time step")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)


# ---- music21's Bach chorales --------------------------------------------------------------------

def cache_dir() -> Path:
    return Path(os.environ.get("LSTMKIT_CACHE") or Path.home() / ".cache" / "lstmkit")


def chorale_names() -> list[str]:
    """The corpus names of the Bach chorales bundled with music21, in Riemenschneider order."""
    _need("music21")
    from music21 import corpus
    return list(corpus.chorales.Iterator(returnType="filename"))


def chorale_roll(name: str, steps_per_beat: int = 1) -> np.ndarray:
    """One bundled chorale (e.g. ``"bach/bwv269"``) as a roll: every part's notes, ties merged.

    Parsed from the source file with ``forceSource=True``, so music21 neither reads nor
    writes its pickle cache. Pitches outside 21-108 do not occur in the chorales.
    """
    _need("music21")
    from music21 import converter, corpus
    path = corpus.getWork(name)
    if isinstance(path, list):  # a chorale in two formats (e.g. .krn and .mxl): take MusicXML if there
        path = sorted(path, key=lambda f: (Path(f).suffix not in (".mxl", ".xml", ".musicxml"), str(f)))[0]
    score = converter.parse(path, forceSource=True)
    notes = []
    for part in score.parts:
        for n in part.stripTies().flatten().notes:  # Note or Chord; offsets in quarter notes
            start = float(n.offset)
            end = start + float(n.quarterLength)
            for p in n.pitches:
                notes.append((int(p.midi), start, end))
    return notes_to_roll(notes, steps_per_beat, "drop", name)[0]


def bach_chorales(steps_per_beat: int = 1, names: list[str] | None = None,
                  progress: bool = True) -> dict[str, list[np.ndarray]]:
    """music21's bundled Bach chorales as quarter-note (or finer) rolls, split 60/20/20.

    Converted once and cached as JSON in ``$LSTMKIT_CACHE`` (default ``~/.cache/lstmkit``),
    since parsing the ~370 chorales takes minutes. The split shuffles the Riemenschneider
    order with a fixed seed; it is *not* Boulanger-Lewandowski's JSB split (for that, use
    ``--data ../shared/data/jsb-chorales-quarter.json``).
    """
    music21 = _need("music21")
    names = chorale_names() if names is None else names
    key = f"bach-chorales-s{steps_per_beat}-n{len(names)}-m{music21.VERSION_STR}-v{CACHE_VERSION}.json"
    path = cache_dir() / "music" / key
    if path.is_file():
        try:
            return read_json(path)
        except UsageError:
            warn(f"the cached chorales in {str(path)!r} are unreadable; converting them again")
    if progress:
        print(f"converting {len(names)} Bach chorales from music21's corpus to piano rolls, once "
              f"(cached in {path})", file=sys.stderr, flush=True)
    rolls = []
    for name in names:
        roll = chorale_roll(name, steps_per_beat)
        if len(roll):
            rolls.append(roll)
    order = list(range(len(rolls)))
    random.Random(0).shuffle(order)
    n_valid = n_test = round(len(rolls) * 0.2)
    splits = {"train": [rolls[i] for i in order[n_valid + n_test:]],
              "valid": [rolls[i] for i in order[:n_valid]],
              "test": [rolls[i] for i in order[n_valid:n_valid + n_test]]}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(splits, path)
    return splits


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [""])[0][:200]
