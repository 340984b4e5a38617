"""lstmkit.inspect: recordings against the cell equations and the model's own forward, text features,
the interpretable-cell search, figures, the HTML page, and `lstmkit inspect` with its bad input."""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from cli_helpers import PTB_LINES, TEXT, TINY, assert_usage_error, run_cli, write_ptb, write_text
from conftest import ALL_VARIANTS, FP32, FP64, family, random_params_, use_loop
from lstmkit import engine
from lstmkit.engine import function as engine_function
from lstmkit.inspect import (CellMatch, Recording, build_page, correlate, record, record_all, search_cells,
                             text_features, token_features)
from lstmkit.inspect import figures
from lstmkit.inspect.page import page_data
from lstmkit.models.lm import LanguageModel

pytestmark = pytest.mark.usefixtures("single_thread")


def expected_quantities(variant: str, **kw) -> list[str]:
    layer = lstmkit.make_layer(variant, 2, 3, **kw)
    spec = layer.spec
    if spec.family == "lstm":
        gates = [g for g, on in (("i", spec.input_gate), ("f", spec.forget_gate), ("g", True),
                                 ("o", spec.output_gate)) if on]
        return gates + ["c", "h"]
    return ["r", "z", "n", "h"] if spec.family == "gru" else ["h"]


# ---- record: shapes, path equivalence, the model left alone ---------------------------------------

@pytest.mark.parametrize("variant", ALL_VARIANTS)
@pytest.mark.parametrize("loop", ["reference", "default"])
def test_record_shapes_and_outputs_match_forward(variant, loop, monkeypatch, gen):
    """Every variant: (L, D, T, B, W) tensors, and the recorded h and outputs equal the model's
    ordinary forward, on the reference loop and on whatever a user gets (the fused engine)."""
    use_loop(monkeypatch, loop)
    layer = lstmkit.make_layer(variant, 3, 6, num_layers=2, bidirectional=True, batch_first=True)
    random_params_(layer, gen)
    x = torch.randn(4, 7, 3, generator=gen)  # (B, T, I)
    rec = record(layer, x)
    assert list(rec.quantities) == expected_quantities(variant)
    for q in rec.quantities:
        assert rec[q].shape == (2, 2, 7, 4, 6), q
    assert rec.lengths.tolist() == [7] * 4 and rec.calls == 1 and rec.name == "" and rec.variant == variant

    out, state = layer.eval()(x)  # the ordinary forward: the engine where it covers the call
    if loop == "default" and engine.available() and engine_function.supports(layer.spec):
        assert engine.direction_runner(layer.spec, x, zoneout=False, record=False) is not None
    torch.testing.assert_close(rec.output[0], out, **FP32)
    # the last layer's h in both directions is the output; each direction's h at its last step the final state
    h = rec["h"]
    torch.testing.assert_close(torch.cat([h[1, 0], h[1, 1]], dim=-1).transpose(0, 1), out, **FP32)
    h_n = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
    torch.testing.assert_close(h[:, 0, -1].reshape(2, 4, 6), h_n[0::2], **FP32)
    torch.testing.assert_close(h[:, 1, 0].reshape(2, 4, 6), h_n[1::2], **FP32)
    if family(variant) == "lstm":
        torch.testing.assert_close(rec["c"][:, 0, -1], state[1][0::2], **FP32)


def _lstm_reference(p, x, spec, H):
    """Greff et al. 2015, sec. 2, step by step in float64: the quantities a recording must hold."""
    T, B, _ = x.shape
    h, c = x.new_zeros(B, H), x.new_zeros(B, H)
    out = {k: [] for k in "ifgoch"}
    for t in range(T):
        z = x[t] @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
        parts = dict(zip(spec.gates, z.chunk(len(spec.gates), dim=1)))
        peep = lambda g, cell: p[f"weight_c{g}"] * cell if g in spec.peepholes else 0.0  # noqa: E731
        i = torch.sigmoid(parts["i"] + peep("i", c))
        f = 1 - i if spec.coupled else torch.sigmoid(parts["f"] + peep("f", c))
        g = torch.tanh(parts["g"])
        c = f * c + i * g
        o = torch.sigmoid(parts["o"] + peep("o", c))
        h = o * torch.tanh(c)
        for k, v in zip("ifgoch", (i, f, g, o, c, h)):
            out[k].append(v)
    return {k: torch.stack(v) for k, v in out.items()}


