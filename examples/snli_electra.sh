#!/usr/bin/env bash
# The seed project's set-up by hub names (needs internet; a GPU is advisable):
# google/electra-small-discriminator fine-tuned on stanfordnlp/snli (550k training pairs; rows
# without a gold label, -1, are dropped), then the data map, the 33% most ambiguous and the 10%
# hardest examples as focused subsets with random controls, ensembles tuned on the validation
# split, and the report in runs/snli_electra/report.html.
#
#   examples/snli_electra.sh [OUTPUT_DIR] [more datacarto run flags]
#
# Not run by the tests (they never touch the Hugging Face Hub).
set -euo pipefail
cd "$(dirname "$0")/.."

DATACARTO=${DATACARTO:-datacarto}
OUT=${1:-runs/snli_electra}
shift || true

"$DATACARTO" run \
    --model google/electra-small-discriminator \
    --dataset stanfordnlp/snli:train \
    --validation stanfordnlp/snli:validation \
    --test stanfordnlp/snli:test \
    --text-columns premise,hypothesis \
    --class-names entailment,neutral,contradiction \
    --output-dir "$OUT" \
    --max-length 128 \
    --dynamics-mode training_pass \
    --num_train_epochs 5 \
    --learning_rate 2e-5 \
    --per_device_train_batch_size 32 \
    --per_device_eval_batch_size 256 \
    --save_strategy epoch --save_total_limit 1 \
    --recipes 'ambiguous-33:region=ambiguous,fraction=0.33;hard-10:region=hard-to-learn,fraction=0.10' \
    --focus-init baseline \
    --focus-training-args '{num_train_epochs: 2, learning_rate: 1.0e-5}' \
    --control true \
    --ensemble-combine logits \
    --title "SNLI, ELECTRA-small" \
    "$@"
