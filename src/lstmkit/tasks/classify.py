"""``classify``: one label per variable-length, uni- or multivariate sequence.

Data: a long-format CSV, an NPZ archive or a built-in data set (see
:mod:`lstmkit.data.series`). When the data fixes the split (NPZ ``split``, a CSV ``split``
column, a built-in's train/test) it is used; a missing validation part is drawn from the
training sequences (``valid_fraction``, stratified by class, seeded). Otherwise the
sequences are split at random, stratified: ``test_fraction`` test, ``valid_fraction``
valid. Features are standardised with the mean and standard deviation of every time step
of the training sequences.

The model (:class:`~lstmkit.models.sequence.SequenceClassifier`) reads the packed
sequences with any cell variant, optionally stacked and bidirectional, and maps the last
state or a mean / max over time to class logits; the loss is cross-entropy, optionally
with class weights. :meth:`Classify.finish` reports test accuracy and macro-F1 and writes
``confusion.png`` and ``test_predictions.csv``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_sequence

from ..data.series import BUILTIN, FILLS, Sequences, read_sequences, split_names, write_csv
from ..errors import UsageError
from ..models.sequence import READOUTS, SequenceClassifier
from ..train.config import RunConfig, register_preset
from ..train.trainer import StepOutput
from . import register_task
from .base import Task, option
from ..plots import pyplot, save_figure

EVAL_CHUNK = 256  # sequences per forward pass when evaluating


@dataclass
class ClassifyState:
    classes: list  # class names; logit k is classes[k]
    features: list  # feature names (NPZ and built-ins: f0, f1, ...)
    mean: list  # per feature, over every time step of the training sequences
    std: list
    class_weights: list | None  # cross-entropy weight per class, or None


@dataclass
class ClassifySplit:
    x: list  # normalised (T_i, F) float32 tensors
    y: torch.Tensor  # (n,) class indices
    ids: list


@dataclass
class ClassifyData:
    state: ClassifyState
    train: ClassifySplit
    valid: ClassifySplit | None
    test: ClassifySplit | None


def class_order(labels) -> list[str]:
    """Distinct labels, numerically when every label is an integer ("2" before "10"), else as strings."""
    names = set(labels)
    try:
        return sorted(names, key=int)
    except ValueError:
        return sorted(names)


def stratified(labels: list[str], fraction: float, seed: int, pool) -> tuple[list, list]:
    """Split the indices ``pool`` into (rest, held out): round(fraction * n_c) of each class held out
    (at most n_c - 1, so every class keeps at least one rest example)."""
    rng = np.random.default_rng(seed)
    rest, held = [], []
    for c in class_order(labels[i] for i in pool):
        idx = [i for i in pool if labels[i] == c]
        idx = [idx[k] for k in rng.permutation(len(idx))]
        k = min(int(round(fraction * len(idx))), len(idx) - 1)
        held += idx[:k]
        rest += idx[k:]
    return sorted(rest), sorted(held)


def assign_splits(seqs: Sequences, valid_fraction: float, test_fraction: float, seed: int) -> dict:
    """{"train": [...], "valid": [...], "test": [...]} sequence indices."""
    n = len(seqs.x)
    if seqs.split is not None:
        parts = {s: [i for i in range(n) if seqs.split[i] == s] for s in ("train", "valid", "test")}
        if not parts["valid"] and valid_fraction > 0:
            parts["train"], parts["valid"] = stratified(seqs.labels, valid_fraction, seed, parts["train"])
        return parts
    rest, test = stratified(seqs.labels, test_fraction, seed, range(n))
    train, valid = stratified(seqs.labels, valid_fraction / (1 - test_fraction), seed + 1, rest) \
        if valid_fraction > 0 else (rest, [])
    return {"train": train, "valid": valid, "test": test}


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """(C, C) counts: row = true class, column = predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return m


def macro_f1(cm: np.ndarray) -> float:
    """Mean over classes of F1 = 2TP / (2TP + FP + FN), over the classes that occur in the truth or the
    predictions (as scikit-learn's default labels)."""
    tp = np.diag(cm).astype(float)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    present = (cm.sum(0) + cm.sum(1)) > 0
    f1 = 2 * tp[present] / np.maximum(2 * tp[present] + fp[present] + fn[present], 1)
    return float(f1.mean()) if present.any() else math.nan


