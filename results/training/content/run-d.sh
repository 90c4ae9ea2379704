#!/usr/bin/env bash
# Run D: the self-supervised stage alone (resumable: rerun to continue from runs/content-d). Each document of a batch
# of 8 SQuAD train paragraphs is reproduced (its first 64 tokens) by the frozen LM from a memory of itself, queried by
# a fixed instruction; config lm-soft-readout.json (LM reader pooling without the queries' residual, readout
# aggregator, soft tokens), lr 1e-3. Validation: text loss with the own document's memory, the next validation
# document's, and none, on 32 validation paragraphs (gain = unrelated − own).
set -euo pipefail
cd "$(dirname "$0")/../../.."
exec node bin/mac-lm.js train --data ../shared/data/squad/squad-dev-open.json --train-data data/squad/train-v1.1.json \
  --out runs/content-d --config results/training/content/lm-soft-readout.json --steps "${STEPS:-3000}" --batch-size 8 \
  --keep-ratio 1 --objective reconstruct --text-tokens 64 --lr 1e-3 --warmup 20 \
  --eval-every "${EVAL_EVERY:-50}" --eval-questions 0 --ablation-questions 0 --checkpoint-every 25
