#!/usr/bin/env bash
# Issue 9, item 6: the rest of the family (MUT1-3, clockwork, grid) on the long-lag suite
# (adding T=100, temporal order with 3 symbols) and on JSB Chorales, at parameter counts matched
# to each task's LSTM, ONE seed (0, the default), a fixed wall-clock
# training budget of 240 s per run (--time-budget 240), everything else the task's default preset.
# The hidden sizes below are the ones whose parameter counts (model built through the task,
# all parameters counted: benchmarks/family_params.py) are nearest to the LSTM's; docs/results.md lists the counts.
# Usage, from the repository root:  benchmarks/family_runs.sh [JOB ...]   (default: every job)
# JOB is TASK:CELL:HIDDEN[:NAME]; JOBS=2 runs are run side by side (one thread each), as recorded.
# The depth-gated LSTM has no CLI flag; its run is benchmarks/family_depthgate.py (see the end).
set -euo pipefail
DATA=${DATA:-/work/shared/data}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/family}
JOBS=${JOBS:-2}
BUDGET=${BUDGET:-240}
# The compiled engine off for every cell, as in benchmarks/jsb_chung.sh, so no cell gets a faster kernel.
export LSTMKIT_ENGINE=${LSTMKIT_ENGINE:-0} OMP_NUM_THREADS=1

run_one() {  # TASK:CELL:HIDDEN[:NAME]  (NAME: run directory suffix, default CELL)
    IFS=: read -r task cell hidden name <<< "$1"
    local dir="$OUT/$task-${name:-$cell}" ; local log="$OUT/$task-${name:-$cell}.log"
    case $task in
      jsb)
        $PY -m lstmkit train music --preset jsb-chung --data "$DATA/jsb-chorales-quarter.json" \
            --cell "$cell" --hidden "$hidden" --time-budget "$BUDGET" --threads 1 --force --out "$dir" > "$log" 2>&1 \
          && $PY -m lstmkit evaluate "$dir" --split test >> "$log" 2>&1 ;;
      adding)
        $PY -m lstmkit train adding --preset adding-adam --T 100 \
            --cell "$cell" --hidden "$hidden" --time-budget "$BUDGET" --threads 1 --force --out "$dir" > "$log" 2>&1 ;;
      temporal-order)
        $PY -m lstmkit train temporal-order --preset temporal-order-adam --lr 3e-3 --symbols 3 \
            --cell "$cell" --hidden "$hidden" --time-budget "$BUDGET" --threads 1 --force --out "$dir" > "$log" 2>&1 ;;
    esac
    echo "$1 exit $?" >> "$OUT/status.txt"
}
export -f run_one ; export PY DATA OUT BUDGET

ALL=(
  jsb:lstm:34 jsb:mut1:45 jsb:mut2:41 jsb:mut3:41 jsb:clockwork:78 jsb:grid:30
  adding:lstm:64 adding:mut1:91 adding:mut2:75 adding:mut3:75 adding:clockwork:130 adding:grid:33
  temporal-order:lstm:64 temporal-order:mut1:90 temporal-order:mut2:75 temporal-order:mut3:75
  temporal-order:clockwork:131 temporal-order:grid:34
  # the clockwork RNN matched by free parameters (the masked zeros of weight_hh not counted)
  jsb:clockwork:87:clockwork-free adding:clockwork:172:clockwork-free temporal-order:clockwork:171:clockwork-free
)
mkdir -p "$OUT"
if [ $# -gt 0 ]; then ALL=("$@"); fi
printf '%s\n' "${ALL[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {} || true'
# The depth-gated LSTM (2 layers, matched parameters), after the rest, as recorded:
#   PYTHONPATH=src $PY benchmarks/family_depthgate.py --task adding --count
#   PYTHONPATH=src $PY benchmarks/family_depthgate.py --task adding --hidden 36 --time-budget 240 --out runs/family/adding-depthgate
# The LSTM on temporal order with the compiled engine on (the extra row of that table):
#   LSTMKIT_ENGINE=1 benchmarks/family_runs.sh temporal-order:lstm:64:lstm-engine

# The depth-gated LSTM through --depth-gate (parameters matched: JSB 2x25 = 19,688; temporal order 2x36 = 18,980):
#   LSTMKIT_ENGINE=0 $PY -m lstmkit train music --preset jsb-chung --data "$DATA/jsb-chorales-quarter.json" \
#       --cell lstm --layers 2 --depth-gate --hidden 25 --time-budget 240 --threads 1 --out runs/family/jsb-depthgate
#   LSTMKIT_ENGINE=0 $PY -m lstmkit train temporal-order --preset temporal-order-adam --symbols 3 \
#       --cell lstm --layers 2 --depth-gate --hidden 36 --time-budget 240 --threads 1 --out runs/family/to-depthgate
