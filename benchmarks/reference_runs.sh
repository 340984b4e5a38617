#!/usr/bin/env bash
# The reference runs recorded in docs/results.md, exactly as run (from the repository root).
# Both use one thread each (the default); on a 2-core machine run them side by side or in turn.
set -euo pipefail
DATA=${DATA:-../shared/data}
PY=${PY:-.venv/bin/python}

# Tiny Shakespeare, 15 minutes of training (the reference run).
$PY -m lstmkit train charlm --preset char-shakespeare --data "$DATA/tinyshakespeare.txt" \
    --time-budget 900 --log-every 50 --out runs/ref-char-shakespeare
$PY -m lstmkit generate runs/ref-char-shakespeare --prime "ROMEO:" --length 400 --temperature 0.8 --seed 1

# Zaremba et al. 2014's small non-regularised PTB model: 13 epochs. If it is stopped
# (Ctrl-C), `lstmkit train wordlm --out runs/ref-ptb-small --resume` continues it exactly.
$PY -m lstmkit train wordlm --preset ptb-small --data "$DATA/ptb" --log-every 250 --out runs/ref-ptb-small
$PY -m lstmkit evaluate runs/ref-ptb-small --split valid
$PY -m lstmkit evaluate runs/ref-ptb-small --split test
