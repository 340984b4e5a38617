#!/usr/bin/env bash
# The translate reference runs recorded in docs/translate.md and docs/results.md, exactly as run
# (from the repository root), one thread each, in turn. The built-in date task, 20,000 pairs
# (16,000 train, 2,000 valid, 2,000 test), the `dates` preset's 1x128 LSTM encoder-decoder, and
# the same number of epochs for each attention setting:
#   1. the long inputs: date intervals (--date-formats intervals, 12-61 characters, 32 on average,
#      -> "2026-11-21/2026-12-05"), 3 epochs, and a no-attention model widened to the same parameter count;
#   2. single dates in babel's longest format (--date-formats full: weekday, day, month name, year),
#      2 epochs (500 steps), and --attention none for 5 epochs.
set -euo pipefail
PY=${PY:-.venv/bin/python}
COMMON=(--preset dates --date-pairs 20000 --threads 1 --log-every 100)

for att in none additive multiplicative; do
    $PY -m lstmkit train translate "${COMMON[@]}" --date-formats intervals --epochs 3 --attention "$att" \
        --out "runs/ref-intervals-$att-e3" --force
done
# a no-attention model with as many parameters as the additive one (307k vs 306k)
$PY -m lstmkit train translate "${COMMON[@]}" --date-formats intervals --epochs 3 --attention none --hidden 178 \
    --out runs/ref-intervals-none-h178-e3 --force
for att in none additive multiplicative; do
    $PY -m lstmkit train translate "${COMMON[@]}" --date-formats full --epochs 2 --attention "$att" \
        --out "runs/ref-dates-$att-e2" --force
done
$PY -m lstmkit train translate "${COMMON[@]}" --date-formats full --epochs 5 --attention none \
    --out runs/ref-dates-none-e5 --force