@pytest.mark.parametrize("variant", ["lstm", "peephole", "cifg"])
def test_lstm_recording_follows_the_equations(variant, gen):
    layer = lstmkit.make_layer(variant, 3, 5, num_layers=2, dtype=torch.float64)
    random_params_(layer, gen)
    x = torch.randn(6, 2, 3, generator=gen, dtype=torch.float64)
    rec = record(layer, x)
    inp = x
    for L in range(2):
        p = {k[: -len(f"_l{L}")]: v.detach() for k, v in layer.named_parameters() if k.endswith(f"_l{L}")}
        ref = _lstm_reference(p, inp, layer.spec, 5)
        for k in "ifgoch":
            # the recording is float32 (what a page or a plot needs); the reference float64
            torch.testing.assert_close(rec[k][L, 0], ref[k].float(), **FP32)
        inp = ref["h"]


def test_gru_and_rnn_recordings_follow_the_equations(gen):
    gru = lstmkit.GRU(3, 4, dtype=torch.float64)
    random_params_(gru, gen)
    x = torch.randn(5, 2, 3, generator=gen, dtype=torch.float64)
    rec = record(gru, x)
    w_ih, w_hh, b_ih, b_hh = gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0
    h = x.new_zeros(2, 4)
    for t in range(5):  # torch.nn.GRU's equations (reset_after=True)
        xr, xz, xn = (x[t] @ w_ih.T + b_ih).chunk(3, 1)
        hr, hz, hn = (h @ w_hh.T + b_hh).chunk(3, 1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        for k, v in (("r", r), ("z", z), ("n", n), ("h", h)):
            torch.testing.assert_close(rec[k][0, 0, t], v.float().detach(), **FP32)
    rnn = lstmkit.RNN(3, 4, nonlinearity="relu", dtype=torch.float64)
    rec = record(rnn, x)
    h = x.new_zeros(2, 4)
    for t in range(5):
        h = torch.relu(x[t] @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h @ rnn.weight_hh_l0.T + rnn.bias_hh_l0)
        torch.testing.assert_close(rec["h"][0, 0, t], h.float().detach(), **FP32)


def test_record_packed_unbatched_and_projection(gen):
    """Packed input: each sequence as if alone, zeros past its length; unbatched: B = 1; LSTMP: h is P wide."""
    layer = lstmkit.LSTM(3, 6, proj_size=2, dtype=torch.float64)
    random_params_(layer, gen)
    x = torch.randn(7, 3, 3, generator=gen, dtype=torch.float64)
    lengths = [4, 7, 2]
    rec = record(layer, pack_padded_sequence(x, lengths, enforce_sorted=False))
    assert rec.lengths.tolist() == lengths and rec["h"].shape == (1, 1, 7, 3, 2) and rec["c"].shape[-1] == 6
    assert rec.mask().sum(0).tolist() == lengths
    for b, n in enumerate(lengths):
        alone = record(layer, x[:n, b])  # unbatched
        assert alone["c"].shape == (1, 1, n, 1, 6)
        for q in rec.quantities:
            torch.testing.assert_close(rec[q][:, :, :n, b], alone[q][:, :, :, 0], **FP64)
            assert (rec[q][:, :, n:, b] == 0).all()
        np.testing.assert_allclose(rec.series("c", batch=b), alone["c"][0, 0, :, 0].numpy(), rtol=1e-12)


def test_record_leaves_the_model_untouched():
    """Training mode (of every submodule), parameters, gradients, RNG and later outputs are unchanged."""
    torch.manual_seed(0)
    model = LanguageModel(11, cell="lstm", hidden_size=8, num_layers=2, dropout=0.3, zoneout=0.1)
    model.train()
    model.decoder.eval()  # a mixed state, which must come back exactly
    ids = torch.randint(0, 11, (9, 2))
    params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.eval()
    before = model(ids)[0]
    model.train()
    model.decoder.eval()
    modes = {n: m.training for n, m in model.named_modules()}
    rng = torch.get_rng_state()
    rec = record(model, ids)
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert "forward" not in vars(model.rnn)  # the recording hook is gone
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(params[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    torch.testing.assert_close(model(ids)[0], before, rtol=0, atol=0)
    torch.testing.assert_close(rec.output[0], before, **FP32)  # eval mode: zoneout by its expectation
    assert rec.name == "rnn" and rec["c"].shape == (2, 1, 9, 2, 8)


def test_record_restores_the_model_when_forward_fails():
    layer = lstmkit.LSTM(3, 4).train()
    with pytest.raises(ValueError, match="input_size=3"):
        record(layer, torch.randn(5, 2, 7))
    assert layer.training and "forward" not in vars(layer)


class _TwoLayers(torch.nn.Module):
    """An encoder and a decoder that steps one token per call, as seq2seq decoders do."""

    def __init__(self):
        super().__init__()
        self.enc = lstmkit.GRU(3, 4)
        self.dec = lstmkit.LSTM(4, 5)

    def forward(self, x):
        _, h = self.enc(x)
        state, outs = None, []
        for _ in range(3):
            y, state = self.dec(h[-1:], state)  # (1, B, 4) per call
            outs.append(y)
        return torch.cat(outs)


def test_record_picks_a_module_and_joins_repeated_calls():
    model = _TwoLayers()
    x = torch.randn(6, 2, 3)
    with pytest.raises(ValueError, match="holds 2 recurrent modules.*'enc', 'dec'"):
        record(model, x)
    with pytest.raises(ValueError, match="no recurrent module named 'rnn'"):
        record(model, x, module="rnn")
    with pytest.raises(TypeError, match="contains none"):
        record(torch.nn.Linear(2, 2), torch.randn(1, 2))
    dec = record(model, x, module="dec")
    assert dec.calls == 3 and dec["c"].shape == (1, 1, 3, 2, 5) and dec.lengths.tolist() == [3, 3]
    torch.testing.assert_close(dec["h"][0, 0], model(x), **FP32)  # the decoder's steps, joined along T
    both = record_all(model, x)
    assert set(both) == {"enc", "dec"} and both["enc"]["h"].shape == (1, 1, 6, 2, 4)


# ---- text features and the cell search -----------------------------------------------------------

def test_text_features_on_hand_made_strings():
    text = 'x = f(a, "b#)")  # c\n    y\n'
    f = {k: v.astype(int).tolist() for k, v in text_features(text).items()}
    n = len(text)
    #                 x   =   f ( a ,   " b # ) " )     #   c \n
    assert f["in_quotes"] == [0] * 9 + [1] * 4 + [0] * (n - 13)
    assert f["in_brackets"] == [0] * 5 + [1] * 9 + [0] * (n - 14)  # '(' at 5 opens, ')' at 14 closes
    assert f["in_comment"] == [0] * 17 + [1] * 3 + [0] * (n - 20)
    assert f["line_position"][:3] == [1, 2, 3] and f["line_position"][20] == 0 and f["line_position"][21] == 1
    assert f["line_remaining"][0] == 19 and f["line_remaining"][19] == 0 and f["line_remaining"][20] == 5
    assert f["indent"] == [0] * 21 + [4] * 6
    # prose: a ' after a word opens nothing; an unclosed quote ends with its line; f'..' is a string
    g = text_features("don't 'go\nhome' (x\n\ny f'a'")
    assert g["in_quotes"].astype(int).tolist() == [0] * 6 + [1] * 3 + [0] * 14 + [1, 1, 0]
    assert g["in_brackets"].astype(int).tolist() == [0] * 16 + [1] * 3 + [0] * 7  # the blank line closes it
    # triple quotes span lines; an escaped quote does not close
    h = text_features('"""a\n\\"b"""c')
    assert h["in_quotes"].astype(int).tolist() == [1] * 10 + [0] * 2


def test_token_features_take_each_tokens_last_character():
    tokens = ["def ", "f", "(", "x", ")", "\n"]
    f = token_features(tokens)
    assert f["line_position"].tolist() == [4, 5, 6, 7, 8, 0]
    assert f["in_brackets"].tolist() == [0, 0, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="non-empty"):
        token_features(["a", ""])


def test_correlate_is_pearson_and_zero_for_constants(gen):
    a = torch.randn(50, 4, generator=gen, dtype=torch.float64).numpy()
    f = torch.randn(50, 3, generator=gen, dtype=torch.float64).numpy()
    r = correlate(a, f)
    ref = np.corrcoef(a.T, f.T)[:4, 4:]
    np.testing.assert_allclose(r, ref, rtol=1e-12, atol=1e-12)
    a[:, 1] = 0.7
    f[:, 2] = -3.0
    r = correlate(a, f)
    assert (r[1] == 0).all() and (r[:, 2] == 0).all()


def _synthetic_recording(acts: torch.Tensor, quantities=("f", "c", "h")) -> Recording:
    """A Recording of an LSTM-like layer whose every quantity holds ``acts`` (L, D, T, B, W)."""
    return Recording("", "lstm", "lstm", {q: acts.clone() for q in quantities},
                     torch.full((acts.shape[3],), acts.shape[2]))


def test_search_finds_a_planted_cell(gen):
    text = ("def f(x):\n    return (x + 1)  # one\n\nclass A:\n    'doc'\n    y = [1, 2]\n") * 6
    feats = text_features(text)
    T = len(text)
    acts = torch.randn(2, 1, T, 1, 16, generator=gen) * 0.3
    acts[1, 0, :, 0, 11] = torch.tensor(feats["in_comment"]) + 0.05 * torch.randn(T, generator=gen)
    acts[0, 0, :, 0, 3] = -torch.tensor(feats["indent"]) / 4 + 0.05 * torch.randn(T, generator=gen)
    rec = _synthetic_recording(acts, quantities=("c",))
    found = search_cells(rec, feats, top=3)
    best = found["in_comment"][0]
    assert (best.quantity, best.layer, best.direction, best.cell) == ("c", 1, 0, 11) and best.r > 0.95
    best = found["indent"][0]
    assert (best.layer, best.cell) == (0, 3) and best.r < -0.95  # ranked by |r|, sign kept
    assert all(len(v) == 3 for v in found.values())
    # exactly the correlations of those cells, not of the other quantities or layers
    assert found["in_comment"][0].r == pytest.approx(np.corrcoef(acts[1, 0, :, 0, 11], feats["in_comment"])[0, 1])
    assert found["in_quotes"][0].label() == f"c L{found['in_quotes'][0].layer} #{found['in_quotes'][0].cell}"
    feats["constant"] = np.ones(T)
    assert search_cells(rec, feats)["constant"] == []
    with pytest.raises(ValueError, match="steps"):
        search_cells(rec, {"short": np.zeros(T - 1)})


# ---- figures ------------------------------------------------------------------------------------

def test_saturation_fractions_and_pngs(tmp_path, gen):
    acts = torch.rand(2, 1, 10, 3, 4, generator=gen)
    acts[0, 0, :, :, 0] = 0.05  # cell 0 of layer 0: always left-saturated
    acts[1, 0, :5, :, 2] = 0.95  # cell 2 of layer 1: right-saturated half the time ...
    acts[1, 0, 5:, :, 2] = 0.5
    rec = _synthetic_recording(acts, quantities=("i", "f", "o", "c", "h"))
    rec.lengths = torch.tensor([10, 10, 6])  # ... of the valid steps: sequence 2 ends at 6
    sat = figures.saturation(rec)
    assert set(sat) == {"i", "f", "o"} and sat["f"].shape == (2, 1, 4, 2)
    assert sat["f"][0, 0, 0].tolist() == [1.0, 0.0]
    assert sat["f"][1, 0, 2, 1] == pytest.approx((5 + 5 + 5) / 26)
    x = acts[0, 0, :, :, 3]
    valid = torch.arange(10)[:, None] < rec.lengths[None]
    assert sat["i"][0, 0, 3, 0] == pytest.approx(((x < 0.1) & valid).sum().item() / 26)

    pngs = [figures.gate_saturation(rec, tmp_path / "sat.png"),
            figures.cell_traces(rec, [CellMatch("in_quotes", "c", 1, 0, 2, 0.9), (0, 1), 3], tmp_path / "cells.png",
                                text=list("abc\ndefg\nh"), labels=["a", "b", "c"]),
            figures.series_traces(rec, np.sin(np.arange(10)), tmp_path / "series.png", quantities=("f", "c"),
                                  series_names=["sin"])]
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    with pytest.raises(ValueError, match="series has 9 steps"):
        figures.series_traces(rec, np.zeros((9, 2)), tmp_path / "x.png")
    with pytest.raises(KeyError, match="recorded"):
        figures.series_traces(rec, np.zeros(10), tmp_path / "x.png", quantities=("z",))
    gru = record(lstmkit.GRU(2, 3), torch.randn(8, 1, 2))
    figures.series_traces(gru, torch.randn(8, 2), tmp_path / "gru.png")  # a forecaster's (T, F) input
    assert set(figures.saturation(gru)) == {"r", "z"}


# ---- the page -----------------------------------------------------------------------------------

EXTERNAL = re.compile(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|\b(src|href)\s*=\s*[\"']?(?!data:|#)[a-z]+:", re.I)


def _embedded(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def test_page_embeds_the_recording_and_nothing_external(gen):
    layer = lstmkit.LSTM(3, 4, num_layers=2)
    text = 'print("</script><!--")\n'
    x = torch.randn(len(text), 1, 3, generator=gen)
    rec = record(layer, x)
    feats = token_features(list(text))
    html = build_page(rec, list(text), matches=search_cells(rec, feats, top=2), features=feats,
                      title="t <b>", subtitle="s")
    assert not EXTERNAL.search(html)
    assert html.count("</script>") == 2 and "<title>t &lt;b&gt;</title>" in html
    data = _embedded(html)
    assert "".join(data["tokens"]) == text
    assert [q["name"] for q in data["quantities"]] == list("ifgoch")
    q = {d["name"]: d for d in data["quantities"]}
    T = len(text)
    f = np.frombuffer(base64.b64decode(q["f"]["blocks"][1]), dtype=np.uint8).reshape(4, T)  # (W, T) of layer 1
    np.testing.assert_allclose(f / 255, rec["f"][1, 0, :, 0].numpy().T, atol=0.5 / 255 + 1e-6)
    c = np.frombuffer(base64.b64decode(q["c"]["blocks"][0]), dtype=np.uint8).reshape(4, T)
    scale = np.array(q["c"]["scale"][0])
    np.testing.assert_allclose((c / 127.5 - 1) * scale[:, None], rec["c"][0, 0, :, 0].numpy().T,
                               atol=float(scale.max()) / 127 + 1e-4)
    assert [m["feature"] for m in data["matches"]] == list(feats) and data["initial"]["q"] in "ifgoch"
    with pytest.raises(ValueError, match="3 tokens for a recording of"):
        page_data(rec, list("abc"))


# ---- the command --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def charlm_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inspect")
    data = write_text(tmp)
    run = tmp / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LSTMKIT_ENGINE", "0")
        assert run_cli("train", "charlm", "--data", data, *TINY, "--layers", 2, "--max-steps", 5,
                       "--out", run)[0] == 0
    return run, data


def test_inspect_charlm_run_writes_one_self_contained_page(charlm_run, tmp_path, capsys):
    run, data = charlm_run
    out = tmp_path / "page.html"
    rc, stdout, err = run_cli("inspect", run, "--text", data, "--out", out, "--max-tokens", 500, "--top", 3,
                              capsys=capsys)
    assert rc == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and not EXTERNAL.search(html)
    page = _embedded(html)
    assert "".join(page["tokens"]) == TEXT[:500] and len(page["layers"]) == 2
    assert all(len(m["items"]) in (0, 3) for m in page["matches"])
    assert f"wrote {out}" in stdout and "line_position" in stdout and "(the first 500)" in page["subtitle"]
    rc, stdout, err = run_cli("inspect", run, "--text", data, "--png", capsys=capsys)  # default --out
    assert rc == 0, err
    assert {"inspect.html", "inspect-saturation.png", "inspect-cells.png"} <= {p.name for p in run.iterdir()}


def test_inspect_wordlm_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LSTMKIT_ENGINE", "0")
    ptb = write_ptb(tmp_path)
    run = tmp_path / "run"
    assert run_cli("train", "wordlm", "--data", ptb, "--hidden", 8, "--layers", 1, "--seq-len", 5,
                   "--batch-size", 4, "--max-steps", 2, "--out", run, capsys=capsys)[0] == 0
    text = write_text(tmp_path, "words.txt", "\n".join(PTB_LINES[:3] + ["the zebra sat"]) + "\n")
    rc, _, err = run_cli("inspect", run, "--text", text, "--out", tmp_path / "w.html", capsys=capsys)
    # real PTB maps rare words to <unk>, which then stands in for unknown words; this corpus has none
    assert "<unk>" not in (ptb / "train.txt").read_text()
    assert rc == 2 and "never saw" in err and "zebra" in err and len(err.strip().splitlines()) == 1
    text.write_text("\n".join(PTB_LINES[:3]) + "\n")
    rc, _, err = run_cli("inspect", run, "--text", text, "--out", tmp_path / "w.html", capsys=capsys)
    assert rc == 0, err
    tokens = _embedded((tmp_path / "w.html").read_text())["tokens"]
    assert "".join(tokens) == "".join(w + " " for w in PTB_LINES[0].split()) + "\n" + \
        "".join(w + " " for w in PTB_LINES[1].split()) + "\n" + "".join(w + " " for w in PTB_LINES[2].split()) + "\n"


@dataclass
class _SumData:
    train: list
    valid: None = None
    state: dict = None


class _SumTask(lstmkit.tasks.Task):
    """A real (tiny) non-language-model task: predict the sum of a sequence of numbers."""

    name = "test-sum"
    metric_name = "mse"
    unit = "sequence"

    def load(self, cfg, state=None):
        g = torch.Generator().manual_seed(0)
        return _SumData([torch.randn(6, 8, 1, generator=g) for _ in range(4)], None, {"scale": 1.0})

    def state_to_json(self, state):
        return dict(state)

    def state_from_json(self, d):
        return dict(d)

    def build_model(self, cfg, state):
        class Model(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = lstmkit.LSTM(1, cfg.model.hidden)
                self.head = torch.nn.Linear(cfg.model.hidden, 1)

            def forward(self, x):
                return self.head(self.rnn(x)[0][-1])
        return Model()

    def batches(self, cfg, data, rank=0, world=1):
        return data.train

    def loss_fn(self, cfg):
        from lstmkit.train.trainer import StepOutput

        def loss_fn(model, x, carry):
            loss = F.mse_loss(model(x), x.sum(0))
            return StepOutput(loss, loss.item(), x.shape[1], None)
        return loss_fn

    def evaluate(self, model, split, cfg, poll=lambda: None):
        return 0.0

    def describe(self, loss):
        return loss


# ---- bad input ----------------------------------------------------------------------------------

def test_inspect_rejects_a_directory_that_is_not_a_run(tmp_path, capsys):
    text = write_text(tmp_path)
    assert_usage_error(run_cli("inspect", tmp_path, "--text", text, capsys=capsys), "is not an lstmkit run")
    assert_usage_error(run_cli("inspect", tmp_path / "nope", "--text", text, capsys=capsys), "does not exist")
    assert not list(tmp_path.glob("*.html"))


def test_inspect_rejects_a_run_that_is_not_a_language_model(tmp_path, capsys, monkeypatch):
    from lstmkit import tasks as registry
    from lstmkit.train.config import RunConfig
    from lstmkit.train.run import train

    monkeypatch.setitem(registry._TASKS, _SumTask.name, _SumTask())
    monkeypatch.setenv("LSTMKIT_ENGINE", "0")
    cfg = RunConfig.from_dict({"task": _SumTask.name, "model": {"hidden": 4, "layers": 1},
                               "train": {"max_steps": 2, "epochs": 0, "log_every": 1}})
    train(cfg, tmp_path / "run", progress=False)
    assert_usage_error(run_cli("inspect", tmp_path / "run", "--text", write_text(tmp_path), capsys=capsys),
                 "needs a charlm or wordlm run", "test-sum run")
    assert not (tmp_path / "run" / "inspect.html").exists()
    # the library works on it: record its model on its own input
    from lstmkit.train.run import load_run
    _, _, _, model, _ = load_run(tmp_path / "run")
    x = torch.randn(6, 1, 1)
    rec = record(model, x)
    torch.testing.assert_close(rec.output, model(x), **FP32)
    figures.series_traces(rec, x[:, 0], tmp_path / "sum.png")


def test_inspect_rejects_unknown_characters_and_empty_text(charlm_run, tmp_path, capsys):
    run, _ = charlm_run
    out = tmp_path / "page.html"
    bad = write_text(tmp_path, "bad.txt", "First Citizen: \u00e9t\u00e9 \u2603\n")
    assert_usage_error(run_cli("inspect", run, "--text", bad, "--out", out, capsys=capsys),
                 "bad.txt", "2 character(s) the model never saw")
    empty = write_text(tmp_path, "empty.txt", "")
    assert_usage_error(run_cli("inspect", run, "--text", empty, "--out", out, capsys=capsys), "is empty")
    blank = write_text(tmp_path, "blank.txt", " \n\n")
    assert_usage_error(run_cli("inspect", run, "--text", blank, "--out", out, capsys=capsys), "only whitespace")
    assert_usage_error(run_cli("inspect", run, "--text", tmp_path / "missing.txt", "--out", out, capsys=capsys),
                 "does not exist")
    assert_usage_error(run_cli("inspect", run, "--text", bad, "--out", tmp_path, capsys=capsys), "is a directory")
    assert_usage_error(run_cli("inspect", run, "--text", bad, "--max-tokens", 0, capsys=capsys), "--max-tokens")
    assert_usage_error(run_cli("inspect", run, capsys=capsys), "--text")
    assert not out.exists()
    # the unknown characters lie past --max-tokens: only the part used must be known
    assert run_cli("inspect", run, "--text", bad, "--out", out, "--max-tokens", 14, capsys=capsys)[0] == 0

