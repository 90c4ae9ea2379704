#!/usr/bin/env python3
"""
Writes tokenizer test fixtures under test/fixtures/tokenizers/: small tokenizers (committed) and tables of
text -> ids -> decoded text computed by the reference implementations (HF `tokenizers`/`transformers`, and
`sentencepiece` itself for SentencePiece models). Our TypeScript tokenizers (src/tokenizers/) must reproduce them.

Committed tokenizers (small, made here, deterministic):
  tiny-bpe.gguf            byte-level BPE (vocab 600) trained by `tokenizers` on CORPUS, stored the way llama.cpp
                           stores SmolLM2's (tokenizer.ggml.model "gpt2", pre "smollm", tokens/token_type/merges).
  tiny-bpe-hf/             the same vocabulary as GPT-2 style vocab.json + merges.txt.
  wordpiece-mini/vocab.txt the part of all-MiniLM-L6-v2's vocab.txt that TEXTS touch, plus all single characters
                           (only when the MiniLM files are in the cache; otherwise the committed one is kept).
  tiny-unigram/spiece.model SentencePiece unigram model (vocab 300) trained by `sentencepiece` on CORPUS with a
                           small custom normalisation rule set (so the precompiled charsmap is exercised), plus a
                           tokenizer_config.json saying T5Tokenizer.
Vectors:
  tiny-bpe.json            for the GGUF pre-tokenizers smollm, gpt-2, llama-bpe, qwen2 (HF `tokenizers` running the
                           tokenizer.json that each pre-tokenizer name stands for), and the vocab.json/merges.txt dir
                           (transformers GPT2TokenizerFast).
  wordpiece-mini.json      transformers BertTokenizerFast and the slow BertTokenizer (must agree).
  tiny-unigram.json        sentencepiece's encode/decode, and transformers T5TokenizerFast (adds </s>).
  smollm2.json             (cache) SmolLM2-135M-Instruct from its GGUF: the tokenizer.json equivalent of its
                           metadata in HF `tokenizers`, and transformers' own GGUF tokenizer loading alongside.
  minilm.json              (cache) all-MiniLM-L6-v2's tokenizer.json (BertTokenizerFast) and vocab.txt (slow).
  spm-test-model.json      (cache) sentencepiece's test_model.model (unigram, nmt_nfkc charsmap): sentencepiece.

Needs, beyond the preinstalled transformers/tokenizers/gguf/numpy: pip install sentencepiece protobuf.
Model cache: $MACLM_CACHE_DIR or ~/.cache/mac-lm (filled by scripts/fetch-models.sh). Vectors whose model is absent
are left as they are. Run from the repository root: python reference/make_tokenizer_vectors.py
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test" / "fixtures" / "tokenizers"
CACHE = Path(os.environ.get("MACLM_CACHE_DIR", Path.home() / ".cache" / "mac-lm"))

TEXTS = [
    "",
    "Hello world",
    "Hello, World! How are you?",
    " leading space",
    "trailing space ",
    "   three leading",
    "a  b   c    d",
    "tab\there\t\tdouble",
    "line one\nline two\n\nline four\r\nwindows",
    "\n\n\n",
    "I'm sure they'll say it's the dog's, isn't it? We've, you'd, I'M, THEY'LL",
    "The year 2024 had 366 days; 3.14159 ≈ π, 1,000,000 and 0x1F.",
    "Numbers: 1 12 123 1234 12345 123456",
    "Unicode digits: ½ ² ٣٤ ۵ ๓ Ⅻ",
    "café naïve résumé Ærøskøbing Œuvre façade jalapeño",
    "ÀÉÎÕÜ àéîõü ñ Ñ ç Ç ß ẞ",
    "日本語のテキストです。中文字符测试。",
    "한국어 텍스트 العربية עברית Ελληνικά Кириллица",
    "Emoji: 👍🏽 🇫🇷 👨‍👩‍👧 🤖!",
    "pneumonoultramicroscopicsilicovolcanoconiosis supercalifragilisticexpialidocious",
    "antidisestablishmentarianism" * 5,
    "def f(x):\n    return x**2  # square\n",
    "<html><body class=\"main\">Hi &amp; bye</body></html>",
    "e-mail: someone@example.com, url: https://example.org/path?q=1&r=2",
    "Symbols: !@#$%^&*()_+-=[]{}|;':\",./<>?`~ §±",
    "non\u00a0breaking\u00a0space and\u2003em\u2003space",
    "zero\u200bwidth and soft\u00adhyphen",
    "control\u0007char and del\u007f",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ and ﬁ ligature…",
    "MiXeD CaSe WoRdS",
    "unaffable unbelievable reconsideration",
    "a" * 120,
    "x" * 20 + " " + "y" * 101,
]

# Texts with special-token spellings, per tokenizer family.
SPECIAL_TEXTS = {
    "bpe": ["<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n", "end<|endoftext|>start"],
    "wordpiece": ["[CLS] hello [SEP] world [MASK] [UNK] [PAD]", "hello[MASK]world"],
    "unigram": ["hello</s>world", "<sep> separated <sep>"],
}

CORPUS = (
    """The quick brown fox jumps over the lazy dog. Hello world! How are you today? I'm fine, thanks.
    Tokenizers split text into pieces; numbers like 2024, 3.14 and 1,000,000 appear often. They'll say it's the
    dog's bone, isn't it? We've been there. Café, naïve, résumé, jalapeño, façade. 日本語のテキスト。中文字符。
    def f(x):
        return x ** 2  # a comment
    <html><body>Hi &amp; bye</body></html> e-mail: someone@example.com https://example.org/path?q=1
    Reconsideration of unbelievable and unaffable antidisestablishmentarianism. ＦＵＬＬ ｗｉｄｔｈ １２３ …
    """
    * 3
).strip()

WORDS = """time person year way day thing man world life hand part child eye woman place work week case point
government company number group problem fact be have do say get make go know take see come think look want give use
find tell ask seem feel try leave call good new first last long great little own other old right big high different
small large next early young important few public bad same able to of in for on with at by from up about into over
after beneath under above the and a that I it not he as you this but his they her she or an will my one all would
there their what so if when which them some me people than then now only its also back two how our well even because
any these most us water history music reading method data theory law bird food power nature family television
""".split()


def corpus() -> str:
    """CORPUS plus 400 pseudo-sentences from WORDS (fixed seed): enough text for the small trainers."""
    rng = np.random.default_rng(1234)
    lines = [CORPUS]
    for _ in range(400):
        n = int(rng.integers(4, 14))
        words = [WORDS[int(i)] for i in rng.integers(0, len(WORDS), size=n)]
        words[0] = words[0].capitalize()
        lines.append(" ".join(words) + str(rng.choice([".", "!", "?", ",", ";"])))
    return "\n".join(lines)


def compact(doc):
    """Drops a case's idsWithSpecial / decodedSkipSpecial when they equal ids / decoded (readers default them)."""
    if isinstance(doc, dict):
        if "text" in doc and "ids" in doc:
            if doc.get("idsWithSpecial") == doc["ids"]:
                del doc["idsWithSpecial"]
            if "decoded" in doc and doc.get("decodedSkipSpecial") == doc["decoded"]:
                del doc["decodedSkipSpecial"]
        for v in doc.values():
            compact(v)
    elif isinstance(doc, list):
        for v in doc:
            compact(v)
    return doc


