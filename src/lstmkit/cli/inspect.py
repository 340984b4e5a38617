"""``lstmkit inspect RUN_DIR --text FILE``: one HTML page (and optional PNGs) of a language model's cells."""
from __future__ import annotations

from pathlib import Path

from ..errors import UsageError

DEFAULT_MAX_TOKENS = 2000


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="colour a text by a language model's cells; find interpretable cells")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a charlm or wordlm run directory written by lstmkit train")
    p.add_argument("--text", metavar="FILE", required=True,
                   help="UTF-8 text to run the model on; only characters (words) the model knows")
    p.add_argument("--out", metavar="PAGE", help="the HTML page to write (default: RUN_DIR/inspect.html)")
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                   help=f"use the first N characters (words) of the text (default {DEFAULT_MAX_TOKENS}; the page "
                        "holds one byte per cell, quantity and token)")
    p.add_argument("--top", type=int, default=5, help="cells listed per text feature (default 5)")
    p.add_argument("--png", action="store_true",
                   help="also write PAGE-saturation.png (gate saturation) and PAGE-cells.png (the best cell's "
                        "trace per feature) next to the page")
    p.add_argument("--last", action="store_true", help="use the latest checkpoint, not the best-validation weights")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..data.text import ptb_tokens, read_text
    from ..models.lm import LanguageModel
    from ..train.run import load_run

    if args.max_tokens < 1:
        raise UsageError(f"--max-tokens must be >= 1; got {args.max_tokens}")
    if args.top < 1:
        raise UsageError(f"--top must be >= 1; got {args.top}")
    task, cfg, vocab, model, _ = load_run(args.run_dir, "last" if args.last else "best")
    if not isinstance(model, LanguageModel) or task.name not in ("charlm", "wordlm"):
        raise UsageError(f"lstmkit inspect needs a charlm or wordlm run; {str(args.run_dir)!r} is a {task.name} run "
                         f"(for other models use lstmkit.inspect.record and lstmkit.inspect.figures, see docs/inspect.md)")
    out = Path(args.out) if args.out else Path(args.run_dir) / "inspect.html"
    if out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a directory; expected the path of an HTML file to write")
    if not out.parent.is_dir():
        raise UsageError(f"--out {str(out)!r}: directory {str(out.parent)!r} does not exist")
    text = read_text(args.text, "text file")
    if task.name == "charlm":
        truncated = len(text) > args.max_tokens
        used = text[: args.max_tokens]
        ids = vocab.encode(used, f"text file {args.text!r}")
        tokens = list(used)
    else:
        words = ptb_tokens(text)  # <eos> at each line end, as in training
        truncated, words = len(words) > args.max_tokens, words[: args.max_tokens]
        if not words:
            raise UsageError(f"text file {args.text!r} holds no words")
        ids = vocab.encode(words, f"text file {args.text!r}")
        tokens = ["\n" if w == "<eos>" else w + " " for w in words]
    summary = inspect_tokens(model, ids, tokens, cfg.train.device, out, top=args.top, png=args.png,
                             title=f"lstmkit inspect: {Path(args.run_dir).name}",
                             subtitle=f"{task.name} {cfg.model.cell} {cfg.model.layers}x{cfg.model.hidden} on "
                                      f"{Path(args.text).name}: {len(tokens):,} {task.unit}s"
                                      + (f" (the first {args.max_tokens:,})" if truncated else ""))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {len(tokens):,} {task.unit}s, "
          f"{model.rnn.num_layers} layers x {model.rnn.hidden_size} cells, quantities {', '.join(summary['quantities'])}")
    for name, items in summary["matches"].items():
        if items:
            best = ", ".join(f"{m.label()} r={m.r:+.2f}" for m in items[:3])
            print(f"  {name:15s} {best}")
        else:
            print(f"  {name:15s} (constant on this text)")
    for png in summary["pngs"]:
        print(f"wrote {png}")
    return 0


def inspect_tokens(model, ids: list[int], tokens: list[str], device, out: Path, *, top: int = 5, png: bool = False,
                   title: str = "", subtitle: str = "") -> dict:
    """Record ``model`` (a LanguageModel) on ``ids``, search the cells, write the page (and PNGs)."""
    import torch

    from ..inspect import build_page, record, search_cells, token_features, write_page

    x = torch.tensor(ids, dtype=torch.long, device=device).view(-1, 1)  # (T, 1)
    rec = record(model, x, module="rnn")
    features = token_features(tokens)
    matches = search_cells(rec, features, top=top)
    write_page(out, build_page(rec, tokens, matches=matches, features=features, title=title, subtitle=subtitle))
    pngs = []
    if png:
        from ..inspect import figures
        stem = out.with_suffix("")
        if rec.gates:
            pngs.append(figures.gate_saturation(rec, f"{stem}-saturation.png", title=f"gate saturation: {subtitle}"))
        best = [items[0] for items in matches.values() if items]
        if best:
            pngs.append(figures.cell_traces(rec, best, f"{stem}-cells.png", text=tokens,
                                            labels=[f"{m.feature} r={m.r:+.2f}" for m in best]))
    return {"recording": rec, "matches": matches, "quantities": rec.quantities, "pngs": pngs}
