#!/usr/bin/env bash
# The time-series reference runs recorded in docs/results.md and docs/timeseries.md, exactly as
# run (from the repository root), one thread each, the pure-torch loop (LSTMKIT_ENGINE=0).
# Built-in data only (the timeseries extra: pip install 'lstmkit[timeseries]'); nothing is downloaded.
# About 6 minutes on a quiet 2-core machine.
set -euo pipefail
PY=${PY:-.venv/bin/python}
export LSTMKIT_ENGINE=${LSTMKIT_ENGINE:-0} OMP_NUM_THREADS=1
OUT=${OUT:-runs}

# Forecasting: yearly sunspots (built in), window 24, horizon 6, test = the last 46 years (1963-2008).
for cell in lstm gru peephole; do
    for seed in 0 1 2; do
        $PY -m lstmkit train forecast --cell $cell --seed $seed --log-every 1000 \
            --out $OUT/ref-forecast-sunspots-$cell-s$seed --force
    done
done
$PY -m lstmkit predict $OUT/ref-forecast-sunspots-lstm-s0
# Monthly Mauna Loa CO2 (built in), a series with a trend.
$PY -m lstmkit train forecast --preset co2 --log-every 1000 --out $OUT/ref-forecast-co2-lstm --force
$PY -m lstmkit train forecast --preset co2 --no-residual --log-every 1000 \
    --out $OUT/ref-forecast-co2-lstm-noresidual --force

# Classification: JapaneseVowels (built in via aeon), its own 270 / 370 train / test split.
for cell in lstm gru; do
    for seed in 0 1 2; do
        $PY -m lstmkit train classify --cell $cell --seed $seed --log-every 1000 \
            --out $OUT/ref-classify-jv-$cell-s$seed --force
    done
done
$PY -m lstmkit train classify --bidirectional --readout mean --log-every 1000 --out $OUT/ref-classify-jv-bilstm-mean --force