def write_json(name: str, doc: dict) -> None:
    doc = compact(doc)
    (OUT / name).write_text(json.dumps(doc, ensure_ascii=False, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {OUT / name} ({(OUT / name).stat().st_size} bytes)")


# ---- byte-level BPE: the tokenizer.json a GGUF's metadata stands for ----------------------------------------

GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def byte_level(use_regex: bool) -> dict:
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": use_regex}


def split(regex: str) -> dict:
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}


def bpe_pre_tokenizer(pre: str) -> dict:
    """llama.cpp's pre-tokenizer names (tokenizer.ggml.pre) as HF pre-tokenizers (see llama-vocab.cpp)."""
    if pre in ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"):
        # llama.cpp: "\p{N}" then the GPT-2 regex; HF's SmolLM2 tokenizer.json: Digits(individual) + ByteLevel.
        return {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level(True)]}
    if pre in ("gpt-2", "default", "mpt", "olmo", "jais"):
        return byte_level(True)
    if pre in ("llama-bpe", "llama3", "llama-v3", "falcon3", "pixtral", "dbrx", "smaug-bpe"):
        return {"type": "Sequence", "pretokenizers": [split(LLAMA3_SPLIT), byte_level(False)]}
    if pre in ("qwen2", "deepseek-r1-qwen", "megrez"):
        return {"type": "Sequence", "pretokenizers": [split(QWEN2_SPLIT), byte_level(False)]}
    raise ValueError(f"unsupported pre-tokenizer {pre}")


