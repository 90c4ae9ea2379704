"""Hugging Face generate() outputs that src/generate/generate.test.ts compares with, token id for token id.

Diverse (group) beam search left the transformers library in v5 (it is a hub `custom_generate` repo now, not
reachable offline), so the fixtures come from the last 4.x release, which still has BeamSearchScorer and
_group_beam_search; transformers 5 then re-checks greedy and beam search against them:

    pip install --target /tmp/tf4 --no-deps transformers==4.46.3 tokenizers==0.20.3 huggingface_hub==0.26.5
    PYTHONPATH=/tmp/tf4 python3 reference/dump_generate.py    # writes test/fixtures/generate/*.json
    python3 reference/dump_generate.py                         # transformers 5.x: checks greedy + beam, writes nothing

Two models:
  hash-lm    a lookup-table "model": the logits at each position are row h of a fixed float32 table, h a rolling
             hash of every token so far (h = 17; h = (31 h + id + 1) mod M). It depends on the whole history, so a
             beam whose cache rows are reordered wrongly gives other logits. The TS test builds the same model.
  gpt2-tiny  test/fixtures/models/gpt2-tiny (the decoder parity fixture), loaded by our GPT-2 implementation.

Each case: prompts, options, and per prompt the generated tokens after the prompt, cut after the first EOS (HF pads
the rest), plus sequence_scores for beam search.
"""

import json
import os
import sys

import numpy as np
import torch
import transformers
from transformers import GPT2LMHeadModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

try:
    from transformers import GenerationMixin
except ImportError:  # very old versions
    GenerationMixin = object

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "test", "fixtures", "generate")
V4 = int(transformers.__version__.split(".")[0]) < 5

M = 97  # table rows


class HashConfig(PretrainedConfig):
    model_type = "hash-lm"

    def __init__(self, vocab_size=11, table_rows=M, **kw):
        self.vocab_size = vocab_size
        self.table_rows = table_rows
        super().__init__(**kw)


class HashLM(PreTrainedModel, GenerationMixin):
    config_class = HashConfig
    main_input_name = "input_ids"

    def __init__(self, config, table):
        super().__init__(config)
        self.register_buffer("table", torch.tensor(table, dtype=torch.float32))
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def _init_weights(self, module):
        pass

    def forward(self, input_ids=None, attention_mask=None, past_key_values=None, use_cache=None, **kw):
        B, T = input_ids.shape
        logits = torch.empty(B, T, self.config.vocab_size, dtype=torch.float32)
        for b in range(B):
            h = 17
            for t in range(T):
                h = (h * 31 + int(input_ids[b, t]) + 1) % self.config.table_rows
                logits[b, t] = self.table[h]
        return CausalLMOutputWithPast(logits=logits)

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kw):
        return {"input_ids": input_ids, "attention_mask": attention_mask}


def cut(row, prompt_len, eos):
    new = [int(x) for x in row[prompt_len:]]
    if eos is not None and eos in new:
        new = new[: new.index(eos) + 1]
    return new


def run(model, prompts, opts, eos, pad):
    L = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (L - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (L - len(p)) + [1] * len(p) for p in prompts])
    kw = dict(
        max_new_tokens=opts["maxNewTokens"],
        num_beams=opts.get("numBeams", 1),
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=pad,
        num_return_sequences=opts.get("numReturnSequences", 1),
        output_scores=True,
        return_dict_in_generate=True,
    )
    if opts.get("numBeams", 1) > 1:
        kw["early_stopping"] = opts.get("earlyStopping", True)
        kw["length_penalty"] = opts.get("lengthPenalty", 1.0)
    if opts.get("numBeamGroups", 1) > 1:
        kw["num_beam_groups"] = opts["numBeamGroups"]
        kw["diversity_penalty"] = float(opts["diversityPenalty"])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, use_cache=model.config.model_type != "hash-lm", **kw)
    seqs = [cut(r, L, eos) for r in out.sequences.tolist()]
    scores = out.sequences_scores.tolist() if getattr(out, "sequences_scores", None) is not None else None
    return seqs, scores


BEAM4 = {"maxNewTokens": 6, "numBeams": 4}
GROUP = {"maxNewTokens": 8, "numBeams": 12, "numBeamGroups": 4, "diversityPenalty": 10.0}


