"""``lstmkit translate RUN_DIR``: translate a sentence or a file with a trained translate run.

``--text "..."`` prints one translation; ``--file FILE`` translates every non-blank line
(a line ``SOURCE<TAB>REFERENCE`` translates SOURCE, and when every line has a reference the
command also reports BLEU and exact match on stderr). ``--beam K`` uses beam search;
``--heatmap PNG`` (with ``--text``) draws the attention weights.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from ..errors import UsageError


def add_parser(sub) -> None:
    p = sub.add_parser("translate", help="translate text or a file with a trained translate run")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by lstmkit train translate")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="one sentence to translate")
    src.add_argument("--file", metavar="FILE", help="a UTF-8 file: one source per line (or SOURCE<TAB>REFERENCE)")
    p.add_argument("--beam", type=int, default=1, help="beam width (default 1 = greedy decoding)")
    p.add_argument("--length-penalty", type=float, default=None,
                   help="beam search: GNMT length normalisation alpha (default: the run's, 0.6)")
    p.add_argument("--out", metavar="FILE", help="write the translations here (one per line) instead of stdout")
    p.add_argument("--heatmap", metavar="PNG", help="with --text: save the attention weights as a heatmap")
    p.add_argument("--last", action="store_true", help="use the latest checkpoint, not the best-validation weights")
    p.set_defaults(run=run)


def _read_sources(path: str) -> tuple[list[str], list[str] | None]:
    from ..data.text import read_text

    sources, refs = [], []
    for n, line in enumerate(read_text(path, "--file").splitlines(), 1):
        if not line.strip():
            continue
        src, tab, rest = line.partition("\t")
        ref = rest.split("\t")[0]
        if not src.strip():
            raise UsageError(f"--file {path!r} line {n} has an empty source; expected text to translate")
        sources.append(src.strip())
        refs.append(ref.strip() if tab and ref.strip() else None)
    return sources, (refs if all(r is not None for r in refs) else None)


def run(args) -> int:
    from ..tasks.translate import TranslateTask, plot_attention, score_translations
    from ..train.run import load_run
    from ..data.pairs import tokenize

    if args.beam < 1:
        raise UsageError(f"--beam must be >= 1; got {args.beam}")
    if args.length_penalty is not None and (not args.length_penalty >= 0 or math.isinf(args.length_penalty)):
        raise UsageError(f"--length-penalty must be >= 0; got {args.length_penalty}")
    if args.heatmap and args.text is None:
        raise UsageError("--heatmap needs --text: it draws the attention of one sentence")
    if args.text is not None and not args.text.strip():
        raise UsageError("--text is empty; expected a sentence to translate")
    for flag, path in (("--out", args.out), ("--heatmap", args.heatmap)):
        if path and (Path(path).is_dir() or not Path(path).absolute().parent.is_dir()):
            raise UsageError(f"{flag} {path!r} is a directory or its directory does not exist")
    task, cfg, state, model, _ = load_run(args.run_dir, "last" if args.last else "best")
    if not isinstance(task, TranslateTask):
        raise UsageError(f"{str(args.run_dir)!r} holds a {task.name} run; lstmkit translate needs a translate run")
    if args.heatmap and cfg.options.attention == "none":
        raise UsageError("--heatmap: this run has no attention (it was trained with --attention none)")
    sources, refs = ([args.text.strip()], None) if args.text is not None else _read_sources(args.file)
    alpha = cfg.options.length_penalty if args.length_penalty is None else args.length_penalty
    hyps, attns = task.translate(model, state, sources, args.beam, alpha, cfg.train.device)
    text = "".join(h + "\n" for h in hyps)
    if args.out:
        tmp = Path(args.out).with_name(Path(args.out).name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, args.out)
    else:
        sys.stdout.write(text)
    if refs is not None:
        s = score_translations(hyps, refs, sources)
        print(f"{len(refs)} pairs: BLEU {s['bleu']:.2f}, exact match {s['exact_match']:.4f}", file=sys.stderr)
    if args.heatmap:
        if not plot_attention(attns[0], tokenize(sources[0], state.tokens), tokenize(hyps[0], state.tokens),
                              Path(args.heatmap), f"{cfg.options.attention} attention, {cfg.model.cell}"):
            raise UsageError("--heatmap needs matplotlib: pip install matplotlib")
        print(f"attention heatmap: {args.heatmap}", file=sys.stderr)
    return 0
