#!/usr/bin/env bash
# The window size W of the shipped extractive memory, chosen on validation: the same selection weights
# (checkpoints/mac-extractive, trained at W = 32) read windows of W tokens; for each W, `mac-lm eval` of MAC alone on
# the validation stream's first 40 paragraphs (196 questions, greedy). Writes window-size/wW-results.json.
# Usage: results/training/extractive/window-size.sh [W ...]   (default: 32 64 96)
set -euo pipefail
cd "$(dirname "$0")/../../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ws=("$@")
[ ${#ws[@]} -gt 0 ] || ws=(32 64 96)
for w in "${ws[@]}"; do
  mkdir -p "$tmp/w$w"
  cp checkpoints/mac-extractive/model.safetensors checkpoints/mac-extractive/checksums.json "$tmp/w$w/"
  python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c["amortizer"]["window"]=int(sys.argv[2]); json.dump(c,open(sys.argv[3],"w"),indent=2)' \
    checkpoints/mac-extractive/config.json "$w" "$tmp/w$w/config.json"
  node bin/mac-lm.js eval --data ../shared/data/squad/squad-dev-open.json --split val --max-docs 40 --methods mac \
    --no-cost --ablation-questions 0 -c "$tmp/w$w" --out "$tmp/out-w$w"
  cp "$tmp/out-w$w/results.json" "results/training/extractive/window-size/w$w-results.json"
done