def hash_cases():
    rng = np.random.default_rng(20240607)
    for V, eos, scale in [(11, 3, 2.0), (40, 5, 3.0)]:
        out = []
        table = (rng.standard_normal((M, V)) * scale).astype(np.float32)
        cfg = HashConfig(vocab_size=V, eos_token_id=eos, pad_token_id=eos)
        model = HashLM(cfg, table).eval()
        cases = [
            ("greedy", [[1, 2]], {"maxNewTokens": 8}),
            ("greedy-batch-padded", [[4, 1, 2], [7], [2, 2]], {"maxNewTokens": 10}),
            ("beam4", [[1, 2]], BEAM4),
            ("beam4-batch", [[1, 2], [6, 0]], BEAM4),
            ("beam4-no-early-stop", [[1, 2], [8, 9]], {**BEAM4, "maxNewTokens": 7, "earlyStopping": False}),
            ("beam4-never-lp2", [[1, 2]], {**BEAM4, "earlyStopping": "never", "lengthPenalty": 2.0}),
            ("beam3-return3", [[9]], {"maxNewTokens": 5, "numBeams": 3, "numReturnSequences": 3}),
            ("group-12-4-10", [[1, 2]], GROUP),
            ("group-12-4-10-batch", [[1, 2], [5, 5, 0]], GROUP),
            ("group-6-3-0.5-return2", [[2]], {"maxNewTokens": 6, "numBeams": 6, "numBeamGroups": 3, "diversityPenalty": 0.5, "numReturnSequences": 2}),
        ]
        for name, prompts, opts in cases:
            # The first step only sees the first beam of each group (the others start at -1e9): it needs 2 S tokens.
            if V < 2 * opts.get("numBeams", 1) // opts.get("numBeamGroups", 1):
                continue
            if not V4 and opts.get("numBeamGroups", 1) > 1:
                continue
            seqs, scores = run(model, prompts, opts, eos, eos)
            out.append({"name": f"V{V}-{name}", "vocab": V, "eos": eos, "prompts": prompts, "options": opts, "sequences": seqs, "scores": scores})
        yield {"vocab": V, "eos": eos, "rows": M, "table": [float(x) for x in table.reshape(-1)]}, out


def gpt2_cases():
    path = os.path.join(ROOT, "test", "fixtures", "models", "gpt2-tiny")
    model = GPT2LMHeadModel.from_pretrained(path).eval()
    eos = model.config.eos_token_id
    cases = [
        ("greedy", [[5, 17, 42, 8]], {"maxNewTokens": 12}),
        ("greedy-batch", [[5, 17, 42, 8], [60, 3, 3, 70]], {"maxNewTokens": 12}),
        ("beam4", [[5, 17, 42, 8]], {"maxNewTokens": 10, "numBeams": 4}),
        ("beam4-batch", [[5, 17, 42, 8], [60, 3, 3, 70]], {"maxNewTokens": 10, "numBeams": 4}),
        ("group-12-4-10", [[5, 17, 42, 8]], {"maxNewTokens": 16, "numBeams": 12, "numBeamGroups": 4, "diversityPenalty": 10.0}),
        ("group-12-4-10-b", [[11, 90, 2]], {"maxNewTokens": 16, "numBeams": 12, "numBeamGroups": 4, "diversityPenalty": 10.0}),
    ]
    out = []
    for name, prompts, opts in cases:
        if not V4 and opts.get("numBeamGroups", 1) > 1:
            continue
        seqs, scores = run(model, prompts, opts, eos, eos)
        out.append({"name": name, "prompts": prompts, "options": opts, "sequences": seqs, "scores": scores})
    return {"model": "test/fixtures/models/gpt2-tiny", "eos": eos}, out


def main():
    torch.manual_seed(0)
    tables, hcases = [], []
    for t, c in hash_cases():
        tables.append(t)
        hcases.extend(c)
    gmeta, gcases = gpt2_cases()
    files = {
        "hash-lm.json": {"transformers": transformers.__version__, "tables": tables, "cases": hcases},
        "gpt2-tiny.json": {"transformers": transformers.__version__, **gmeta, "cases": gcases},
    }
    if V4:
        os.makedirs(OUT, exist_ok=True)
        for name, doc in files.items():
            text = json.dumps(doc, separators=(",", ":"))
            # Tables as the shortest decimals that round-trip through float32 (half the size of float64 reprs).
            for t in doc.get("tables", []):
                short = ",".join(np.format_float_positional(np.float32(x), unique=True, trim="-") for x in t["table"])
                text = text.replace(json.dumps(t["table"], separators=(",", ":")), f"[{short}]", 1)
            with open(os.path.join(OUT, name), "w") as f:
                f.write(text + "\n")
            print(f"wrote {name}: {len(doc['cases'])} cases (transformers {transformers.__version__})")
        return
    # transformers 5: compare the cases it can run with the committed fixtures.
    bad = 0
    for name, doc in files.items():
        with open(os.path.join(OUT, name)) as f:
            ref = {c["name"]: c for c in json.load(f)["cases"]}
        for c in doc["cases"]:
            r = ref[c["name"]]
            same = r["sequences"] == c["sequences"]
            print(f"{name} {c['name']}: {'same' if same else 'DIFFERENT'}")
            if not same:
                bad += 1
                print("  4.x:", r["sequences"], "\n  5.x:", c["sequences"])
    print(f"transformers {transformers.__version__}: {bad} case(s) differ from the 4.x fixtures")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
