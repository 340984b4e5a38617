#!/usr/bin/env bash
# The learning-rate check of docs/results.md: the jsb-chung runs again at lr 1e-3 (the preset's
# is 3e-3), so each cell's lr is picked on validation NLL, as Chung et al. picked theirs.
# Usage: benchmarks/jsb_chung_lr.sh CELL HIDDEN   (from the repository root)
set -euo pipefail
DATA=${DATA:-../shared/data}
PY=${PY:-.venv/bin/python}
export LSTMKIT_ENGINE=${LSTMKIT_ENGINE:-0} OMP_NUM_THREADS=1
mkdir -p runs
$PY -m lstmkit train music --preset jsb-chung --data "$DATA/jsb-chorales-quarter.json" \
    --cell "$1" --hidden "$2" --lr 1e-3 --out "runs/jsb-$1-lr1e-3" > "runs/jsb-$1-lr1e-3.log" 2>&1
$PY -m lstmkit evaluate "runs/jsb-$1-lr1e-3" --split test >> "runs/jsb-$1-lr1e-3.log" 2>&1
