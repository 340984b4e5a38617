"""Language modelling tasks: ``charlm`` (any UTF-8 text) and ``wordlm`` (PTB-format directory).

Both use the same model (:class:`~lstmkit.models.LanguageModel`), stateful batches
(:class:`LMBatches`) and loss; they differ in tokenisation, splits and the reported
metric: bits per character, or perplexity per word.
"""
from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.text import CharVocab, WordVocab, batchify, ptb_tokens, read_ptb_dir, read_text, vocab_from_json
from ..errors import UsageError
from ..models.lm import LanguageModel
from ..train.config import RunConfig
from ..train.trainer import StepOutput
from . import register_task
from .base import Task


@dataclass
class LMData:
    vocab: object  # CharVocab or WordVocab
    train: torch.Tensor | None  # token ids, 1-D long
    valid: torch.Tensor | None
    test: torch.Tensor | None = None

    @property
    def state(self):  # the task state (see tasks/base.py) of a language model is its vocabulary
        return self.vocab


class LMBatches:
    """The stateful-LM batches of one epoch: window i is (x, y) = rows [iT, iT+T) and [iT+1, iT+T+1).

    The stream is cut into ``batch_size * world`` contiguous columns (see ``batchify``);
    process ``rank`` of ``world`` takes its own ``batch_size`` of them, so under torchrun
    each process carries the state of its own columns. x and y are (T, B) token ids.
    """

    def __init__(self, ids: torch.Tensor, batch_size: int, seq_len: int, rank: int = 0, world: int = 1,
                 device: str = "cpu"):
        cols = batchify(ids, batch_size * world)  # (N, B * world)
        self.data = cols[:, rank * batch_size:(rank + 1) * batch_size].to(device)  # (N, B)
        self.seq_len = seq_len
        self.n = (self.data.shape[0] - 1) // seq_len

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(i)
        s = i * self.seq_len
        return self.data[s:s + self.seq_len], self.data[s + 1:s + 1 + self.seq_len]


def min_train_tokens(cfg: RunConfig, world: int = 1) -> int:
    """One training batch needs seq_len + 1 tokens in each of batch_size * world columns."""
    return (cfg.train.seq_len + 1) * cfg.train.batch_size * world