def bpe_json_from_meta(meta: dict) -> dict:
    tokens = meta["tokenizer.ggml.tokens"]
    types = meta.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": ty == 3}
        for i, (t, ty) in enumerate(zip(tokens, types))
        if ty in (3, 4)
    ]
    specials = []
    single = ["$A"]
    bos, eos = meta.get("tokenizer.ggml.bos_token_id"), meta.get("tokenizer.ggml.eos_token_id")
    if meta.get("tokenizer.ggml.add_bos_token", False) and bos is not None:
        single = [tokens[bos], *single]
        specials.append(tokens[bos])
    if meta.get("tokenizer.ggml.add_eos_token", False) and eos is not None:
        single = [*single, tokens[eos]]
        specials.append(tokens[eos])
    post = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": s, "type_id": 0}} if s != "$A" else {"Sequence": {"id": "A", "type_id": 0}} for s in single],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {s: {"id": s, "ids": [tokens.index(s)], "tokens": [s]} for s in specials},
    }
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": bpe_pre_tokenizer(meta.get("tokenizer.ggml.pre", "default")),
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [m.split(" ") for m in meta["tokenizer.ggml.merges"]],
        },
    }


def run_hf(tok, texts: list[str]) -> list[dict]:
    """tok: tokenizers.Tokenizer."""
    cases = []
    for text in texts:
        plain = tok.encode(text, add_special_tokens=False).ids
        special = tok.encode(text, add_special_tokens=True).ids
        cases.append(
            {
                "text": text,
                "ids": plain,
                "idsWithSpecial": special,
                "decoded": tok.decode(plain, skip_special_tokens=False),
                "decodedSkipSpecial": tok.decode(special, skip_special_tokens=True),
            }
        )
    return cases


def gguf_meta(path: Path) -> dict:
    import gguf

    r = gguf.GGUFReader(str(path))
    meta = {}
    for k, f in r.fields.items():
        if not k.startswith("tokenizer."):
            continue
        if f.types and f.types[0] == gguf.GGUFValueType.ARRAY:
            meta[k] = list(f.contents())
        else:
            meta[k] = f.contents()
    return meta


