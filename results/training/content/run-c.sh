#!/usr/bin/env bash
# Run C of the content recipe (resumable: rerun to continue from the newest checkpoint in runs/content-c).
# lm-queries reader + soft-prompt modulation (lm-soft-zero.json), own-document memory only, per-document batches,
# context distillation (weight 2, top-32 teacher) + answer NLL, lr 1e-3, trained on the SQuAD v1.1 train set
# (scripts/fetch-squad-train.sh); validation = the 4 val articles of the dev split, memory ablation on 128 questions.
set -euo pipefail
cd "$(dirname "$0")/../../.."
exec node bin/mac-lm.js train --data ../shared/data/squad/squad-dev-open.json --train-data data/squad/train-v1.1.json \
  --out runs/content-c --config results/training/content/lm-soft-zero.json --steps "${STEPS:-3000}" --batch-size 8 \
  --keep-ratio 1 --memory-per-question 1 --group-by-document --distill 2 --lr 1e-3 --warmup 50 \
  --eval-every "${EVAL_EVERY:-100}" --eval-questions 0 --ablation-questions 128 --checkpoint-every 25
