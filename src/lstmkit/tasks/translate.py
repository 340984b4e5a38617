"""``translate``: sequence-to-sequence translation of sentence pairs, with or without attention.

Data: ``--data pairs.tsv`` (SOURCE<TAB>TARGET per line, see ``data/pairs.py``), or, without
``--data``, the built-in date task (dates written out by babel in ten locales -> ISO 8601).
The pairs are split train / valid / test with a seeded shuffle. The task state is the two
vocabularies (JSON in checkpoint.json). The loss is cross-entropy per target token under
teacher forcing; the reported metric is its perplexity. After training, ``finish`` decodes
the test split and reports BLEU (sacrebleu) and exact-match accuracy, and writes
``test_translations.tsv`` and an attention heatmap (``attention.png``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.pairs import (DATE_FORMAT_SETS, PAD, TOKENISERS, PairBatches, PairSplit, Vocab, date_pairs, detokenize,
                          encode_split, make_batch, read_pairs, split_pairs, tokenize)
from ..errors import UsageError
from ..registry import get_variant
from ..models.seq2seq import ATTENTIONS, Seq2Seq, beam_search, greedy_decode
from ..train.config import RunConfig, register_preset
from ..train.trainer import StepOutput
from . import register_task
from .base import Task, option
from ..plots import pyplot, save_figure

N_SAMPLES = 5  # sample translations printed after training


@dataclass
class TranslateOptions:
    tokens: str = option("char", "tokens on both sides: characters or whitespace-separated words", TOKENISERS)
    vocab_size: int = option(0, "largest vocabulary per side, the 4 specials <pad> <bos> <eos> <unk> included; "
                                "rarer tokens become <unk> (0 = no limit)")
    attention: str = option("additive", "none (Sutskever 2014), additive (Bahdanau 2015) or multiplicative "
                                        "(Luong 2015 'general')", ATTENTIONS)
    input_feeding: bool = option(True, "multiplicative attention: feed the attentional vector to the next decoder "
                                       "step (Luong 2015, 3.3); off = the decoder runs over the whole target at once")
    test_fraction: float = option(0.1, "fraction of the pairs held out for BLEU and exact match")
    data_seed: int = option(0, "seeds the date generator and the train/valid/test split")
    date_pairs: int = option(20000, "built-in date task (no --data): number of distinct pairs")
    date_formats: str = option("all", "built-in date task: all (numeric, abbreviated, long, full), long (month "
                                      "written out), full (with the weekday) or intervals (two dates -> "
                                      "ISO start/end: the longest)", tuple(DATE_FORMAT_SETS))
    beam: int = option(1, "beam width for decoding the test split after training (1 = greedy)")
    length_penalty: float = option(0.6, "beam search length normalisation alpha, GNMT's ((5+|Y|)/6)^alpha "
                                        "(0 = raw log-probability)")


@dataclass
class TranslateState:
    """Everything besides the weights that a trained model needs."""

    tokens: str  # "char" or "word"
    src: Vocab
    tgt: Vocab
    max_tgt_len: int  # longest training target, in tokens: bounds the decoding length

    def to_json(self) -> dict:
        return {"tokens": self.tokens, "src": self.src.to_json(), "tgt": self.tgt.to_json(),
                "max_tgt_len": self.max_tgt_len}

    @classmethod
    def from_json(cls, d: dict) -> "TranslateState":
        if d["tokens"] not in TOKENISERS:
            raise ValueError(f"unknown tokens {d['tokens']!r}")
        return cls(d["tokens"], Vocab.from_json(d["src"]), Vocab.from_json(d["tgt"]), int(d["max_tgt_len"]))

    def max_len(self) -> int:
        return 2 * self.max_tgt_len + 10


@dataclass
class PairData:
    state: TranslateState
    train: PairSplit
    valid: PairSplit | None
    test: PairSplit


class TranslateTask(Task):
    name = "translate"
    summary = "sequence-to-sequence translation of TSV pairs (built-in: dates in 10 languages -> ISO 8601)"
    default_preset = "dates"
    metric_name = "ppl"
    unit = "token"
    data_help = "pairs.tsv (SOURCE<TAB>TARGET per line, UTF-8); without --data: the built-in date task"
    Options = TranslateOptions
    next_commands = ("translate",)
    run_files = ("attention.png", "test_translations.tsv")

    # ---- config and data -----------------------------------------------------------------

    def check_config(self, cfg: RunConfig) -> None:
        o = cfg.options
        from ..layers.clockwork import refuse_stepping
        refuse_stepping(cfg.model.cell, "the decoder")
        if cfg.model.bidirectional and get_variant(cfg.model.cell).family in ("clockwork", "grid"):
            raise UsageError(f"--bidirectional is not available for --cell {cfg.model.cell}: the {cfg.model.cell} "
                             f"layer runs in one direction only")
        if cfg.model.tie_weights:
            raise UsageError("--tie-weights is not valid for translate: source and target have their own vocabularies")
        if o.vocab_size != 0 and o.vocab_size < 5:
            raise UsageError(f"--vocab-size must be 0 (no limit) or >= 5 (the 4 specials and one token); "
                             f"got {o.vocab_size}")
        if not 0 < o.test_fraction < 1 or not o.test_fraction + cfg.data.valid_fraction < 1:
            raise UsageError(f"--test-fraction must be in (0, 1) and leave training pairs next to "
                             f"--valid-fraction {cfg.data.valid_fraction}; got {o.test_fraction}")
        if o.beam < 1:
            raise UsageError(f"--beam must be >= 1; got {o.beam}")
        if not o.length_penalty >= 0 or math.isinf(o.length_penalty):
            raise UsageError(f"--length-penalty must be >= 0; got {o.length_penalty}")
        if not cfg.data.path and o.date_pairs < 10:
            raise UsageError(f"--date-pairs must be >= 10; got {o.date_pairs}")

    def load(self, cfg: RunConfig, state: TranslateState | None = None) -> PairData:
        o = cfg.options
        if cfg.data.path:
            pairs = read_pairs(cfg.data.path)
            where = f"data {cfg.data.path!r}"
        else:
            pairs = date_pairs(o.date_pairs, o.data_seed, o.date_formats)
            where = "the date task"
        train, valid, test = split_pairs(pairs, cfg.data.valid_fraction, o.test_fraction, o.data_seed)
        for split, n in (("training", len(train)), ("test", len(test))) + ((("validation", len(valid)),)
                                                                           if cfg.data.valid_fraction else ()):
            if n == 0:
                raise UsageError(f"{where} has {len(pairs)} pairs: too few for a {split} split "
                                 f"(--valid-fraction {cfg.data.valid_fraction}, --test-fraction {o.test_fraction})")
        if state is None:
            kind = o.tokens
            src = Vocab.build((tokenize(s, kind) for s, _ in train), o.vocab_size)
            tgt = Vocab.build((tokenize(t, kind) for _, t in train), o.vocab_size)
            state = TranslateState(kind, src, tgt, max(len(tokenize(t, kind)) for _, t in train))
        enc = [encode_split(p, state.tokens, state.src, state.tgt) for p in (train, valid, test)]
        return PairData(state, enc[0], enc[1] if valid else None, enc[2])

    def state_to_json(self, state: TranslateState) -> dict:
        return state.to_json()

    def state_from_json(self, d: dict) -> TranslateState:
        return TranslateState.from_json(d)

    # ---- model, batches, loss --------------------------------------------------------------

    def build_model(self, cfg: RunConfig, state: TranslateState) -> Seq2Seq:
        m, o = cfg.model, cfg.options
        return Seq2Seq(len(state.src), len(state.tgt), cell=m.cell, hidden_size=m.hidden, num_layers=m.layers,
                       embed_size=m.embed, bidirectional=m.bidirectional, attention=o.attention,
                       input_feeding=o.input_feeding, dropout=m.dropout, proj_size=m.proj,
                       recurrent_dropout=m.recurrent_dropout, zoneout=m.zoneout)

    def batches(self, cfg: RunConfig, data: PairData, rank: int = 0, world: int = 1) -> PairBatches:
        return PairBatches(data.train, cfg.train.batch_size, cfg.train.seed, rank, world, cfg.train.device)

    def loss_fn(self, cfg: RunConfig):
        def loss_fn(model, batch, carry) -> StepOutput:
            src, src_len, tgt_in, tgt_out = batch
            logits = model(src, src_len, tgt_in)  # (T, B, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=PAD)
            return StepOutput(loss, loss.item(), int((tgt_out != PAD).sum()), None)
        return loss_fn

    def evaluate(self, model, split: PairSplit, cfg: RunConfig, poll=lambda: None) -> float:
        """Mean cross-entropy (nats) per target token, <eos> included, under teacher forcing."""
        model.eval()
        total, count = 0.0, 0
        B = max(cfg.train.eval_batch_size, 1)
        with torch.no_grad():
            for s in range(0, len(split), B):
                poll()
                src, src_len, tgt_in, tgt_out = make_batch(split, list(range(s, min(s + B, len(split)))),
                                                           cfg.train.device)
                logits = model(src, src_len, tgt_in)
                total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
                                         ignore_index=PAD, reduction="sum").item()
                count += int((tgt_out != PAD).sum())
        return total / max(count, 1)

    def describe(self, loss: float) -> float:
        return math.exp(min(loss, 700.0))  # perplexity per target token

    # ---- translating -----------------------------------------------------------------------

    def translate(self, model, state: TranslateState, sources: list[str], beam: int = 1, alpha: float = 0.6,
                  device: str = "cpu", batch_size: int = 64, poll=lambda: None) -> tuple[list[str], list]:
        """Translations of ``sources`` (and per sentence the attention (T_out, S) or None).

        beam=1 decodes greedily, ``batch_size`` sentences at a time; beam > 1 runs beam search
        one sentence at a time. Unknown source tokens become <unk>.
        """
        kind = state.tokens
        ids = [state.src.encode(tokenize(s, kind)) for s in sources]
        for n, (s, i) in enumerate(zip(sources, ids)):
            if not i:
                raise UsageError(f"source {n + 1} is empty: {s!r}; expected text to translate")
        outs, attns = [], []
        model.eval()
        if beam == 1:
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths pad less
            res = {}
            for s in range(0, len(order), batch_size):
                poll()
                idx = order[s:s + batch_size]
                split = PairSplit([], [ids[i] for i in idx], [[] for _ in idx])
                src, src_len, _, _ = make_batch(split, list(range(len(idx))), device)
                toks, weights = greedy_decode(model, src, src_len, state.max_len())
                res.update({i: (t, w) for i, t, w in zip(idx, toks, weights)})
            outs, attns = [res[i][0] for i in range(len(ids))], [res[i][1] for i in range(len(ids))]
        else:
            for i in ids:
                poll()
                toks, w, _ = beam_search(model, torch.tensor(i, device=device), state.max_len(), beam, alpha)
                outs.append(toks)
                attns.append(w)
        return [detokenize(state.tgt.decode(t), kind) for t in outs], attns

    def finish(self, model, data: PairData, cfg: RunConfig, out: Path) -> dict:
        o, state = cfg.options, data.state
        sources = [s for s, _ in data.test.pairs]
        refs = [t for _, t in data.test.pairs]
        hyps, attns = self.translate(model, state, sources, o.beam, o.length_penalty, cfg.train.device,
                                     cfg.train.eval_batch_size)
        scores = score_translations(hyps, refs, sources)
        write_tsv(out / "test_translations.tsv", zip(sources, refs, hyps))  # source, reference, translation
        decoding = "greedy" if o.beam == 1 else f"beam {o.beam}, length penalty {o.length_penalty}"
        print(f"test ({len(refs)} pairs, {decoding}): BLEU {scores['bleu']:.2f}, exact match "
              f"{scores['exact_match']:.4f}; on the longest quarter of sources ({scores['long_n']} pairs, "
              f">= {scores['long_min_chars']} characters): exact match {scores['exact_match_long']:.4f}")
        for s, r, h in list(zip(sources, refs, hyps))[:N_SAMPLES]:
            print(f"  {s}  ->  {h}" + ("" if h == r else f"   (reference: {r})"))
        result = {f"test_{k}": v for k, v in scores.items()}
        result["test_decoding"] = decoding
        if o.attention != "none":
            longest = max(range(len(sources)), key=lambda i: (len(data.test.src[i]), -i))
            if attns[longest] is not None:
                ok = plot_attention(attns[longest], tokenize(sources[longest], state.tokens),
                                    tokenize(hyps[longest], state.tokens), out / "attention.png",
                                    f"{o.attention} attention, {cfg.model.cell}")
                if ok:
                    print(f"attention heatmap of the longest test source: {out / 'attention.png'}")
        return result


# ---- scoring and files ---------------------------------------------------------------------------

def bleu(hyps: list[str], refs: list[str]) -> float:
    """Corpus BLEU (sacrebleu's defaults: 13a tokenisation, 4-grams, exponential smoothing off)."""
    try:
        import sacrebleu
    except ModuleNotFoundError:
        raise UsageError("BLEU needs the sacrebleu package: pip install 'lstmkit[translate]'") from None
    return float(sacrebleu.corpus_bleu(hyps, [refs]).score)


def score_translations(hyps: list[str], refs: list[str], sources: list[str]) -> dict:
    """BLEU, exact match, and exact match on the longest quarter of the sources (by characters)."""
    exact = [h == r for h, r in zip(hyps, refs)]
    by_len = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    long = by_len[len(by_len) - max(1, len(by_len) // 4):]
    return {"bleu": round(bleu(hyps, refs), 4), "exact_match": round(sum(exact) / max(len(exact), 1), 6),
            "exact_match_long": round(sum(exact[i] for i in long) / len(long), 6), "long_n": len(long),
            "long_min_chars": min(len(sources[i]) for i in long), "pairs": len(refs)}


def write_tsv(path: Path, rows) -> None:
    """Tab-separated rows, written atomically (tabs and newlines inside a field become spaces)."""
    text = "".join("\t".join(" ".join(str(f).split()) for f in r) + "\n" for r in rows)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def plot_attention(weights: torch.Tensor, src_tokens: list[str], out_tokens: list[str], png: Path,
                   title: str = "") -> bool:
    """A heatmap of attention weights (T_out, S): rows the output tokens (and <eos>), columns the source.

    Returns False when matplotlib is missing (then nothing is written).
    """
    plt = pyplot()
    if plt is None:
        return False
    w = weights.numpy()
    rows = list(out_tokens)[:w.shape[0]] + ["<eos>"] * max(0, w.shape[0] - len(out_tokens))
    cols = [t if t.strip() else "␣" for t in src_tokens]
    fig, ax = plt.subplots(figsize=(max(4, 0.3 * len(cols) + 2), max(3, 0.3 * len(rows) + 1.5)))
    im = ax.imshow(w, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, fontsize=8, rotation=90 if any(len(c) > 2 for c in cols) else 0)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    save_figure(fig, png, dpi=110)
    return True


register_task(TranslateTask())

register_preset("dates", "translate", "1x128 LSTM encoder-decoder with additive attention, Adam 2e-3: the built-in "
                "date task in minutes on a CPU", {
                    "model": dict(layers=1, hidden=128, embed=32),
                    "train": dict(optimizer="adam", lr=2e-3, batch_size=64, eval_batch_size=256, epochs=8, clip=5.0,
                                  log_every=50),
                })
