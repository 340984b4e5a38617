r"""An encoder-decoder of any registered cell variant, with or without attention.

The plain model is Sutskever et al. 2014 (arXiv:1409.3215, section 2): an encoder reads the
source, its final state starts the decoder, and the decoder predicts the target one token at
a time from the previous target token. Notation: source tokens x_1..x_S, encoder outputs
\bar h_s (both directions concatenated when the encoder is bidirectional; width M), decoder
top-layer output h_t (width P), E the target embedding, y_{t-1} the previous target token.

``attention="none"`` (Sutskever et al. 2014)::

    h_t = RNN(E y_{t-1}, state_{t-1});   p(y_t) = softmax(W_s h_t)

``attention="additive"`` (Bahdanau et al. 2015, arXiv:1409.0473, section 3.1 and appendix A.1.2)::

    e_{ts}   = v_a^T tanh(W_a h_{t-1} + U_a \bar h_s)      h_{t-1}: the decoder's previous top output
    a_{ts}   = softmax_s(e_{ts})                            (padded source positions get weight 0)
    c_t      = sum_s a_{ts} \bar h_s
    h_t      = RNN([E y_{t-1}; c_t], state_{t-1})
    \tilde h_t = tanh(W_c [h_t; c_t; E y_{t-1}]);   p(y_t) = softmax(W_s \tilde h_t)

  Bahdanau's output is g(y_{i-1}, s_i, c_i) (eq. 4); we take the same three inputs through a
  tanh layer instead of the appendix's maxout. h_0 is the decoder's initial top output.

``attention="multiplicative"`` (Luong et al. 2015, arXiv:1508.04025, section 3.1, "general" score)::

    h_t        = RNN([E y_{t-1}; \tilde h_{t-1}], state_{t-1})   (input feeding, section 3.3; \tilde h_0 = 0)
               = RNN(E y_{t-1}, state_{t-1})                     (input_feeding=False)
    score(h_t, \bar h_s) = h_t^T W_a \bar h_s;   a_{ts} = softmax_s(score)
    c_t        = sum_s a_{ts} \bar h_s
    \tilde h_t = tanh(W_c [c_t; h_t]);   p(y_t) = softmax(W_s \tilde h_t)

Teacher forcing: in training the decoder reads the true y_{t-1}. Where nothing feeds back
(no attention, or multiplicative attention without input feeding) the decoder runs over the
whole target in one call of the recurrent layer (fast: the compiled engine's time loop);
with additive attention or input feeding each step needs the previous step's output, so
the decoder is called once per target position with its state carried. Both paths give the
same numbers (tests/test_translate.py checks it).

The initial decoder state: the encoder's final state, layer by layer (Sutskever); with a
bidirectional encoder, per layer h_0 = tanh(W_h [h_fwd; h_bwd]) and c_0 = W_c' [c_fwd; c_bwd]
(a learnt bridge, in the spirit of Bahdanau's s_0 = tanh(W_s \overleftarrow h_1)).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .. import make_layer
from ..data.pairs import BOS, EOS
from ..registry import get_variant

ATTENTIONS = ("none", "additive", "multiplicative")


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """softmax over the last axis of scores (B, Tq, S) where mask (B, S) is True; 0 elsewhere."""
    return F.softmax(scores.masked_fill(~mask[:, None, :], float("-inf")), dim=-1)


class AdditiveAttention(nn.Module):
    """Bahdanau et al. 2015, appendix A.1.2: e_{ts} = v_a^T tanh(W_a q_t + U_a \\bar h_s)."""

    def __init__(self, query_size: int, memory_size: int, attn_size: int):
        super().__init__()
        self.W_a = nn.Linear(query_size, attn_size, bias=False)
        self.U_a = nn.Linear(memory_size, attn_size)
        self.v_a = nn.Linear(attn_size, 1, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        return self.U_a(memory)  # (B, S, A), once per source: it does not depend on t

    def forward(self, query: Tensor, memory: Tensor, keys: Tensor, mask: Tensor):
        """query (B, Tq, Q), memory (B, S, M), keys (B, S, A), mask (B, S) -> context (B, Tq, M), weights (B, Tq, S)."""
        e = self.v_a(torch.tanh(self.W_a(query)[:, :, None, :] + keys[:, None, :, :])).squeeze(-1)  # (B, Tq, S)
        a = masked_softmax(e, mask)
        return a @ memory, a


class GeneralAttention(nn.Module):
    """Luong et al. 2015, section 3.1, "general": score(h_t, \\bar h_s) = h_t^T W_a \\bar h_s."""

    def __init__(self, query_size: int, memory_size: int):
        super().__init__()
        self.W_a = nn.Linear(memory_size, query_size, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        return self.W_a(memory)  # (B, S, Q): W_a \bar h_s, once per source

    def forward(self, query: Tensor, memory: Tensor, keys: Tensor, mask: Tensor):
        a = masked_softmax(query @ keys.transpose(1, 2), mask)  # (B, Tq, S)
        return a @ memory, a


class StepRNN(nn.Module):
    """A unidirectional ``make_layer`` stack run on a carried *full* state, any number of steps per call.

    The layer's own forward restarts states it does not expose (FGR's previous gate
    activations) at every call; stepping one token at a time must carry them, so this runs
    the layer's time loop (``_run``: ``run_stack``, or an architecture's own) with every entry of ``spec.state_names``. The
    parameters are the layer's own (``self.rnn.weight_ih_l0``, ...). State: a tuple of
    (L, B, width) tensors, widths ``spec.state_widths(H, P)``.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 proj_size: int = 0, zoneout: float = 0.0):
        super().__init__()
        self.rnn = make_layer(cell, input_size, hidden_size, num_layers=num_layers,
                              dropout=dropout if num_layers > 1 else 0.0, proj_size=proj_size, zoneout=zoneout)
        self.widths = self.rnn.spec.state_widths(hidden_size, proj_size)

    def zero_state(self, batch: int, like: Tensor) -> tuple:
        return tuple(like.new_zeros(self.rnn.num_layers, batch, w) for w in self.widths)

    def forward(self, x: Tensor, state: tuple):
        """x (T, B, I), state -> output (T, B, P or H), next state."""
        r = self.rnn
        T, B = x.shape[:2]
        # The layer's own loop on the packed rows (run_stack, or the grid's), on the full state.
        out, finals, _ = r._run(x.reshape(T * B, -1), [B] * T, tuple(state), False)
        return out.view(T, B, -1), finals