def tiny_bpe() -> None:
    import gguf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([corpus()], trainer)
    model = json.loads(tok.to_str())["model"]
    vocab: dict[str, int] = model["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]

    path = OUT / "tiny-bpe.gguf"
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in specials else 1 for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    meta = gguf_meta(path)
    texts = TEXTS + SPECIAL_TEXTS["bpe"]
    doc = {"file": "tiny-bpe.gguf", "vocabSize": len(tokens), "variants": {}}
    for pre in ["smollm", "gpt-2", "llama-bpe", "qwen2"]:
        for add_bos in [False, True]:
            m = dict(meta, **{"tokenizer.ggml.pre": pre, "tokenizer.ggml.add_bos_token": add_bos})
            t = Tokenizer.from_str(json.dumps(bpe_json_from_meta(m)))
            key = pre + ("+bos" if add_bos else "")
            if add_bos and pre != "smollm":
                continue
            doc["variants"][key] = run_hf(t, texts)

    # GPT-2 style directory: vocab.json + merges.txt, read by transformers as GPT-2 (ByteLevel, no digit split).
    d = OUT / "tiny-bpe-hf"
    d.mkdir(exist_ok=True)
    (d / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n")
    (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    hf = GPT2TokenizerFast.from_pretrained(str(d))
    assert len(hf) == len(tokens), len(hf)
    cases = []
    for text in texts:
        ids = hf(text, add_special_tokens=False)["input_ids"]
        cases.append(
            {
                "text": text,
                "ids": ids,
                "idsWithSpecial": hf(text, add_special_tokens=True)["input_ids"],
                "decoded": hf.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False),
                "decodedSkipSpecial": hf.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False),
            }
        )
    doc["variants"]["hf-dir"] = cases
    write_json("tiny-bpe.json", doc)


def smollm2() -> None:
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    path = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        print(f"skip smollm2.json: {path} absent")
        return
    meta = gguf_meta(path)
    t = Tokenizer.from_str(json.dumps(bpe_json_from_meta(meta)))
    texts = TEXTS + SPECIAL_TEXTS["bpe"]
    cases = run_hf(t, texts)
    tf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    differ = []
    for c in cases:
        ids = tf(c["text"], add_special_tokens=False)["input_ids"]
        if ids != c["ids"]:
            c["transformersGgufIds"] = ids
            differ.append(c["text"])
    print(f"smollm2: transformers' GGUF tokenizer differs on {len(differ)} texts: {differ}")
    doc = {
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "vocabSize": len(meta["tokenizer.ggml.tokens"]),
        "note": "ids: HF tokenizers on the tokenizer.json equivalent of the GGUF metadata (pre 'smollm' = "
        "Digits(individual) + ByteLevel, as llama.cpp and SmolLM2's own tokenizer.json). transformersGgufIds: "
        "present only where transformers' GGUF loader (which drops the digit split) disagrees.",
        "cases": cases,
    }
    write_json("smollm2.json", doc)


# ---- WordPiece ----------------------------------------------------------------------------------------------


def bert_cases(tok, other, texts: list[str]) -> list[dict]:
    """tok: the tokenizer under test; other: the same vocabulary loaded another way (must agree)."""
    cases = []
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        special = tok(text, add_special_tokens=True)["input_ids"]
        c = {
            "text": text,
            "ids": ids,
            "idsWithSpecial": special,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decodedSkipSpecial": tok.decode(special, skip_special_tokens=True),
        }
        assert other(text, add_special_tokens=False)["input_ids"] == ids, text
        assert other.decode(ids) == c["decoded"], text
        cases.append(c)
    return cases


def bert_from_vocab_txt(vocab: Path):
    """transformers' BertTokenizer built from vocab.txt alone (no tokenizer.json)."""
    from transformers import BertTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(vocab, Path(tmp) / "vocab.txt")
        (Path(tmp) / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}))
        return BertTokenizer.from_pretrained(tmp)


def wordpiece() -> None:
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizer

    src = CACHE / "all-MiniLM-L6-v2"
    texts = TEXTS + SPECIAL_TEXTS["wordpiece"]
    mini = OUT / "wordpiece-mini"
    mini.mkdir(exist_ok=True)
    if (src / "vocab.txt").exists():
        full = (src / "vocab.txt").read_text(encoding="utf-8").split("\n")
        if full and full[-1] == "":
            full.pop()
        tok = BertTokenizer.from_pretrained(str(src))  # its tokenizer.json
        assert len(tok) == len(full) == 30522
        cases = bert_cases(tok, bert_from_vocab_txt(src / "vocab.txt"), texts)
        write_json(
            "minilm.json",
            {
                "dir": "all-MiniLM-L6-v2",
                "sha256": {f: hashlib.sha256((src / f).read_bytes()).hexdigest() for f in ["vocab.txt", "tokenizer.json"]},
                "vocabSize": len(full),
                "cases": cases,
            },
        )
        # The mini vocab: special tokens, every token the texts use, single characters and their ## forms.
        keep = {full.index(t) for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]}
        for c in cases:
            keep.update(c["ids"])
        for i, t in enumerate(full):
            if (len(t) == 1 and ord(t) < 0x3000) or (t.startswith("##") and len(t) == 3 and t[2].isascii()):
                keep.add(i)
        sub = [full[i] for i in sorted(keep)]
        (mini / "vocab.txt").write_text("\n".join(sub) + "\n", encoding="utf-8")
        (mini / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}) + "\n")
    elif not (mini / "vocab.txt").exists():
        print("skip wordpiece: no MiniLM in the cache and no committed mini vocab")
        return
    tok = bert_from_vocab_txt(mini / "vocab.txt")
    lib = BertWordPieceTokenizer(str(mini / "vocab.txt"), lowercase=True)
    n = len((mini / "vocab.txt").read_text(encoding="utf-8").split("\n")) - 1
    assert len(tok) == n, (len(tok), n)
    cases = bert_cases(tok, tok, texts)
    for c in cases:
        assert lib.encode(c["text"], add_special_tokens=False).ids == c["ids"], c["text"]
    write_json("wordpiece-mini.json", {"dir": "wordpiece-mini", "vocabSize": n, "cases": cases})


