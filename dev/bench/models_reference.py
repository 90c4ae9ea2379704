"""Reference figures for `npm run bench:models`, measured in the same run as mac-lm's own.

Runs as a small server so the benchmark can interleave its own measurements with these (the machine is shared and
noisy; alternating rounds keeps the comparison fair). One JSON command per stdin line, one JSON reply per line:
  {"cmd": "hello"}                                -> {"torch": version | null, "transformers": version | null,
                                                      "threads": torch threads, "errors": {...}}
  {"cmd": "load", "path": GGUF}                   -> {"load_s": seconds, "config": {...}}  (the model stays loaded)
  {"cmd": "forward", "ids": [...], "reps": R}     -> {"ms": median ms of model(ids) under torch.no_grad()}
  {"cmd": "generate", "ids": [...], "new": N, "reps": R}
                                                  -> {"ms": median ms of model.generate, "tokens": [new ids]}

The model is transformers' LlamaForCausalLM loaded from the GGUF file (from_pretrained(dir, gguf_file=...),
dequantised to float32), in eval mode, on the CPU with torch's default thread count. generate() is greedy
(do_sample=False, num_beams=1) with the KV cache (use_cache=True) and no end-of-sequence token, so it always
produces exactly N new tokens; its time includes the prompt's forward (prefill), as ours does.
"""

import json
import os
import sys
import time

MODEL = None


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def hello():
    out = {"torch": None, "transformers": None, "threads": None, "errors": {}}
    for name in ("torch", "transformers", "gguf"):
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "present")
        except Exception as e:  # reported, not fatal: the JS side says what is missing
            out["errors"][name] = f"{type(e).__name__}: {e}"
    if out["torch"]:
        import torch

        out["threads"] = torch.get_num_threads()
    return out


def load(path):
    global MODEL
    import torch
    from transformers import LlamaForCausalLM
    from transformers.utils import logging

    logging.set_verbosity_error()
    t = time.perf_counter()
    model = LlamaForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32
    )
    model.eval()
    # No end-of-sequence token: generate() always runs to max_new_tokens (ours runs with eosTokenId null).
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    model.generation_config.do_sample = False
    model.generation_config.num_beams = 1
    model.generation_config.temperature = None
    model.generation_config.top_p = None
    model.generation_config.top_k = None
    MODEL = model
    c = model.config
    return {
        "load_s": time.perf_counter() - t,
        "config": {
            "layers": c.num_hidden_layers,
            "heads": c.num_attention_heads,
            "kv_heads": c.num_key_value_heads,
            "hidden": c.hidden_size,
            "vocab": c.vocab_size,
            "dtype": str(next(model.parameters()).dtype),
            "attn_implementation": getattr(c, "_attn_implementation", None),
        },
    }


def timed(fn, reps):
    times = []
    out = None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return median(times) * 1e3, out


def forward(ids, reps):
    import torch

    x = torch.tensor([ids], dtype=torch.long)

    def run():
        with torch.no_grad():
            return MODEL(input_ids=x).logits

    ms, _ = timed(run, reps)
    return {"ms": ms}


def generate(ids, new, reps):
    import torch

    x = torch.tensor([ids], dtype=torch.long)
    mask = torch.ones_like(x)

    def run():
        with torch.no_grad():
            return MODEL.generate(
                input_ids=x,
                attention_mask=mask,
                max_new_tokens=new,
                min_new_tokens=new,
                do_sample=False,
                num_beams=1,
                use_cache=True,
                eos_token_id=None,
                pad_token_id=0,
            )

    ms, out = timed(run, reps)
    return {"ms": ms, "tokens": out[0, len(ids):].tolist()}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            cmd = req["cmd"]
            if cmd == "hello":
                res = hello()
            elif cmd == "load":
                res = load(req["path"])
            elif MODEL is None:
                res = {"error": "no model loaded"}
            elif cmd == "forward":
                res = forward(req["ids"], req["reps"])
            elif cmd == "generate":
                res = generate(req["ids"], req["new"], req["reps"])
            else:
                res = {"error": f"unknown command {cmd}"}
        except Exception as e:
            res = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
