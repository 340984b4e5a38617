#!/usr/bin/env bash
# The JSB Chorales reference runs in docs/results.md (Chung et al. 2014's comparison at ~20k
# parameters), exactly as run, from the repository root. Each run uses one thread; the three
# are independent, so on a 2-core machine run them side by side (JOBS=3, the default, as recorded).
set -euo pipefail
DATA=${DATA:-../shared/data}
PY=${PY:-.venv/bin/python}
export LSTMKIT_ENGINE=${LSTMKIT_ENGINE:-0} OMP_NUM_THREADS=1

run() {  # cell hidden
    $PY -m lstmkit train music --preset jsb-chung --data "$DATA/jsb-chorales-quarter.json" \
        --cell "$1" --hidden "$2" --out "runs/jsb-$1" > "runs/jsb-$1.log" 2>&1
    $PY -m lstmkit evaluate "runs/jsb-$1" --split test >> "runs/jsb-$1.log" 2>&1
    $PY -m lstmkit generate "runs/jsb-$1" --out "runs/jsb-$1/sample.mid" --steps 64 --seed 1 >> "runs/jsb-$1.log" 2>&1
}
mkdir -p runs
run rnn 78 &
run gru 41 &
run lstm 34 &
wait
tail -n 4 runs/jsb-*.log