class ClassifyBatches:
    """Training sequences in a fixed shuffled order (seeded), packed ``batch_size`` at a time."""

    def __init__(self, split: ClassifySplit, batch_size, seed=0, rank=0, world=1, device="cpu"):
        self.split, self.device = split, device
        self.order = np.random.default_rng(seed).permutation(len(split.x))
        self.size, self.rank, self.world = batch_size * world, rank, world
        n = len(split.x)
        self.n = math.ceil(n / self.size) if world == 1 else max(1, n // self.size)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(i)
        idx = self.order[i * self.size:(i + 1) * self.size][self.rank::self.world]
        x = pack_sequence([self.split.x[k] for k in idx], enforce_sorted=False).to(self.device)
        return x, self.split.y[idx].to(self.device)


class Classify(Task):
    name = "classify"
    summary = "sequence classification (long-format CSV, NPZ or built-in JapaneseVowels; accuracy, macro-F1)"
    default_preset = "japanese-vowels"
    metric_name = "nll"  # mean cross-entropy in nats per sequence (unweighted)
    unit = "sequence"
    data_help = "FILE.csv (long format) or FILE.npz or builtin:japanesevowels|basicmotions"
    next_commands = ("predict",)
    run_files = ("confusion.png", "test_predictions.csv", "predictions.csv", "predictions.csv.tmp")

    @dataclass
    class Options:
        features: str = option("", "feature columns, comma-separated (default: all but id, label, time, split)")
        time_column: str = option("", "a time column, checked to be strictly increasing within each sequence")
        fill: str = option("none", "empty or NaN cells: none (an error), ffill, interpolate or drop (within "
                                   "each sequence)", FILLS)
        id_column: str = option("id", "long CSV: the column naming each row's sequence")
        label_column: str = option("label", "long CSV: the column holding each sequence's class")
        readout: str = option("last", "what the classifier reads: the last state, or the mean or max over time",
                              READOUTS)
        class_weights: str = option("none", "cross-entropy class weights: none, or balanced (n / (C n_c), for "
                                            "imbalanced classes)", ("none", "balanced"))
        test_fraction: float = option(0.2, "fraction of the sequences held out for testing when the data has "
                                            "no split")

    def check_config(self, cfg: RunConfig) -> None:
        o = cfg.options
        if not 0 <= o.test_fraction < 1 or not o.test_fraction + cfg.data.valid_fraction < 1:
            raise UsageError(f"--test-fraction must be in [0, 1), and with --valid-fraction below 1; got "
                             f"{o.test_fraction} and {cfg.data.valid_fraction}")
        if not cfg.data.path:
            raise UsageError(f"classify needs --data {self.data_help}")

    def _read(self, cfg: RunConfig, path: str, need_labels: bool = True, features=None) -> Sequences:
        o = cfg.options
        return read_sequences(path, id_column=o.id_column, label_column=o.label_column,
                              time_column=o.time_column, features=split_names(o.features) if features is None
                              else features, fill=o.fill, need_labels=need_labels)

    def load(self, cfg: RunConfig, state: ClassifyState | None = None) -> ClassifyData:
        o = cfg.options
        seqs = self._read(cfg, cfg.data.path)
        parts = assign_splits(seqs, cfg.data.valid_fraction, o.test_fraction, cfg.train.seed)
        train_labels = {seqs.labels[i] for i in parts["train"]}
        if not parts["train"]:
            raise UsageError(f"{seqs.source}: no sequence is in the training split")
        if len(train_labels) < 2:
            raise UsageError(f"{seqs.source}: the training sequences have only one class "
                             f"({next(iter(train_labels))!r}); classification needs at least 2")
        if state is None:
            classes = seqs.classes or class_order(seqs.labels)
            steps = np.concatenate([seqs.x[i] for i in parts["train"]]).astype(np.float64)  # (sum T_i, F)
            std = steps.std(axis=0)
            std[std == 0] = 1.0
            weights = None
            if o.class_weights == "balanced":
                counts = np.array([sum(seqs.labels[i] == c for i in parts["train"]) for c in classes], dtype=float)
                weights = (counts.sum() / (len(classes) * np.maximum(counts, 1))).tolist()
            state = ClassifyState(classes, seqs.features, steps.mean(axis=0).tolist(), std.tolist(), weights)
        elif seqs.n_features != len(state.features):
            raise UsageError(f"{seqs.source} has {seqs.n_features} features; the run was trained on "
                             f"{len(state.features)}")
        index = {c: k for k, c in enumerate(state.classes)}
        unknown = sorted({seqs.labels[i] for i in range(len(seqs.x))} - index.keys())
        if unknown:
            raise UsageError(f"{seqs.source}: labels the run does not know: {', '.join(map(repr, unknown[:10]))}")

        def make(ix):
            if not ix:
                return None
            x = [torch.tensor((seqs.x[i] - np.asarray(state.mean)) / np.asarray(state.std), dtype=torch.float32)
                 for i in ix]
            return ClassifySplit(x, torch.tensor([index[seqs.labels[i]] for i in ix]), [seqs.ids[i] for i in ix])
        return ClassifyData(state, make(parts["train"]), make(parts["valid"]), make(parts["test"]))

    def check_sizes(self, cfg: RunConfig, data: ClassifyData, world: int = 1) -> None:
        if len(data.train.x) < world:
            raise UsageError(f"{world} processes need at least {world} training sequences")

    def state_to_json(self, state: ClassifyState) -> dict:
        return dict(state.__dict__)

    def state_from_json(self, d: dict) -> ClassifyState:
        return ClassifyState(**d)

    def build_model(self, cfg: RunConfig, state: ClassifyState) -> SequenceClassifier:
        m = cfg.model
        return SequenceClassifier(len(state.features), len(state.classes), cell=m.cell, hidden_size=m.hidden,
                                  num_layers=m.layers, bidirectional=m.bidirectional, dropout=m.dropout,
                                  proj_size=m.proj, recurrent_dropout=m.recurrent_dropout, zoneout=m.zoneout,
                                  readout=cfg.options.readout, class_weights=state.class_weights)

    def batches(self, cfg: RunConfig, data: ClassifyData, rank: int = 0, world: int = 1) -> ClassifyBatches:
        return ClassifyBatches(data.train, cfg.train.batch_size, cfg.train.seed, rank, world, cfg.train.device)

    def loss_fn(self, cfg: RunConfig):
        def loss_fn(model, batch, carry) -> StepOutput:
            x, y = batch  # PackedSequence of B sequences, (B,) class indices
            weights = getattr(model, "module", model).class_weights  # DDP wraps the model
            loss = F.cross_entropy(model(x), y, weight=weights)
            return StepOutput(loss, loss.item(), y.numel())
        return loss_fn

    @torch.no_grad()
    def probabilities(self, model, x: list, device: str = "cpu", poll=lambda: None) -> torch.Tensor:
        """(n, C) class probabilities of the normalised sequences ``x``."""
        model.eval()
        out = []
        for s in range(0, len(x), EVAL_CHUNK):
            poll()
            out.append(F.softmax(model(pack_sequence(x[s:s + EVAL_CHUNK], enforce_sorted=False).to(device)), -1).cpu())
        return torch.cat(out)

    def evaluate(self, model, split: ClassifySplit, cfg: RunConfig, poll=lambda: None) -> float:
        """Mean cross-entropy (nats per sequence, unweighted)."""
        p = self.probabilities(model, split.x, cfg.train.device, poll)
        return float(F.nll_loss(torch.log(p.clamp_min(1e-12)), split.y))

    def describe(self, loss: float) -> float:
        return loss

    def finish(self, model, data: ClassifyData, cfg: RunConfig, out: Path) -> dict:
        if data.test is None:
            print("no test split: the data has none and --test-fraction is 0")
            return {}
        st = data.state
        p = self.probabilities(model, data.test.x, cfg.train.device)
        pred = p.argmax(1)
        y = data.test.y
        cm = confusion(y, pred, len(st.classes))
        acc = float((pred == y).float().mean())
        f1 = macro_f1(cm)
        print(f"test: {len(y)} sequences, {len(st.classes)} classes: accuracy {acc:.4f} ({int((pred == y).sum())}/"
              f"{len(y)}), macro-F1 {f1:.4f}, error {1 - acc:.4f}  [{cfg.model.cell} {cfg.model.layers}x"
              f"{cfg.model.hidden}{' bidirectional' if cfg.model.bidirectional else ''}, readout "
              f"{cfg.options.readout}]")
        rows = [[i, st.classes[int(t)], st.classes[int(k)]] + [f"{v:.6f}" for v in pr.tolist()]
                for i, t, k, pr in zip(data.test.ids, y, pred, p)]
        write_csv(out / "test_predictions.csv", ["id", "label", "predicted"] + [f"p_{c}" for c in st.classes], rows)
        plotted = plot_confusion(out / "confusion.png", cm, st.classes,
                                 f"{cfg.data.path}: test accuracy {acc:.3f}, macro-F1 {f1:.3f}")
        return {"test_accuracy": round(acc, 6), "test_macro_f1": round(f1, 6), "test_sequences": len(y),
                "confusion": cm.tolist(), "files": ["test_predictions.csv"] + (["confusion.png"] if plotted else [])}

    def predict(self, model, cfg: RunConfig, state: ClassifyState, path: str | None, out: Path) -> str:
        """Labels and class probabilities for every sequence of ``path`` (default: the run's own data)."""
        path = path or cfg.data.path
        features = state.features if not path.startswith(BUILTIN) and path.lower().endswith((".csv", ".txt")) \
            else None
        seqs = self._read(cfg, path, need_labels=False, features=features)
        if seqs.n_features != len(state.features):
            raise UsageError(f"{seqs.source} has {seqs.n_features} features per step; the run was trained on "
                             f"{len(state.features)}")
        x = [torch.tensor((s - np.asarray(state.mean)) / np.asarray(state.std), dtype=torch.float32) for s in seqs.x]
        p = self.probabilities(model, x, cfg.train.device)
        pred = p.argmax(1).tolist()
        header = ["id", "predicted"] + [f"p_{c}" for c in state.classes] + (["label"] if seqs.labels else [])
        rows = [[i, state.classes[k]] + [f"{v:.6f}" for v in pr.tolist()] + ([lab] if seqs.labels else [])
                for i, k, pr, lab in zip(seqs.ids, pred, p, seqs.labels or [None] * len(pred))]
        write_csv(out, header, rows)
        msg = f"{len(pred)} sequences of {seqs.source} labelled -> {out}"
        if seqs.labels:
            right = sum(state.classes[k] == lab for k, lab in zip(pred, seqs.labels))
            msg += f"; accuracy against its labels {right / len(pred):.4f} ({right}/{len(pred)})"
        return msg


def plot_confusion(png: Path, cm: np.ndarray, classes: list, title: str) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    C = len(classes)
    size = min(3 + 0.45 * C, 14)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(cm, cmap="Blues")
    for i in range(C):
        for j in range(C):
            if C <= 30:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(C), [str(c)[:12] for c in classes], rotation=45 if C > 6 else 0, ha="right" if C > 6 else
                  "center")
    ax.set_yticks(range(C), [str(c)[:12] for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, png)
    return True


register_task(Classify())
register_preset("japanese-vowels", "classify", "1x64 LSTM, last-state readout on JapaneseVowels "
                "(built in; aeon)", {
                    "model": dict(layers=1, hidden=64),
                    "data": dict(path="builtin:japanesevowels", valid_fraction=0.1),
                    "train": dict(optimizer="adam", lr=3e-3, batch_size=16, epochs=60, eval_every=0,
                                  early_stopping=15, clip=1.0, log_every=20, eval_batch_size=64),
                })
register_preset("basic-motions", "classify", "1x64 bidirectional LSTM, mean readout on BasicMotions (built in; "
                "aeon)", {
                    "model": dict(layers=1, hidden=64, bidirectional=True),
                    "data": dict(path="builtin:basicmotions", valid_fraction=0.1),
                    "train": dict(optimizer="adam", lr=3e-3, batch_size=8, epochs=80, eval_every=0,
                                  early_stopping=20, clip=1.0, log_every=20, eval_batch_size=64),
                    "options": dict(readout="mean"),
                })
