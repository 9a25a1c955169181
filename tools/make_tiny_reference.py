"""Writes reference.json for a GPT-BigCode checkpoint directory with transformers.

The test-suite checks this runtime against these numbers, so they come from
the reference implementation itself: transformers in float32 (weights stored
as F16 are upcast, so the numbers are those of the F16-rounded model), on
val_sample.txt and the four prompts of tests/data/tiny-bigcode-py/README.md.

    python tools/make_tiny_reference.py tests/data/tiny-bigcode-py
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

PROMPTS = [
    "def fibonacci(n):",
    "import os\n\ndef list_files(path):",
    "class Stack:",
    "<fim_prefix>def add(a, b):\n    <fim_suffix>\n    return result\n<fim_middle>",
]
N_GREEDY = 64


def window_perplexity(model, ids: list[int], window: int) -> tuple[float, float, int]:
    """Non-overlapping windows, each a fresh forward pass from position 0,
    scored on its own next-token predictions; 1-token tails are skipped."""
    import torch

    total, count = 0.0, 0
    for start in range(0, len(ids), window):
        chunk = ids[start:start + window]
        if len(chunk) < 2:
            continue
        x = torch.tensor([chunk])
        with torch.no_grad():
            logits = model(x).logits[0].double()
        nll = torch.nn.functional.cross_entropy(logits[:-1], x[0, 1:], reduction="sum")
        total += float(nll)
        count += len(chunk) - 1
    return math.exp(total / count), total / count, count


def main() -> None:
    import tokenizers
    import torch
    import transformers

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = transformers.GPTBigCodeForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32).eval()
    tok = tokenizers.Tokenizer.from_file(str(args.model_dir / "tokenizer.json"))

    ref: dict = {
        "computed_with": f"transformers {transformers.__version__}, torch {torch.__version__}, float32",
        "weights": "model.safetensors as stored (float16), upcast to float32",
        "params": sum(p.numel() for p in model.parameters()),
    }
    text = (args.model_dir / "val_sample.txt").read_text(encoding="utf-8")
    ids = tok.encode(text, add_special_tokens=False).ids
    ref["val_sample_chars"] = len(text)
    ref["val_sample_tokens"] = len(ids)
    for w in (256, 1024):
        ppl, nll, n = window_perplexity(model, ids, w)
        ref[f"val_sample_ppl_win{w}"], ref[f"val_sample_nll_win{w}"], ref[f"val_sample_scored_win{w}"] = ppl, nll, n

    first = tok.encode(PROMPTS[0], add_special_tokens=False).ids
    with torch.no_grad():
        logits = model(torch.tensor([first])).logits[0, -1]
    top = torch.argsort(logits, descending=True)[:5]
    ref["reference_next_token_top5"] = {
        "prompt": PROMPTS[0],
        "ids": top.tolist(),
        "logits": [round(float(logits[i]), 5) for i in top],
    }
    ref["greedy"] = []
    for prompt in PROMPTS:
        prompt_ids = tok.encode(prompt, add_special_tokens=False).ids
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=N_GREEDY, min_new_tokens=N_GREEDY,
                                 do_sample=False, pad_token_id=0)
        ref["greedy"].append({"prompt": prompt, "prompt_ids": prompt_ids,
                              "greedy_new_ids": out[0, len(prompt_ids):].tolist()})
    (args.model_dir / "reference.json").write_text(json.dumps(ref, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