@dataclass
class Memory:
    """What the decoder attends to, for B sentences."""

    memory: Tensor  # (B, S, M) encoder outputs, batch-first for the attention products
    keys: Tensor | None  # (B, S, A or P): the source side of the score, precomputed
    mask: Tensor  # (B, S) True on real source tokens

    def select(self, idx: Tensor) -> "Memory":
        return Memory(self.memory[idx], None if self.keys is None else self.keys[idx], self.mask[idx])


class Seq2Seq(nn.Module):
    """Encoder-decoder translation model (see the module docstring for the equations).

    Args:
        src_vocab, tgt_vocab: vocabulary sizes (ids 0..3 are <pad> <bos> <eos> <unk>).
        cell: any registered variant, for encoder and decoder.
        hidden_size, num_layers, embed_size (0 = hidden_size), proj_size: as the layers'.
        bidirectional: a bidirectional encoder (the decoder is always unidirectional).
        attention: "none", "additive" (Bahdanau) or "multiplicative" (Luong "general").
        input_feeding: multiplicative only: feed \\tilde h_{t-1} into the decoder (Luong 3.3).
        dropout: on embeddings, between layers and before the output layer.
        recurrent_dropout: the encoder's variational dropout on h_{t-1} (the decoder, stepped one
            token at a time, would draw a new mask per step, so it gets none).
        zoneout: zoneout rate in encoder and decoder.

    ``forward(src, src_len, tgt_in)`` (teacher forcing): src (S, B), src_len (B,), tgt_in (T, B)
    = <bos> y_1 .. y_{T-1}, all time-major ids, -> logits (T, B, V_tgt).
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, cell: str = "lstm", hidden_size: int = 128,
                 num_layers: int = 1, embed_size: int = 0, bidirectional: bool = False, attention: str = "additive",
                 input_feeding: bool = True, dropout: float = 0.0, proj_size: int = 0,
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0):
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}; got {attention!r}")
        E = embed_size or hidden_size
        P = proj_size or hidden_size  # the width of a layer's output h
        D = 2 if bidirectional else 1
        M = D * P  # encoder output width
        self.attention, self.bidirectional = attention, bidirectional
        self.input_feeding = input_feeding and attention == "multiplicative"
        self.family = get_variant(cell).family
        self.src_embed = nn.Embedding(src_vocab, E)
        self.tgt_embed = nn.Embedding(tgt_vocab, E)
        self.drop = nn.Dropout(dropout)
        self.encoder = make_layer(cell, E, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
                                  dropout=dropout if num_layers > 1 else 0.0, proj_size=proj_size,
                                  recurrent_dropout=recurrent_dropout, zoneout=zoneout)
        feed = {"none": 0, "additive": M, "multiplicative": hidden_size if self.input_feeding else 0}[attention]
        self.feed_size = feed
        self.decoder = StepRNN(cell, E + feed, hidden_size, num_layers, dropout, proj_size, zoneout)
        if bidirectional:  # one bridge per exposed state (h; and c for the LSTM family)
            n_exposed = 2 if self.family == "lstm" else 1
            self.bridge = nn.ModuleList(nn.Linear(2 * w, w) for w in self.decoder.widths[:n_exposed])
        if attention == "additive":
            self.attn = AdditiveAttention(P, M, hidden_size)
            self.W_c = nn.Linear(P + M + E, hidden_size)
        elif attention == "multiplicative":
            self.attn = GeneralAttention(P, M)
            self.W_c = nn.Linear(M + P, hidden_size)
        self.W_s = nn.Linear(P if attention == "none" else hidden_size, tgt_vocab)

    # ---- encoder -------------------------------------------------------------------------

    def encode(self, src: Tensor, src_len: Tensor):
        """src (S, B) ids, src_len (B,) -> (Memory, initial decoder state)."""
        S, B = src.shape
        emb = self.drop(self.src_embed(src))  # (S, B, E)
        packed = pack_padded_sequence(emb, src_len.cpu(), enforce_sorted=False)
        out, state = self.encoder(packed)  # padding never enters the recurrence or the final state
        out = pad_packed_sequence(out, total_length=S)[0].transpose(0, 1)  # (B, S, M)
        out = self.drop(out)
        exposed = state if isinstance(state, tuple) else (state,)  # each (L·D, B, w)
        if self.bidirectional:
            L = self.encoder.num_layers
            exposed = tuple(
                torch.tanh(lin(s.view(L, 2, B, -1).permute(0, 2, 1, 3).reshape(L, B, -1))) if k == 0
                else lin(s.view(L, 2, B, -1).permute(0, 2, 1, 3).reshape(L, B, -1))
                for k, (lin, s) in enumerate(zip(self.bridge, exposed)))
        dec_state = exposed + self.decoder.zero_state(B, out)[len(exposed):]  # FGR's gates start at 0
        mask = torch.arange(S, device=src.device)[None, :] < src_len.to(src.device)[:, None]  # (B, S)
        keys = self.attn.keys(out) if self.attention != "none" else None
        return Memory(out, keys, mask), dec_state

    def start(self, mem: Memory, dec_state: tuple):
        """The decoder's carried state before step 1: (recurrent state, fed-back vector or None)."""
        B = mem.memory.shape[0]
        feed = mem.memory.new_zeros(B, self.feed_size) if self.input_feeding else None
        return dec_state, feed

    # ---- one decoder step ------------------------------------------------------------------

    def step(self, y_prev: Tensor, carried, mem: Memory):
        """y_prev (B,) ids, carried state -> logits (B, V), next carried state, attention (B, S) or None."""
        state, feed = carried
        emb = self.drop(self.tgt_embed(y_prev))  # (B, E)
        a = None
        if self.attention == "additive":
            q = state[0][-1]  # h_{t-1}: the top layer's previous output, (B, P)
            ctx, a = self.attn(q[:, None], mem.memory, mem.keys, mem.mask)  # (B, 1, M), (B, 1, S)
            ctx = ctx[:, 0]
            out, state = self.decoder(torch.cat([emb, ctx], -1)[None], state)
            h = out[0]
            top = torch.tanh(self.W_c(torch.cat([h, ctx, emb], -1)))
        else:
            x = torch.cat([emb, feed], -1) if self.input_feeding else emb
            out, state = self.decoder(x[None], state)
            h = out[0]  # (B, P)
            if self.attention == "none":
                top = h
            else:
                ctx, a = self.attn(h[:, None], mem.memory, mem.keys, mem.mask)
                top = torch.tanh(self.W_c(torch.cat([ctx[:, 0], h], -1)))  # \tilde h_t
        logits = self.W_s(self.drop(top))
        return logits, (state, top if self.input_feeding else None), None if a is None else a[:, 0]

    # ---- teacher forcing -------------------------------------------------------------------

    @property
    def parallel(self) -> bool:
        """Whether teacher forcing can run the decoder over the whole target in one call."""
        return self.attention == "none" or (self.attention == "multiplicative" and not self.input_feeding)

    def forward(self, src: Tensor, src_len: Tensor, tgt_in: Tensor, stepwise: bool = False) -> Tensor:
        mem, state = self.encode(src, src_len)
        if self.parallel and not stepwise:
            out, _ = self.decoder(self.drop(self.tgt_embed(tgt_in)), state)  # (T, B, P)
            if self.attention == "none":
                return self.W_s(self.drop(out))
            h = out.transpose(0, 1)  # (B, T, P)
            ctx, _ = self.attn(h, mem.memory, mem.keys, mem.mask)  # (B, T, M)
            top = torch.tanh(self.W_c(torch.cat([ctx, h], -1)))
            return self.W_s(self.drop(top)).transpose(0, 1)  # (T, B, V)
        carried = self.start(mem, state)
        logits = []
        for t in range(tgt_in.shape[0]):
            lt, carried, _ = self.step(tgt_in[t], carried, mem)
            logits.append(lt)
        return torch.stack(logits)


