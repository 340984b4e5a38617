#!/usr/bin/env bash
# The translate reference runs recorded in docs/translate.md and docs/results.md, exactly as run
# (from the repository root). The built-in date task with its longest inputs (--date-formats full:
# weekday, day, month name, year in ten locales), 20,000 pairs, the same model size and the same
# number of epochs for each attention setting; one thread each, run in turn.
set -euo pipefail
PY=${PY:-.venv/bin/python}
COMMON=(--preset dates --date-formats full --date-pairs 20000 --epochs 5 --threads 1 --log-every 100)

for att in none additive multiplicative; do
    $PY -m lstmkit train translate "${COMMON[@]}" --attention "$att" --out "runs/ref-dates-$att" --force
done
$PY -m lstmkit translate runs/ref-dates-additive --text "Samstag, 21. November 2026" --beam 4 \
    --heatmap runs/ref-dates-additive/heatmap-de.png
