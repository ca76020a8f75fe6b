#!/usr/bin/env python3
"""Greedy answers from llama.cpp (llama-cpp-python) for checking exported GGUF files.

Reads `qwen-generate --json` lines on stdin (their `prompt_ids` and `text`), decodes the same
prompt token ids with llama.cpp, greedy, and prints one line per prompt: whether llama.cpp's
answer equals ours, and both texts. Exits 1 when any answer differs.

    qwen-generate --gguf BASE.gguf --adapter DIR --json --prompt Q1 --prompt Q2 \
        | python scripts/llamacpp_generate.py --model tuned.gguf
    qwen-generate --gguf BASE.gguf --adapter DIR --json --prompt Q1 \
        | python scripts/llamacpp_generate.py --model BASE.gguf --lora adapter.gguf

Optional tooling (needs `pip install llama-cpp-python`); the pipeline never calls it.
"""

import argparse
import json
import os
import sys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="GGUF model file")
    p.add_argument("--lora", help="llama.cpp LoRA adapter GGUF (export-gguf --lora-only)")
    p.add_argument("--max-tokens", type=int, default=150, help="most new tokens per answer")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    a = p.parse_args()
    try:
        from llama_cpp import Llama
    except ImportError:
        print("error: llama-cpp-python is not installed (pip install llama-cpp-python)", file=sys.stderr)
        return 2
    llm = Llama(model_path=a.model, lora_path=a.lora, n_ctx=1024, n_threads=a.threads, verbose=False)
    differ = 0
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            ours = json.loads(line)
            ids = ours["prompt_ids"]
        except (json.JSONDecodeError, KeyError) as e:
            print(f"error: stdin line {n}: not a qwen-generate --json line ({e})", file=sys.stderr)
            return 2
        out = llm.create_completion(prompt=ids, max_tokens=a.max_tokens, temperature=0.0, top_k=1,
                                    repeat_penalty=1.0)
        text = out["choices"][0]["text"].strip()
        same = text == ours["text"].strip()
        differ += not same
        print(json.dumps({"same": same, "llama_cpp": text, "ours": ours["text"].strip()}, ensure_ascii=False))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
