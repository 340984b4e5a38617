#!/usr/bin/env bash
# The models, pages and pictures of docs/inspect.md, exactly as made (from the repository root).
# The two trainings ran side by side, one thread each, on a shared 2-core machine.
set -euo pipefail
DATA=${DATA:-../shared/data}
PY=${PY:-.venv/bin/python}
WORK=${WORK:-/tmp/inspect8}   # corpora, runs and pages stay outside the repository
mkdir -p "$WORK"

# Python source: the first 70 top-level modules of Debian 12's /usr/lib/python3.11, in sorted
# order (__future__.py ... heapq.py, 1,850,284 characters).
ls /usr/lib/python3.11/*.py | sort | head -70 | xargs cat > "$WORK/pysrc.txt"
$PY -m lstmkit train charlm --data "$WORK/pysrc.txt" --layers 2 --hidden 128 --seq-len 100 --batch-size 32 \
    --lr 0.002 --eval-every 250 --time-budget 1200 --threads 1 --seed 0 --out "$WORK/run-python" &
$PY -m lstmkit train charlm --preset char-shakespeare --data "$DATA/tinyshakespeare.txt" \
    --time-budget 1200 --threads 1 --seed 0 --out "$WORK/run-shakespeare" &
wait
# The Python model then trained 15 minutes more (its first 20 left validation at 2.16 bits/char).
$PY -m lstmkit train charlm --out "$WORK/run-python" --resume --time-budget 900 --threads 1

# Texts neither model trained on: part of queue.py (not among the 70), and 100 lines of Shakespeare's validation split.
sed -n '27,110p' /usr/lib/python3.11/queue.py > "$WORK/queue-27-110.py"
tail -n 3000 "$DATA/tinyshakespeare.txt" | head -n 100 > "$WORK/shakespeare-valid-100.txt"
$PY -m lstmkit inspect "$WORK/run-python" --text "$WORK/queue-27-110.py" --max-tokens 4000 --top 5 --png \
    --out "$WORK/python.html"
$PY -m lstmkit inspect "$WORK/run-shakespeare" --text "$WORK/shakespeare-valid-100.txt" --max-tokens 4000 --top 5 \
    --png --out "$WORK/shakespeare.html"
# Whole held-out texts, searched without a page (benchmarks/inspect_search.py).
tail -n 4000 "$DATA/tinyshakespeare.txt" | head -n 800 > "$WORK/shakespeare-valid-800.txt"
$PY benchmarks/inspect_search.py "$WORK/run-python" /usr/lib/python3.11/queue.py
$PY benchmarks/inspect_search.py "$WORK/run-python" /usr/lib/python3.11/textwrap.py
$PY benchmarks/inspect_search.py "$WORK/run-shakespeare" "$WORK/shakespeare-valid-800.txt"
# Screenshots (headless chromium), views chosen from the lists the commands above printed.
