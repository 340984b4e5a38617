"""The translate task: TSV pairs, tokenisers, the date generator, attention, decoding, the CLI, bad input."""
from __future__ import annotations

import datetime
import hashlib
import json
import re

import pytest
import torch
import torch.nn.functional as F

import lstmkit
from cli_helpers import run_cli
from conftest import FP64
from lstmkit.data.pairs import (BOS, EOS, PAD, SPECIALS, UNK, PairBatches, Vocab, date_pairs, date_styles,
                                detokenize, encode_split, make_batch, read_pairs, tokenize)
from lstmkit.errors import UsageError
from lstmkit.tasks import get_task
from lstmkit.train.config import RunConfig
from lstmkit.tasks.translate import score_translations
from lstmkit.models.seq2seq import (AdditiveAttention, GeneralAttention, Seq2Seq, beam_search, greedy_decode,
                                    length_penalty)

pytestmark = pytest.mark.usefixtures("single_thread")

# A tiny translation task with real structure: reverse a short word list. The run learns
# nothing in a few steps; the CLI tests only need it to train, save and translate.
WORDS = "red green blue cat dog sun moon tree".split()


def reverse_pairs(n: int = 120, seed: int = 0) -> list[tuple[str, str]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        k = int(torch.randint(2, 5, (1,), generator=g))
        words = [WORDS[int(i)] for i in torch.randint(len(WORDS), (k,), generator=g)]
        out.append((" ".join(words), " ".join(reversed(words))))
    return out


def write_pairs(path, pairs) -> str:
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return str(path)


TINY = ["--hidden", "16", "--embed", "8", "--layers", "1", "--batch-size", "16", "--log-every", "1",
        "--eval-every", "3", "--max-steps", "3", "--threads", "1"]


# ---- reading, tokens, vocabularies -------------------------------------------------------------

def test_read_pairs_strips_sides_and_skips_blank_lines(tmp_path):
    p = tmp_path / "p.tsv"
    p.write_bytes("\ufeffHallo Welt\thello world\n\n  zwei \t two\r\n".encode("utf-8"))
    assert read_pairs(p) == [("Hallo Welt", "hello world"), ("zwei", "two")]


def test_tokenisers_round_trip():
    assert tokenize("ab c", "char") == ["a", "b", " ", "c"]
    assert tokenize("  the  cat sat ", "word") == ["the", "cat", "sat"]
    assert detokenize(tokenize("21. Nov 2026", "char"), "char") == "21. Nov 2026"
    assert detokenize(tokenize("the cat sat", "word"), "word") == "the cat sat"


def test_vocab_specials_frequency_order_size_limit_and_unk():
    v = Vocab.build([["b", "a", "a", "c"], ["a", "b", "<unk>"]], max_size=6)
    assert v.tokens[:4] == list(SPECIALS) and (PAD, BOS, EOS, UNK) == (0, 1, 2, 3)
    assert v.tokens[4:] == ["a", "b"]  # a (3) before b (2); c cut by the limit of 6
    assert v.encode(["a", "c", "b", "zebra"]) == [4, UNK, 5, UNK]
    assert v.decode([BOS, 4, UNK, 5, EOS, 4, PAD]) == ["a", "<unk>", "b"]  # stops at <eos>
    assert Vocab.from_json(json.loads(json.dumps(v.to_json()))) == v
    assert len(Vocab.build([["x", "y"]])) == 6  # 0 = no limit


def test_batches_are_time_major_with_bos_eos_and_padding():
    pairs = [("ab", "xyz"), ("abcd", "x")]
    sv, tv = Vocab.build([list("abcd")]), Vocab.build([list("xyz")])
    src, src_len, tgt_in, tgt_out = make_batch(encode_split(pairs, "char", sv, tv), [0, 1])
    assert src.shape == (4, 2) and src_len.tolist() == [2, 4]
    assert src[2:, 0].tolist() == [PAD, PAD]
    assert tgt_in[:, 1].tolist() == [BOS, tv.encode(["x"])[0], PAD, PAD]
    assert tgt_out[:, 1].tolist() == [tv.encode(["x"])[0], EOS, PAD, PAD]
    assert tgt_out[:, 0].tolist() == tv.encode(list("xyz")) + [EOS]


def test_batches_cover_the_split_once_and_split_evenly_across_processes():
    pairs = reverse_pairs(103)
    sv = Vocab.build(tokenize(a, "word") for a, _ in pairs)
    tv = Vocab.build(tokenize(b, "word") for _, b in pairs)
    split = encode_split(pairs, "word", sv, tv)
    one = PairBatches(split, 8, seed=1)
    assert sorted(i for b in one.index for i in b) == list(range(103)) and len(one) == 13
    assert PairBatches(split, 8, seed=1).index == one.index != PairBatches(split, 8, seed=2).index
    ranks = [PairBatches(split, 8, seed=1, rank=r, world=2) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 6  # 13 batches: the odd one is dropped, or DDP would hang
    assert not {i for b in ranks[0].index for i in b} & {i for b in ranks[1].index for i in b}


def test_scores():
    s = score_translations(["2026-11-21", "2026-01-02", "x"], ["2026-11-21", "2026-01-03", "x"],
                           ["a", "bb", "cccc"])
    assert s["exact_match"] == pytest.approx(2 / 3) and s["exact_match_long"] == 1.0 and s["long_n"] == 1
    assert s["long_min_chars"] == 4 and 0 < s["bleu"] < 100
    assert score_translations(["a b c d"], ["a b c d"], ["s"])["bleu"] == pytest.approx(100)


# ---- the date generator ---------------------------------------------------------------------------

def parse_back(text: str, locale: str) -> set[datetime.date]:
    """Every date ``text`` can mean in ``locale``, read independently of how it was written:
    the 4-digit year, then the day and the month (as a number or a CLDR month name), checked
    against the weekday name when there is one."""
    from babel.dates import get_day_names, get_month_names
    low = text.lower()
    year = int(re.findall(r"\d{4}", text)[0])
    numbers = [int(n) for n in re.findall(r"\d+", text) if len(n) <= 2]
    months = set()
    for width in ("wide", "abbreviated"):
        for ctx in ("format", "stand-alone"):
            for m, name in get_month_names(width, ctx, locale).items():
                if re.search(r"(?<!\w)" + re.escape(name.lower().rstrip(".")) + r"(?!\w)", low):
                    months.add(m)
    if months:
        candidates = {(d, m) for d in numbers for m in months}
    else:  # all-numeric: day and month are the two short numbers, in either order
        candidates = {(numbers[0], numbers[1]), (numbers[1], numbers[0])}
    out = set()
    for d, m in candidates:
        try:
            out.add(datetime.date(year, m, d))
        except ValueError:
            pass
    weekdays = {i: n.lower() for i, n in get_day_names("wide", "format", locale).items()}
    named = [i for i, n in weekdays.items() if re.search(r"(?<!\w)" + re.escape(n) + r"(?!\w)", low)]
    if named:
        out = {x for x in out if x.weekday() in named}
    return out


def test_date_pairs_are_deterministic_distinct_and_mean_their_iso_date():
    a = date_pairs(400, seed=3, with_style=True)
    assert a == date_pairs(400, seed=3, with_style=True)
    assert a != date_pairs(400, seed=4, with_style=True)
    assert len({s for s, *_ in a}) == 400
    locales = {loc for _, _, loc, _ in a}
    assert len(locales) >= 8 and {"short", "medium", "long", "full"} <= {f for *_, f in a}
    for src, iso, loc, fmt in a:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", iso)
        day = datetime.date.fromisoformat(iso)
        meanings = parse_back(src, loc)
        assert day in meanings, (src, iso, loc, fmt)
        if fmt == "short":  # numeric forms kept in the mix must read day first
            nums = [int(n) for n in re.findall(r"\d+", src) if len(n) <= 2]
            assert nums[:2] == [day.day, day.month], (src, loc)


def month_names_in(text: str, locale: str) -> set[int]:
    from babel.dates import get_month_names
    found = set()
    for width in ("wide", "abbreviated"):
        for ctx in ("format", "stand-alone"):
            for m, name in get_month_names(width, ctx, locale).items():
                if re.search(r"(?<!\w)" + re.escape(name.lower().rstrip(".")) + r"(?!\w)", text.lower()):
                    found.add(m)
    return found


def test_date_intervals_name_both_ends():
    """Interval sources hold both days, the months they span and the years; targets are ISO start/end."""
    pairs = date_pairs(300, seed=5, formats="intervals", with_style=True)
    assert pairs == date_pairs(300, seed=5, formats="intervals", with_style=True)
    for src, iso, loc, _ in pairs:
        a, b = (datetime.date.fromisoformat(x) for x in iso.split("/"))
        assert 1 <= (b - a).days <= 400
        numbers = [int(n) for n in re.findall(r"\d+", src)]
        assert a.day in numbers and b.day in numbers and b.year in numbers, (src, iso)
        assert a.year == b.year or a.year in numbers, (src, iso)
        months = month_names_in(src, loc)
        assert {a.month, b.month} <= months or (a.month == b.month and a.month in months), (src, iso, loc)


def test_date_formats_full_is_the_longest():
    lengths = {f: sum(len(s) for s, _ in date_pairs(300, 0, f)) / 300 for f in ("all", "long", "full", "intervals")}
    assert lengths["all"] < lengths["long"] < lengths["full"] < lengths["intervals"]
    assert all(fmt == "full" for _, fmt in date_styles("full"))
    assert ("en_US", "short") not in date_styles("all")  # M/d/yy: month first and a 2-digit year


# ---- attention --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["additive", "multiplicative"])
def test_attention_weights_sum_to_one_and_ignore_padding(kind, gen):
    B, Tq, S, Q, M = 3, 4, 6, 5, 7
    att = AdditiveAttention(Q, M, 8) if kind == "additive" else GeneralAttention(Q, M)
    att = att.double()
    memory = torch.randn(B, S, M, generator=gen, dtype=torch.float64)
    query = torch.randn(B, Tq, Q, generator=gen, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4])
    mask = torch.arange(S)[None] < lengths[:, None]
    ctx, a = att(query, memory, att.keys(memory), mask)
    torch.testing.assert_close(a.sum(-1), torch.ones(B, Tq, dtype=torch.float64), **FP64)
    assert (a[~mask[:, None, :].expand_as(a)] == 0).all()
    # what lies in the padding cannot change anything
    noisy = memory.clone()
    noisy[~mask] = 1e3
    ctx2, a2 = att(query, noisy, att.keys(noisy), mask)
    torch.testing.assert_close(ctx2, ctx, **FP64)
    torch.testing.assert_close(ctx, a @ memory, **FP64)


def tiny_model(cell="lstm", attention="additive", feed=True, bidirectional=False, layers=2, V=11):
    torch.manual_seed(0)
    return Seq2Seq(V, 9, cell=cell, hidden_size=8, num_layers=layers, embed_size=6, attention=attention,
                   input_feeding=feed, bidirectional=bidirectional).double().eval()


def tiny_batch(gen, V=11):
    lengths = torch.tensor([7, 3, 5])
    src = torch.randint(4, V, (7, 3), generator=gen)
    src[torch.arange(7)[:, None] >= lengths[None]] = PAD
    return src, lengths, torch.randint(3, 9, (5, 3), generator=gen)


@pytest.mark.parametrize("cell", ["lstm", "fgr", "gru"])
@pytest.mark.parametrize("attention,feed", [("none", False), ("multiplicative", False)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_whole_target_teacher_forcing_equals_stepping(cell, attention, feed, bidirectional, gen):
    """The fast path (decoder over the whole target in one call) = one decoder step at a time."""
    m = tiny_model(cell, attention, feed, bidirectional)
    src, lengths, tgt = tiny_batch(gen)
    assert m.parallel
    torch.testing.assert_close(m(src, lengths, tgt), m(src, lengths, tgt, stepwise=True), **FP64)


@pytest.mark.parametrize("attention", ["none", "additive", "multiplicative"])
def test_padding_does_not_change_a_sentence(attention, gen):
    """A sentence translated alone or inside a padded batch gets the same logits (packed encoder, mask)."""
    m = tiny_model(attention=attention, bidirectional=True)
    src, lengths, tgt = tiny_batch(gen)
    batch = m(src, lengths, tgt)
    for b in range(3):
        n = int(lengths[b])
        alone = m(src[:n, b:b + 1], lengths[b:b + 1], tgt[:, b:b + 1])
        torch.testing.assert_close(alone[:, 0], batch[:, b], **FP64)


def test_decoded_attention_rows_are_distributions_over_the_real_source(gen):
    m = tiny_model("lstm", "additive")
    src, lengths, _ = tiny_batch(gen)
    _, weights = greedy_decode(m, src, lengths, max_len=6)
    for b, w in enumerate(weights):
        assert w.shape[1] == int(lengths[b])
        torch.testing.assert_close(w.sum(1), torch.ones(w.shape[0], dtype=w.dtype), **FP64)


# ---- decoding ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("attention", ["none", "additive", "multiplicative"])
def test_beam_one_is_greedy(attention, gen):
    m = tiny_model(attention=attention)
    with torch.no_grad():  # make <eos> likely enough that sentences end at different lengths
        m.W_s.bias[EOS] += 1.5
    src, lengths, _ = tiny_batch(gen)
    toks, weights = greedy_decode(m, src, lengths, max_len=12)
    assert len({len(t) for t in toks}) > 1 or any(len(t) < 12 for t in toks)
    for b in range(3):
        n = int(lengths[b])
        btoks, bw, _ = beam_search(m, src[:n, b], max_len=12, beam=1)
        assert btoks == toks[b]
        if attention != "none":
            torch.testing.assert_close(bw, weights[b], **FP64)


def sequence_logprob(m, src, tokens) -> float:
    """log P(tokens <eos> | src) under teacher forcing."""
    tgt_in = torch.tensor([BOS] + tokens)[:, None]
    tgt_out = torch.tensor(tokens + [EOS])
    with torch.no_grad():
        logits = m(src[:, None], torch.tensor([src.shape[0]]), tgt_in)[:, 0]
    return float(F.log_softmax(logits, -1).gather(1, tgt_out[:, None]).sum())


def test_beam_search_score_is_the_normalised_log_probability(gen):
    m = tiny_model(attention="multiplicative")
    with torch.no_grad():
        m.W_s.bias[EOS] += 1.0
    src, lengths, _ = tiny_batch(gen)
    s = src[:, 0]
    greedy, _, greedy_score = beam_search(m, s, max_len=10, beam=1, alpha=0.6)
    toks, _, score = beam_search(m, s, max_len=10, beam=4, alpha=0.6)
    expected = sequence_logprob(m, s, toks) / length_penalty(len(toks) + 1, 0.6)
    assert score == pytest.approx(expected, rel=1e-9)
    assert greedy_score == pytest.approx(sequence_logprob(m, s, greedy) / length_penalty(len(greedy) + 1, 0.6),
                                         rel=1e-9)
    assert length_penalty(7, 0.0) == 1.0 and length_penalty(1, 1.0) == 1.0


# ---- every cell variant --------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", lstmkit.variants())
def test_every_variant_trains_every_parameter(cell, gen):
    family = lstmkit.get_variant(cell).family
    if family == "clockwork":  # refused by the task: the decoder steps, and its clock would restart
        with pytest.raises(UsageError, match="clockwork RNN's module clocks restart"):
            get_task("translate").check_config(RunConfig.from_dict({"task": "translate", "model": {"cell": cell}}))
        return
    m = tiny_model(cell, "additive", bidirectional=family != "grid").train()  # grid: one direction only
    src, lengths, tgt = tiny_batch(gen)
    m(src, lengths, tgt).sum().backward()
    for name, p in m.named_parameters():
        if name.startswith("src_embed") or name.startswith("tgt_embed"):
            continue  # only the rows of the tokens in the batch get gradients
        assert p.grad is not None and p.grad.abs().sum() > 0 and torch.isfinite(p.grad).all(), name


def test_a_small_model_learns_to_reverse(gen):
    """Not a smoke test: with attention, 100 Adam steps reverse 3-5 symbols almost always
    (they got 100/100 right; 50 steps got 87)."""
    torch.manual_seed(0)
    m = Seq2Seq(10, 10, cell="lstm", hidden_size=32, embed_size=16, attention="additive")
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)

    def sample(n):
        seqs = [torch.randint(4, 10, (int(k),), generator=gen).tolist() for k in torch.randint(3, 6, (n,), generator=gen)]
        from lstmkit.data.pairs import PairSplit
        return PairSplit([], seqs, [list(reversed(s)) for s in seqs])

    for _ in range(100):
        split = sample(32)
        src, sl, ti, to = make_batch(split, list(range(32)))
        loss = F.cross_entropy(m(src, sl, ti).reshape(-1, 10), to.reshape(-1), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = sample(100)
    src, sl, _, _ = make_batch(test, list(range(100)))
    toks, _ = greedy_decode(m, src, sl, max_len=12)
    exact = sum(t == r for t, r in zip(toks, test.tgt)) / 100
    assert exact >= 0.9, exact


# ---- the command line ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny translate run on a TSV of pairs (3 steps)."""
    tmp = tmp_path_factory.mktemp("translate")
    data = write_pairs(tmp / "pairs.tsv", reverse_pairs())
    run = tmp / "run"
    rc = run_cli("train", "translate", "--data", data, "--tokens", "word", *TINY, "--out", run)[0]
    assert rc == 0
    return run


def test_train_writes_scores_samples_and_heatmap(trained):
    s = json.loads((trained / "summary.json").read_text())
    assert s["task"] == "translate" and s["metric"] == "ppl" and s["steps"] == 3
    assert 0 <= s["test_bleu"] <= 100 and 0 <= s["test_exact_match"] <= 1 and s["test_pairs"] == 12
    rows = (trained / "test_translations.tsv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 12 and all(len(r.split("\t")) == 3 for r in rows)
    assert (trained / "attention.png").read_bytes()[:4] == b"\x89PNG"
    meta = json.loads((trained / "checkpoint.json").read_text())
    assert meta["task_state"]["tokens"] == "word" and meta["task_state"]["src"][:4] == list(SPECIALS)


def test_translate_text_file_beam_out_and_heatmap(trained, tmp_path, capsys):
    rc, out, err = run_cli("translate", trained, "--text", "red cat zebra", capsys=capsys)
    assert rc == 0, err
    assert len(out.splitlines()) == 1 and all(w in WORDS + ["<unk>"] for w in out.split())
    f = write_pairs(tmp_path / "in.tsv", reverse_pairs(5, seed=9))
    rc, out_greedy, err = run_cli("translate", trained, "--file", f, capsys=capsys)
    assert rc == 0 and len(out_greedy.splitlines()) == 5 and "BLEU" in err and "exact match" in err
    rc, _, err = run_cli("translate", trained, "--file", f, "--beam", 3, "--out", tmp_path / "o.txt", capsys=capsys)
    assert rc == 0, err
    assert len((tmp_path / "o.txt").read_text().splitlines()) == 5
    rc, _, err = run_cli("translate", trained, "--text", "dog sun", "--beam", 2, "--heatmap", tmp_path / "h.png",
                         capsys=capsys)
    assert rc == 0, err
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


def test_built_in_date_task_trains_and_translates(tmp_path, capsys):
    """The acceptance case: no --data, the built-in dates; then lstmkit translate on a date."""
    run = tmp_path / "dates"
    rc, out, err = run_cli("train", "translate", "--date-pairs", 200, *TINY, "--attention", "multiplicative",
                           "--out", run, capsys=capsys)
    assert rc == 0, err
    assert "BLEU" in out and "exact match" in out
    rc, out, err = run_cli("translate", run, "--text", "Samstag, 21. November 2026", capsys=capsys)
    assert rc == 0 and len(out.splitlines()) == 1, err


@pytest.mark.parametrize("cell,attention", [("peephole", "additive"), ("cifg", "multiplicative"), ("gru", "none"),
                                            ("rnn", "additive")])
def test_cells_through_the_cli(cell, attention, tmp_path, capsys):
    data = write_pairs(tmp_path / "p.tsv", reverse_pairs(40))
    rc, _, err = run_cli("train", "translate", "--data", data, "--tokens", "word", "--cell", cell, "--attention",
                         attention, "--bidirectional", *TINY, "--max-steps", 1, "--out", tmp_path / "r", capsys=capsys)
    assert rc == 0, err
    assert (tmp_path / "r" / "attention.png").exists() == (attention != "none")
    rc, out, err = run_cli("translate", tmp_path / "r", "--text", "red dog", "--beam", 2, capsys=capsys)
    assert rc == 0 and len(out.splitlines()) == 1, err
    if attention == "none":
        assert_usage_error(run_cli("translate", tmp_path / "r", "--text", "red", "--heatmap", tmp_path / "h.png",
                                   capsys=capsys), "no attention")


# ---- bad input -------------------------------------------------------------------------------------------

def _fingerprint(run):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.iterdir()) if p.is_file()}


def assert_usage_error(result, *needles):
    rc, out, err = result
    lines = err.strip().splitlines()
    assert rc == 2, (rc, out, err)
    assert len(lines) == 1 and "Traceback" not in err and "error:" in lines[0], err
    for n in needles:
        assert n in lines[0], (n, lines[0])


BAD_TSV = {
    "no_tab": (b"hallo\thello\nwelt world\n", ["line 2", "no tab", "SOURCE<TAB>TARGET"]),
    "two_tabs": (b"a\tb\tc\n", ["line 1", "2 tabs"]),
    "empty_source": (b"hallo\thello\n\n  \tworld\n", ["line 3", "empty source"]),
    "empty_target": (b"hallo\t \n", ["line 1", "empty target"]),
    "not_utf8": ("hallo\thello\ncaf\u00e9\tcoffee\n".encode("latin-1"), ["line 2", "not UTF-8", "0xe9"]),
    "empty_file": (b"\n\n", ["is empty"]),
}


@pytest.mark.parametrize("case", list(BAD_TSV))
def test_bad_tsv(case, trained, tmp_path, capsys):
    content, needles = BAD_TSV[case]
    p = tmp_path / "bad.tsv"
    p.write_bytes(content)
    with pytest.raises(UsageError):
        read_pairs(p)
    before = _fingerprint(trained)
    result = run_cli("train", "translate", "--data", p, *TINY, "--out", trained, "--force", capsys=capsys)
    assert_usage_error(result, "bad.tsv", *needles)
    assert _fingerprint(trained) == before, "a failing command changed the earlier run"


def test_too_few_pairs(tmp_path, capsys):
    p = write_pairs(tmp_path / "p.tsv", reverse_pairs(3))
    assert_usage_error(run_cli("train", "translate", "--data", p, *TINY, "--out", tmp_path / "r", capsys=capsys),
                       "3 pairs", "too few")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args,needles", [
    (["--vocab-size", "3"], ["--vocab-size", ">= 5"]),
    (["--test-fraction", "0.95"], ["--test-fraction"]),
    (["--attention", "dot"], ["attention", "additive"]),
    (["--tokens", "bytes"], ["tokens", "char"]),
    (["--tie-weights"], ["--tie-weights"]),
])
def test_bad_translate_options(args, needles, tmp_path, capsys):
    p = write_pairs(tmp_path / "p.tsv", reverse_pairs(40))
    assert_usage_error(run_cli("train", "translate", "--data", p, *TINY, *args, "--out", tmp_path / "r",
                               capsys=capsys), *needles)


def test_bad_translate_commands(trained, tmp_path, capsys):
    assert_usage_error(run_cli("translate", trained, "--text", "  ", capsys=capsys), "--text is empty")
    assert_usage_error(run_cli("translate", trained, "--text", "red", "--beam", 0, capsys=capsys), "--beam")
    f = tmp_path / "in.txt"
    f.write_text("red dog\n\tdog\n", encoding="utf-8")
    assert_usage_error(run_cli("translate", trained, "--file", f, capsys=capsys), "line 2", "empty source")
    f.write_bytes("caf\u00e9\n".encode("latin-1"))
    assert_usage_error(run_cli("translate", trained, "--file", f, capsys=capsys), "not UTF-8")
    assert_usage_error(run_cli("translate", trained, "--file", f, "--heatmap", tmp_path / "h.png", capsys=capsys),
                       "--heatmap needs --text")
    assert_usage_error(run_cli("translate", tmp_path / "nothing", "--text", "red", capsys=capsys))
    rc, _, err = run_cli("translate", trained, capsys=capsys)  # neither --text nor --file
    assert rc == 2 and "one of the arguments --text --file is required" in err