class LMTask(Task):
    next_commands = ("generate", "evaluate")
    supports_depth_gate = True
    metric_name = ""  # "bpc" or "ppl"
    unit = ""  # "character" or "word"

    # ---- config and data ------------------------------------------------------------------

    def check_config(self, cfg: RunConfig) -> None:
        if cfg.model.bidirectional:
            raise UsageError(f"--bidirectional is not valid for {self.name}: a language model predicts the next "
                             "token, and a backward direction would see it")
        if not cfg.data.path:
            raise UsageError(f"{self.name} needs --data {self.data_help}")

    @abstractmethod
    def describe(self, loss: float) -> float:
        """Defined by each task (characters or words)."""

    def state_to_json(self, vocab) -> dict:
        return vocab.to_json()

    def state_from_json(self, d: dict):
        return vocab_from_json(d)

    def check_sizes(self, cfg: RunConfig, data: LMData, world: int = 1) -> None:
        need = min_train_tokens(cfg, world)
        have = data.train.numel()
        if have < need:
            b = cfg.train.batch_size * world
            raise UsageError(
                f"data {cfg.data.path!r} is too short: its training split has {have} {self.unit}s, and one batch "
                f"needs at least (seq_len + 1) x batch_size = ({cfg.train.seq_len} + 1) x {b} = {need}"
                f"{self.short_hint(cfg, need)}; use a longer text or a smaller --seq-len / --batch-size")
        if data.valid is not None and data.valid.numel() < 2:
            raise UsageError(f"data {cfg.data.path!r}: the validation split has {data.valid.numel()} {self.unit}s; "
                             f"it needs at least 2")

    def short_hint(self, cfg, need) -> str:
        return ""

    # ---- model, batches, loss ---------------------------------------------------------------

    def build_model(self, cfg: RunConfig, vocab) -> LanguageModel:
        m = cfg.model
        return LanguageModel(len(vocab), cell=m.cell, hidden_size=m.hidden, num_layers=m.layers, embed_size=m.embed,
                             dropout=m.dropout, proj_size=m.proj, recurrent_dropout=m.recurrent_dropout,
                             zoneout=m.zoneout, tie_weights=m.tie_weights, init_range=m.init_range,
                             depth_gate=m.depth_gate)

    def batches(self, cfg: RunConfig, data: LMData, rank: int = 0, world: int = 1) -> LMBatches:
        return LMBatches(data.train, cfg.train.batch_size, cfg.train.seq_len, rank, world, cfg.train.device)

    def loss_fn(self, cfg: RunConfig):
        sum_time = cfg.train.loss_reduction == "sum-time"

        def loss_fn(model, batch, carry) -> StepOutput:
            x, y = batch  # (T, B) each
            logits, state = model(x, carry)  # (T, B, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))  # mean nats per token
            value = loss.item()
            if sum_time:  # Zaremba's code: summed over the T steps of the window, averaged over the batch
                loss = loss * x.shape[0]
            return StepOutput(loss, value, y.numel(), state)
        return loss_fn

    def evaluate(self, model, ids: torch.Tensor, cfg: RunConfig, poll=lambda: None) -> float:
        """Mean loss (nats per token) over every next-token prediction in ``ids``, state carried."""
        B = max(1, min(cfg.train.eval_batch_size, ids.numel() // 2))
        data = batchify(ids, B).to(cfg.train.device)  # (N, B)
        T = cfg.train.seq_len
        model.eval()
        total, count, state = 0.0, 0, None
        with torch.no_grad():
            for s in range(0, data.shape[0] - 1, T):
                poll()
                y = data[s + 1:s + 1 + T]
                logits, state = model(data[s:s + y.shape[0]], state)
                total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
                count += y.numel()
        return total / max(count, 1)

    def evaluate_command(self, args, model, cfg, vocab, meta) -> int:
        ids = self.eval_data(cfg, vocab, args.split, args.data)
        loss = self.evaluate(model, ids, cfg)
        unit = self.unit[:4] if self.unit == "character" else self.unit
        step = meta["trainer"]["train_state"]
        weights = "latest" if args.last or "best" not in meta["files"] else f"best (step {step['best_step']})"
        print(f"{args.split}: loss {loss:.4f} nats/{unit}, {self.metric_name} {self.describe(loss):.4f}"
              + (f", {loss / math.log(2):.4f} bits/{unit}" if self.metric_name == "ppl" else "")
              + f"  ({ids.numel():,} {self.unit}s, {weights} weights)")
        return 0

    # ---- generation ---------------------------------------------------------------------------

    def generate_command(self, args, model, cfg, vocab) -> int:
        if args.out or args.steps is not None:
            raise UsageError("--out and --steps are for music runs; a language model prints --length tokens")
        prime = args.prime if args.prime is not None else self.default_prime(vocab)
        print(self.generate(model, vocab, prime, args.length, args.temperature, args.top_k, args.seed,
                            cfg.train.device))
        return 0

    @abstractmethod
    def encode_prime(self, vocab, prime: str) -> list[int]:
        """Defined by each task (characters or words)."""

    @abstractmethod
    def default_prime(self, vocab) -> str:
        """Defined by each task (characters or words)."""

    @torch.no_grad()
    def generate(self, model, vocab, prime: str, length: int, temperature: float = 1.0, top_k: int = 0,
                 seed: int = 0, device: str = "cpu") -> str:
        """``length`` tokens sampled after ``prime`` (temperature 0 = greedy; top_k 0 = all tokens)."""
        from ..layers.clockwork import refuse_stepping
        refuse_stepping(model.rnn.variant, "sampling")
        ids = self.encode_prime(vocab, prime)
        gen = torch.Generator(device=device).manual_seed(seed)
        model.eval()
        logits, state = model(torch.tensor(ids, device=device).view(-1, 1), None)  # (T, 1, V)
        last = logits[-1, 0]
        out = []
        for _ in range(length):
            if temperature == 0:
                nxt = last.argmax().view(1)
            else:
                scores = last / temperature
                if top_k:
                    kth = torch.topk(scores, min(top_k, scores.numel())).values[-1]
                    scores = scores.masked_fill(scores < kth, float("-inf"))
                nxt = torch.multinomial(F.softmax(scores, dim=-1), 1, generator=gen)
            out.append(int(nxt))
            logits, state = model(nxt.view(1, 1), state)
            last = logits[-1, 0]
        return self.join(vocab, prime, out)


class CharLM(LMTask):
    name = "charlm"
    summary = "character-level language model on any UTF-8 text file (bits/char)"
    default_preset = "char-small"
    metric_name = "bpc"
    unit = "character"
    data_help = "FILE (a UTF-8 text file)"

    def describe(self, loss: float) -> float:
        return loss / math.log(2)  # nats -> bits per character

    def load(self, cfg: RunConfig, vocab: CharVocab | None = None) -> LMData:
        text = read_text(cfg.data.path)
        if vocab is None:
            vocab = CharVocab.from_text(text)  # the whole file's characters, so validation has no unknowns
        ids = torch.tensor(vocab.encode(text, f"data {cfg.data.path!r}"), dtype=torch.long)
        n_valid = int(len(ids) * cfg.data.valid_fraction)
        if n_valid == 0:
            return LMData(vocab, ids, None)
        return LMData(vocab, ids[:-n_valid], ids[-n_valid:])

    def short_hint(self, cfg, need) -> str:
        return f" (a file of at least {math.ceil(need / (1 - cfg.data.valid_fraction))} characters)"

    def eval_data(self, cfg: RunConfig, vocab, split: str, path: str | None) -> torch.Tensor:
        if split == "test":
            if not path:
                raise UsageError("charlm has no test split of its own; give --data FILE to evaluate on a text file")
            return torch.tensor(vocab.encode(read_text(path), f"data {path!r}"), dtype=torch.long)
        if path:
            cfg.data.path = path
        data = self.load(cfg, vocab)
        if data.valid is None:
            raise UsageError("this run has no validation split (valid_fraction = 0); use --split test --data FILE")
        return data.valid

    def encode_prime(self, vocab: CharVocab, prime: str) -> list[int]:
        if not prime:
            raise UsageError("--prime must not be empty")
        return vocab.encode(prime, "--prime")

    def default_prime(self, vocab: CharVocab) -> str:
        return "\n" if "\n" in vocab.chars else vocab.chars[0]

    def join(self, vocab, prime, out) -> str:
        return prime + vocab.decode(out)


class WordLM(LMTask):
    name = "wordlm"
    summary = "word-level language model on a PTB-format directory (train/valid/test.txt; perplexity)"
    default_preset = "ptb-small"
    metric_name = "ppl"
    unit = "word"
    data_help = "DIR (with train.txt, valid.txt, test.txt)"

    def describe(self, loss: float) -> float:
        return math.exp(min(loss, 700.0))  # perplexity; capped so a diverged run prints inf-free numbers

    def load(self, cfg: RunConfig, vocab: WordVocab | None = None) -> LMData:
        splits = read_ptb_dir(cfg.data.path, ("train", "valid"))
        if vocab is None:
            vocab = WordVocab.from_tokens(splits["train"])
        enc = {s: torch.tensor(vocab.encode(t, f"{s}.txt"), dtype=torch.long) for s, t in splits.items()}
        return LMData(vocab, enc["train"], enc["valid"])

    def eval_data(self, cfg: RunConfig, vocab, split: str, path: str | None) -> torch.Tensor:
        directory = path or cfg.data.path
        tokens = read_ptb_dir(directory, (split,))[split]
        return torch.tensor(vocab.encode(tokens, f"{split}.txt"), dtype=torch.long)

    def encode_prime(self, vocab: WordVocab, prime: str) -> list[int]:
        words = ptb_tokens(prime)[:-1] if prime.strip() else []
        if not words:
            raise UsageError("--prime must hold at least one word")
        unknown = [w for w in dict.fromkeys(words) if w not in set(vocab.words)]
        if unknown:
            raise UsageError(f"--prime holds {len(unknown)} word(s) the model never saw: {' '.join(unknown[:10])!r}")
        return vocab.encode(words)

    def default_prime(self, vocab: WordVocab) -> str:
        return "the" if "the" in vocab.words else vocab.words[0]

    def join(self, vocab, prime, out) -> str:
        return prime + " " + vocab.decode(out)


register_task(CharLM())
register_task(WordLM())