# ---- SentencePiece unigram ----------------------------------------------------------------------------------


def spm_cases(sp, texts: list[str]) -> list[dict]:
    cases = []
    for text in texts:
        ids = sp.encode(text)
        cases.append({"text": text, "ids": ids, "pieces": sp.id_to_piece(ids), "decoded": sp.decode(ids)})
    return cases


def tiny_unigram() -> None:
    import sentencepiece as spm
    from transformers import T5Tokenizer

    d = OUT / "tiny-unigram"
    d.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus_file = Path(tmp) / "corpus.txt"
        corpus_file.write_text("\n".join(line.strip() for line in corpus().split("\n")) + "\n", encoding="utf-8")
        # Custom normalisation: a few NFKC-like rules, so the model carries a (small) precompiled charsmap.
        rules = Path(tmp) / "rules.tsv"
        pairs = {"ＦＵＬＬ": "FULL"}
        for a, b in [("Ｆ", "F"), ("Ｕ", "U"), ("Ｌ", "L"), ("ｗ", "w"), ("ｉ", "i"), ("ｄ", "d"), ("ｔ", "t"), ("ｈ", "h"),
                     ("１", "1"), ("２", "2"), ("３", "3"), ("…", "..."), ("ﬁ", "fi"), ("\u00a0", " "), ("\u2003", " ")]:
            pairs[a] = b
        rules.write_text(
            "".join(" ".join(f"{ord(c):X}" for c in a) + "\t" + " ".join(f"{ord(c):X}" for c in b) + "\n" for a, b in pairs.items())
        )
        spm.SentencePieceTrainer.train(
            input=str(corpus_file),
            model_prefix=str(Path(tmp) / "m"),
            vocab_size=300,
            model_type="unigram",
            character_coverage=1.0,
            normalization_rule_tsv=str(rules),
            user_defined_symbols=["<sep>"],
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            minloglevel=2,
        )
        # The trainer records its input and output paths (temporary, so they differ per run): make them fixed.
        from sentencepiece import sentencepiece_model_pb2 as pb

        proto = pb.ModelProto()
        proto.ParseFromString((Path(tmp) / "m.model").read_bytes())
        del proto.trainer_spec.input[:]
        proto.trainer_spec.input.append("corpus.txt")
        proto.trainer_spec.model_prefix = "m"
        proto.normalizer_spec.normalization_rule_tsv = "rules.tsv"
        (d / "spiece.model").write_bytes(proto.SerializeToString())
    (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 100}) + "\n")
    sp = spm.SentencePieceProcessor(model_file=str(d / "spiece.model"))
    texts = TEXTS + SPECIAL_TEXTS["unigram"]
    cases = spm_cases(sp, texts)
    t5 = T5Tokenizer.from_pretrained(str(d))
    assert len(t5) == sp.get_piece_size() + 100, len(t5)
    for c in cases:
        ids = t5(c["text"], add_special_tokens=True)["input_ids"]
        c["t5Ids"] = ids
        c["t5Decoded"] = t5.decode(ids, skip_special_tokens=True)
        c["t5DecodedWithSpecial"] = t5.decode(ids, skip_special_tokens=False)
    write_json(
        "tiny-unigram.json",
        {"dir": "tiny-unigram", "vocabSize": sp.get_piece_size(), "t5VocabSize": len(t5), "eosId": sp.eos_id(), "cases": cases},
    )


def spm_test_model() -> None:
    import sentencepiece as spm

    path = CACHE / "sentencepiece-test" / "test_model.model"
    if not path.exists():
        print(f"skip spm-test-model.json: {path} absent")
        return
    sp = spm.SentencePieceProcessor(model_file=str(path))
    write_json(
        "spm-test-model.json",
        {
            "file": "sentencepiece-test/test_model.model",
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "vocabSize": sp.get_piece_size(),
            "cases": spm_cases(sp, TEXTS + SPECIAL_TEXTS["unigram"]),
        },
    )


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    np.random.seed(0)
    tiny_bpe()
    wordpiece()
    tiny_unigram()
    smollm2()
    spm_test_model()


if __name__ == "__main__":
    sys.exit(main())