# ---- decoding ----------------------------------------------------------------------------------

@torch.no_grad()
def greedy_decode(model: Seq2Seq, src: Tensor, src_len: Tensor, max_len: int):
    """Batched greedy decoding: argmax at every step until <eos> (or max_len tokens).

    Returns (token id lists without <eos>, attention per sentence: (T_out, S_b) tensors or None),
    where T_out counts the emitted tokens plus the <eos> step when one was emitted.
    """
    model.eval()
    mem, state = model.encode(src, src_len)
    carried = model.start(mem, state)
    B = src.shape[1]
    y = src.new_full((B,), BOS)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    out, attn = [[] for _ in range(B)], [[] for _ in range(B)]
    steps = [0] * B
    for _ in range(max_len):
        logits, carried, a = model.step(y, carried, mem)
        y = logits.argmax(-1)
        for b in (~done).nonzero().flatten().tolist():
            steps[b] += 1
            if a is not None:
                attn[b].append(a[b, :int(src_len[b])])
            if int(y[b]) == EOS:
                done[b] = True
            else:
                out[b].append(int(y[b]))
        if bool(done.all()):
            break
    weights = [torch.stack(w).cpu() if w else None for w in attn]
    return out, weights


def length_penalty(n: int, alpha: float) -> float:
    """Wu et al. 2016 (GNMT, arXiv:1609.08144, section 7, eq. 14): lp(Y) = ((5 + |Y|) / 6)^alpha."""
    return ((5 + n) / 6) ** alpha


