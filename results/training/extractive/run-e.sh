#!/usr/bin/env bash
# Run E: the extractive memory (windows of 32 tokens, a selecting aggregator, the LM reading the chosen window's
# tokens as the context of SmolLM2's chat template, the question in the same user turn). Only the selection is trained (~78k parameters), towards the frozen LM's own answer loss with each window
# of the batch's 8 documents (--objective select); the LM's losses are cached in the run's window-losses.sqlite, so
# the first pass over the questions is the slow one. Resumable: rerun to continue from runs/extractive-e.
set -euo pipefail
cd "$(dirname "$0")/../../.."
exec node bin/mac-lm.js train --data ../shared/data/squad/squad-dev-open.json --train-data data/squad/train-v1.1.json \
  --train-articles "${ARTICLES:-4}" --out runs/extractive-e --config results/training/extractive/extractive.json \
  --steps "${STEPS:-400}" --batch-size 8 --keep-ratio 1 --objective select --lr 3e-3 --warmup 20 \
  --eval-every "${EVAL_EVERY:-100}" --eval-questions 48 --ablation-questions 128 --checkpoint-every 25
