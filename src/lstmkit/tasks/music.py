"""``music``: polyphonic piano-roll modelling (Boulanger-Lewandowski et al. 2012; Chung et al. 2014).

Data: the JSB-style JSON format (``--data FILE.json``), a directory of MIDI files
(``--data DIR``), or, with no ``--data``, the Bach chorales bundled with music21. Every
piece becomes a roll (T, 88) (see :mod:`lstmkit.data.pianoroll`).

Model and loss: :class:`~lstmkit.models.pianoroll.PianoRollModel`. Each piece is fed as
inputs ``[0, x_1, ..., x_{T-1}]`` (a silent start frame, then the piece) with targets
``[x_1, ..., x_T]``, so every frame of a piece is predicted, the first from the zero
state. The loss is the NLL per time step: the sum over the 88 keys of the binary
cross-entropy of a frame, averaged over frames (nats), the number Chung et al. report.

Training cuts pieces longer than ``seq_len`` into windows of ``seq_len`` frames, each
started from the zero state; ``seq_len`` is the model's *context*, and a generation prime
may be at most that long. Batches are windows, shuffled afresh each epoch (seeded by
``seed`` and the epoch, so resuming is exact), padded and packed. Evaluation runs each
piece whole.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import pianoroll as pr
from ..errors import UsageError
from ..models.pianoroll import PianoRollModel, frame_nll
from ..train.config import RunConfig, register_preset
from ..train.trainer import StepOutput
from . import register_task
from .base import Task, option


@dataclass
class MusicOptions:
    steps_per_beat: int = option(1, "time steps per quarter note when reading MIDI files and the built-in "
                                    "chorales (JSON rolls keep their own steps)")
    out_of_range: str = option("error", "pitches outside the piano's 21-108: error (exit 2) or drop them "
                                        "with a warning", ("error", "drop"))


@dataclass
class MusicData:
    state: dict  # the task state: the key layout and time grid, for generate
    train: list  # rolls (T, 88) float32
    valid: list | None
    test: list | None = None


def _inputs(roll: np.ndarray) -> np.ndarray:
    """The inputs that predict ``roll``: a silent start frame, then every frame but the last."""
    return np.concatenate([np.zeros((1, roll.shape[1]), np.float32), roll[:-1]])


def pad(pairs, device: str = "cpu"):
    """(x, y, lengths): padded (T, B, 88) inputs and targets and the (B,) lengths of (x, y) pairs."""
    lengths = torch.tensor([len(y) for _, y in pairs])
    T, B = int(lengths.max()), len(pairs)
    x = torch.zeros(T, B, pr.KEYS)
    y = torch.zeros(T, B, pr.KEYS)
    for b, (xi, yi) in enumerate(pairs):
        x[:len(xi), b] = torch.from_numpy(xi)
        y[:len(yi), b] = torch.from_numpy(yi)
    return x.to(device), y.to(device), lengths


class RollBatches:
    """One epoch of training batches: windows of at most ``seq_len`` frames, shuffled per epoch.

    ``set_epoch(e)`` (called by the trainer at each epoch start) reshuffles with
    ``Random(seed, e)``, so a resumed run sees the same batches. Under torchrun process
    ``rank`` takes every ``world``-th batch, the same number on every process.
    """

    def __init__(self, rolls, batch_size: int, seq_len: int, seed: int = 0, rank: int = 0, world: int = 1,
                 device: str = "cpu"):
        self.windows = []
        for roll in rolls:
            x = _inputs(roll)
            for s in range(0, len(roll), seq_len):
                self.windows.append((x[s:s + seq_len], roll[s:s + seq_len]))
        self.batch_size, self.seed, self.rank, self.world, self.device = batch_size, seed, rank, world, device
        self.n = math.ceil(len(self.windows) / batch_size) // world
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        order = list(range(len(self.windows)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        B = self.batch_size
        batches = [order[i:i + B] for i in range(0, len(order), B)]
        self.order = batches[self.rank::self.world][:self.n]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return pad([self.windows[j] for j in self.order[i]], self.device)


class MusicTask(Task):
    name = "music"
    summary = "polyphonic piano rolls: 88 keys, NLL per time step (JSB JSON, MIDI directory, music21 chorales)"
    default_preset = "jsb-chung"
    metric_name = "nll"
    unit = "step"
    data_help = ("FILE.json (train/valid/test lists of time steps of MIDI pitches) or DIR of .mid files; "
                 "default: the Bach chorales bundled with music21")
    Options = MusicOptions
    next_commands = ("generate", "evaluate")
    supports_depth_gate = True

    # ---- config and data ------------------------------------------------------------------

    def check_config(self, cfg: RunConfig) -> None:
        m = cfg.model
        if m.bidirectional:
            raise UsageError("--bidirectional is not valid for music: the model predicts the next frame, "
                             "and a backward direction would see it")
        if m.tie_weights:
            raise UsageError("--tie-weights is not valid for music: there is no embedding to tie")
        if m.embed:
            raise UsageError("--embed is not used by music: the 88-key frames go straight into the recurrent layer")
        if cfg.options.steps_per_beat < 1:
            raise UsageError(f"--steps-per-beat must be >= 1; got {cfg.options.steps_per_beat}")

    def read_splits(self, cfg: RunConfig, path: str | None = None) -> dict:
        """``{"train", "valid", "test"}`` lists of rolls from ``path`` (default: the config's data);
        pieces without time steps are left out (there is nothing in them to predict)."""
        splits = self._read(cfg, path)
        return {s: [r for r in rolls if len(r)] for s, rolls in splits.items()}

    def _read(self, cfg: RunConfig, path: str | None) -> dict:
        o = cfg.options
        path = cfg.data.path if path is None else path
        if not path:
            return pr.bach_chorales(o.steps_per_beat)
        p = Path(path)
        if p.is_dir():
            return pr.read_midi_dir(p, o.steps_per_beat, o.out_of_range, cfg.data.valid_fraction)
        if not p.exists():
            raise UsageError(f"music data {path!r} does not exist; expected a .json file or a directory of "
                             f".mid files")
        if p.suffix.lower() != ".json":
            raise UsageError(f"music data {path!r} is not a .json file or a directory; put MIDI files in a "
                             f"directory and give the directory")
        return pr.read_json(p, o.out_of_range)

    def load(self, cfg: RunConfig, state=None) -> MusicData:
        splits = self.read_splits(cfg)
        state = state or {"low": pr.LOW, "keys": pr.KEYS, "steps_per_beat": cfg.options.steps_per_beat}
        return MusicData(state, splits["train"], splits["valid"] or None, splits["test"] or None)

    def check_sizes(self, cfg: RunConfig, data: MusicData, world: int = 1) -> None:
        where = repr(cfg.data.path) if cfg.data.path else "the built-in chorales"
        frames = sum(len(r) for r in data.train)
        if frames == 0:
            raise UsageError(f"music data {where}: the training split holds no time steps")
        windows = sum(math.ceil(len(r) / cfg.train.seq_len) for r in data.train)
        if math.ceil(windows / cfg.train.batch_size) < world:
            raise UsageError(f"music data {where}: {windows} training window(s) of --seq-len "
                             f"{cfg.train.seq_len} make fewer batches than the {world} processes")

    def state_to_json(self, state) -> dict:
        return dict(state)

    def state_from_json(self, d: dict):
        if d.get("keys") != pr.KEYS or d.get("low") != pr.LOW:
            raise ValueError(f"music state has keys {d.get('keys')} from {d.get('low')}; expected {pr.KEYS} "
                             f"from {pr.LOW}")
        return dict(d)

    # ---- model, batches, loss ---------------------------------------------------------------

    def build_model(self, cfg: RunConfig, state) -> PianoRollModel:
        m = cfg.model
        return PianoRollModel(m.cell, m.hidden, m.layers, dropout=m.dropout, proj_size=m.proj,
                              recurrent_dropout=m.recurrent_dropout, zoneout=m.zoneout, depth_gate=m.depth_gate)

    def batches(self, cfg: RunConfig, data: MusicData, rank: int = 0, world: int = 1) -> RollBatches:
        t = cfg.train
        return RollBatches(data.train, t.batch_size, t.seq_len, t.seed, rank, world, t.device)

    def loss_fn(self, cfg: RunConfig):
        def loss_fn(model, batch, carry) -> StepOutput:
            x, y, lengths = batch  # (T, B, 88), (T, B, 88), (B,)
            logits, _ = model(x, lengths)
            total, frames = frame_nll(logits, y, lengths)
            loss = total / frames  # NLL per time step: summed over keys, averaged over frames
            return StepOutput(loss, loss.item(), frames, None)  # windows are independent: nothing carried
        return loss_fn

    @torch.no_grad()
    def evaluate(self, model, rolls, cfg: RunConfig, poll=lambda: None) -> float:
        """NLL per time step (nats) over every frame of ``rolls``, each piece run whole."""
        model.eval()
        order = sorted(range(len(rolls)), key=lambda i: len(rolls[i]))  # similar lengths: little padding
        B = cfg.train.eval_batch_size
        total, count = 0.0, 0
        for s in range(0, len(order), B):
            poll()
            x, y, lengths = pad([(_inputs(rolls[i]), rolls[i]) for i in order[s:s + B]], cfg.train.device)
            logits, _ = model(x, lengths)
            nll, n = frame_nll(logits, y, lengths)
            total += nll.item()
            count += n
        return total / max(count, 1)

    def describe(self, loss: float) -> float:
        return loss  # the loss is already the NLL per time step

    def finish(self, model, data: MusicData, cfg: RunConfig, out: Path) -> dict:
        if not data.test:
            return {}
        loss = self.evaluate(model, data.test, cfg)
        frames = sum(len(r) for r in data.test)
        print(f"test NLL {loss:.4f} nats per time step ({frames:,} time steps in {len(data.test)} pieces, "
              f"best-validation weights)")
        return {"test_loss": loss, "test_nll": loss, "test_steps": frames}

    # ---- evaluate and generate ------------------------------------------------------------------

    def eval_data(self, cfg: RunConfig, state, split: str, path: str | None) -> list:
        rolls = self.read_splits(cfg, path)[split]
        if not rolls:
            where = repr(path or cfg.data.path) if (path or cfg.data.path) else "the built-in chorales"
            raise UsageError(f"music data {where} has no {split} pieces")
        return rolls

    def evaluate_command(self, args, model, cfg: RunConfig, state, meta) -> int:
        """``lstmkit evaluate`` for music: NLL per time step on a split."""
        rolls = self.eval_data(cfg, state, args.split, args.data)
        loss = self.evaluate(model, rolls, cfg)
        step = meta["trainer"]["train_state"]
        weights = "latest" if args.last or "best" not in meta["files"] else f"best (step {step['best_step']})"
        print(f"{args.split}: NLL {loss:.4f} nats per time step  ({sum(len(r) for r in rolls):,} time steps in "
              f"{len(rolls)} pieces, {weights} weights)")
        return 0

    def read_prime(self, path: str, cfg: RunConfig) -> np.ndarray:
        """A prime roll from a MIDI file or a JSON list of time steps."""
        p = Path(path)
        if not p.is_file():
            raise UsageError(f"--prime {path!r} does not exist; expected a .mid file or a .json list of time steps")
        if p.suffix.lower() == ".json":
            import json
            try:
                steps = json.loads(p.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise UsageError(f"--prime {path!r} is not valid JSON: {e}") from None
            roll, dropped = pr.steps_to_roll(steps, f"--prime {path!r}", cfg.options.out_of_range)
            if dropped:
                pr.warn(f"--prime {path!r}: left out {dropped} note(s) outside the piano's {pr.LOW}-{pr.HIGH}")
            return roll
        return pr.read_midi(p, cfg.options.steps_per_beat, cfg.options.out_of_range)

    @torch.no_grad()
    def sample(self, model, prime: np.ndarray, steps: int, temperature: float = 1.0, seed: int = 0,
               device: str = "cpu") -> np.ndarray:
        """``steps`` frames sampled after ``prime`` (P, 88): each key Bernoulli(sigmoid(z / temperature));
        temperature 0 turns on exactly the keys with probability > 0.5. Returns (steps, 88)."""
        gen = torch.Generator(device=device).manual_seed(seed)
        model.eval()
        x = torch.from_numpy(_inputs(np.concatenate([prime, np.zeros((1, pr.KEYS), np.float32)])))
        logits, state = model(x.to(device).unsqueeze(1))  # the start frame and the prime: (P + 1, 1, 88)
        z = logits[-1, 0]
        out = []
        for _ in range(steps):
            if temperature == 0:
                frame = (z > 0).float()
            else:
                frame = torch.bernoulli(torch.sigmoid(z / temperature), generator=gen)
            out.append(frame.cpu().numpy())
            logits, state = model(frame.view(1, 1, -1), state=state)
            z = logits[-1, 0]
        return np.stack(out) if out else np.zeros((0, pr.KEYS), np.float32)

    def generate_command(self, args, model, cfg: RunConfig, state) -> int:
        """``lstmkit generate`` for music: a MIDI file and a piano-roll PNG next to it."""
        from ..layers.clockwork import refuse_stepping
        refuse_stepping(cfg.model.cell, "music generation")
        if not args.out:
            raise UsageError("music generation needs --out FILE.mid, the MIDI file to write")
        out = Path(args.out)
        if out.suffix.lower() not in pr.MIDI_SUFFIXES:
            raise UsageError(f"--out {args.out!r} must end in .mid or .midi")
        if not out.parent.is_dir():
            raise UsageError(f"--out {args.out!r}: directory {str(out.parent)!r} does not exist")
        steps = 64 if args.steps is None else args.steps
        if steps < 1:
            raise UsageError(f"--steps must be >= 1; got {steps}")
        if args.top_k:
            raise UsageError("--top-k is for language models; music samples each key from its own probability")
        context = cfg.train.seq_len
        prime = np.zeros((0, pr.KEYS), np.float32)
        if args.prime:
            prime = self.read_prime(args.prime, cfg)
            if len(prime) > context:
                raise UsageError(f"--prime {args.prime!r} is {len(prime)} time steps long, longer than the model's "
                                 f"context of {context} (the --seq-len it was trained with); give a shorter prime")
        new = self.sample(model, prime, steps, args.temperature, args.seed, cfg.train.device)
        roll = np.concatenate([prime, new])
        spb = state.get("steps_per_beat", 1)
        pr.write_midi(roll, out, steps_per_beat=spb)
        png = out.with_suffix(".png")
        pr.plot_roll(roll, png, f"{cfg.model.cell} {cfg.model.layers}x{cfg.model.hidden}, temperature "
                                f"{args.temperature:g}, seed {args.seed}", prime_steps=len(prime))
        notes = int((np.diff(np.concatenate([np.zeros((1, pr.KEYS)), roll > 0.5]), axis=0) > 0).sum())
        print(f"wrote {out}: {len(prime)} prime + {steps} generated time steps, {notes} notes "
              f"({len(roll) / spb / 2:.0f} s at 120 bpm); piano roll in {png}")
        return 0


# Chung et al. 2014, section 5 / table 1: models of about 20k parameters, RMSProp, gradient norm
# clipped at 1, early stopping on validation. With 88 inputs, 88 outputs and torch's two bias
# vectors, 1x34 LSTM = 19,944 parameters (GRU 1x41 = 19,809, tanh RNN 1x78 = 20,056; pass
# --cell gru --hidden 41 or --cell rnn --hidden 78). The lr and batch size are ours (they drew
# the lr per model from [1e-4, 1e-2]); seq_len 200 > the longest JSB chorale (160 steps), so
# whole chorales are trained on. Early stopping after 10 epochs without a better validation NLL.
register_preset("jsb-chung", "music", "Chung et al. 2014 JSB set-up: 1x34 LSTM (~20k params), RMSProp 3e-3, clip 1, "
                "early stopping", {
                    "model": dict(cell="lstm", layers=1, hidden=34),
                    "train": dict(optimizer="rmsprop", lr=3e-3, clip=1.0, batch_size=8, seq_len=200,
                                  eval_batch_size=32, epochs=300, early_stopping=10, log_every=25),
                })

register_task(MusicTask())