@torch.no_grad()
def beam_search(model: Seq2Seq, src: Tensor, max_len: int, beam: int = 5, alpha: float = 0.6):
    """Beam search for one sentence, src (S,) ids.

    Each step extends every live hypothesis by every token and keeps the ``beam`` best by
    log P(Y|X). A kept hypothesis that ends in <eos> leaves the beam and joins the complete
    ones, so the beam narrows (Sutskever et al. 2014, section 3.2); the search ends when no
    live hypothesis is left or after ``max_len`` tokens (live ones then count as complete).
    The answer is the complete hypothesis with the best log P(Y|X) / lp(Y), lp as in
    :func:`length_penalty` with |Y| counting <eos>. With beam=1 this is greedy decoding.

    Returns (token ids without <eos>, attention (T_out, S) or None, normalised score).
    """
    model.eval()
    S = src.shape[0]
    mem, state = model.encode(src[:, None], torch.tensor([S]))
    carried = model.start(mem, state)
    hyps = [[]]  # tokens of the live hypotheses
    attns = [[]]  # their attention rows
    scores = src.new_zeros(1, dtype=torch.float)  # log P so far, (n_live,)
    complete = []  # (normalised score, tokens, attention rows)
    y = src.new_full((1,), BOS)
    for _ in range(max_len):
        n = len(hyps)
        m = mem.select(torch.zeros(n, dtype=torch.long, device=src.device))
        logits, carried, a = model.step(y, carried, m)
        total = scores[:, None] + F.log_softmax(logits, -1)  # (n, V)
        V = total.shape[1]
        top, flat = total.view(-1).topk(min(beam - len(complete), n * V))  # the beam narrows as hypotheses end
        keep, new_hyps, new_attns, new_scores, new_y = [], [], [], [], []
        for s, f in zip(top.tolist(), flat.tolist()):
            src_hyp, tok = divmod(f, V)
            rows = attns[src_hyp] + ([a[src_hyp]] if a is not None else [])
            if tok == EOS:
                complete.append((s / length_penalty(len(hyps[src_hyp]) + 1, alpha), hyps[src_hyp], rows))
            else:
                keep.append(src_hyp)
                new_hyps.append(hyps[src_hyp] + [tok])
                new_attns.append(rows)
                new_scores.append(s)
                new_y.append(tok)
        if not keep:
            break
        idx = torch.tensor(keep, dtype=torch.long, device=src.device)
        state, feed = carried
        carried = (tuple(s.index_select(1, idx) for s in state), None if feed is None else feed.index_select(0, idx))
        hyps, attns, y = new_hyps, new_attns, torch.tensor(new_y, dtype=torch.long, device=src.device)
        scores = torch.tensor(new_scores, dtype=torch.float, device=src.device)
    else:  # out of steps: the live hypotheses are complete as they stand
        complete += [(float(s) / length_penalty(len(h), alpha), h, r) for s, h, r in zip(scores.tolist(), hyps, attns)]
    best = max(complete, key=lambda c: c[0])
    return best[1], (torch.stack(best[2]).cpu() if best[2] else None), best[0]
