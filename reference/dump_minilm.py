"""Writes test/fixtures/models/all-minilm-l6-v2.json, the expected sentence embeddings of
sentence-transformers/all-MiniLM-L6-v2 read by test/parity/minilm.test.ts (committed; re-run only to regenerate).

    python3 reference/dump_minilm.py      # from the repository root; needs torch, transformers

The model folder comes from the model cache ($MACLM_CACHE_DIR, else ~/.cache/mac-lm; see test/helpers/model-cache.ts),
sub-folder all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer files). The embedding is what
sentence-transformers computes for this model (modules.json: Transformer -> Pooling(mean) -> Normalize): BertModel's
last hidden state, averaged over the tokens the attention mask keeps, then scaled to unit L2 norm. sentence-transformers
itself is not needed (it is not installed here): the three steps are written out below.

JSON: dir, sentences, ids and mask (the batch as the tokenizer pads it, [CLS] ... [SEP] then pad 0), embeddings
(4 x 384, float32 values printed with 9 significant digits), and hidden_cls (the first sentence's [CLS] hidden state,
384 values) to check the encoder without the pooling.
"""

import json
import os

import torch
from transformers import AutoModel, AutoTokenizer

SENTENCES = [
    "The cat sits outside.",
    "A man is playing guitar in the park while children dance around him.",
    "Memory of Amortized Contexts keeps a language model up to date without fine-tuning.",
    "I love pasta!",
]


def main():
    cache = os.environ.get("MACLM_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "mac-lm"))
    folder = os.path.join(cache, "all-MiniLM-L6-v2")
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    assert type(model).__name__ == "BertModel", type(model).__name__
    batch = tok(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        emb = torch.nn.functional.normalize(pooled, p=2, dim=1)
    out = {
        "source": "reference/dump_minilm.py",
        "dir": "all-MiniLM-L6-v2",
        "sentences": SENTENCES,
        "ids": batch["input_ids"].tolist(),
        "mask": batch["attention_mask"].tolist(),
        "embeddings": [[float(f"{x:.9g}") for x in row] for row in emb.tolist()],
        "hidden_cls": [float(f"{x:.9g}") for x in hidden[0, 0].tolist()],
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "models", "all-minilm-l6-v2.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
