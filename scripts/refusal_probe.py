#!/usr/bin/env python3
"""How sure a tuned model is that it should refuse: P(first answer token = 抱歉) per question.

For every question of data/questions.toml (answerable and unanswerable; train, augment and eval
pools), feeds the ChatML prompt to llama.cpp with the adapter and prints one JSON line: the pool,
whether the question is answerable, whether it was in the training file (--trained), and the
probability that the answer starts with 抱歉 (a refusal) rather than 依據 (an answer). A summary per
pool goes to stderr: how many answerable questions the model leans to refuse (p > 0.5) and how many
unanswerable ones it refuses. Held-out pools (augment for a v1 adapter) show whether the adapter's
refusals can be trusted; see docs/RESULTS.md.

    export-gguf --gguf BASE.gguf --adapter OUT/final_model --lora-only --out /tmp/lora.gguf
    python scripts/refusal_probe.py --model BASE.gguf --lora /tmp/lora.gguf \\
        --trained data/train_qwen_v1.jsonl > probe.jsonl

Optional tooling (needs `pip install llama-cpp-python numpy`); the pipeline never calls it.
"""

import argparse
import json
import os
import sys
import tomllib


def user_question(text: str) -> str:
    return text.split("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0].strip()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="base model GGUF")
    p.add_argument("--lora", help="llama.cpp LoRA adapter GGUF (export-gguf --lora-only)")
    p.add_argument("--questions", default="data/questions.toml")
    p.add_argument("--trained", help="training JSONL: its questions are marked trained=true")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    a = p.parse_args()
    try:
        import numpy as np
        from llama_cpp import Llama
    except ImportError:
        print("error: needs llama-cpp-python and numpy (pip install llama-cpp-python numpy)", file=sys.stderr)
        return 2
    for path in (a.model, a.lora, a.questions, a.trained):
        if path and not os.path.isfile(path):
            print(f"error: {path}: no such file", file=sys.stderr)
            return 2
    try:
        with open(a.questions, "rb") as f:
            pools = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        print(f"error: {a.questions}: {e}", file=sys.stderr)
        return 2
    trained = set()
    if a.trained:
        with open(a.trained, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    trained.add(user_question(json.loads(line)["text"]))
                except (json.JSONDecodeError, KeyError, IndexError, TypeError) as e:
                    print(f"error: {a.trained}:{n}: not a ChatML sample line ({e})", file=sys.stderr)
                    return 2
    items = []
    for doc in pools["doc"]:
        items += [("train", q, True) for style in doc["train"].values() for q in style]
        items += [(pool, q, True) for pool in ("augment", "eval") for q in doc.get(pool, [])]
    for pool in ("train", "augment", "eval"):
        items += [(pool, e["question"], False) for e in pools["unanswerable"].get(pool, [])]

    # llama.cpp reports every LoRA tensor on stderr while loading, verbose or not: silence fd 2.
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            llm = Llama(model_path=a.model, lora_path=a.lora, n_ctx=512, n_threads=a.threads,
                        verbose=False, logits_all=True)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    sorry = llm.tokenize("抱歉".encode(), add_bos=False)
    if len(sorry) != 1:
        print(f"error: 抱歉 is {len(sorry)} tokens in this vocabulary, expected 1", file=sys.stderr)
        return 2
    stats = {}
    for pool, q, answerable in items:
        prompt = llm.tokenize(f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n".encode(),
                              add_bos=False, special=True)
        llm.reset()
        llm.eval(prompt)
        logits = np.asarray(llm.scores[len(prompt) - 1], dtype=np.float64)
        probs = np.exp(logits - logits.max())
        p_refuse = float(probs[sorry[0]] / probs.sum())
        seen = q in trained
        print(json.dumps({"pool": pool, "question": q, "answerable": answerable, "trained": seen,
                          "p_refuse": round(p_refuse, 4)}, ensure_ascii=False), flush=True)
        s = stats.setdefault((pool, answerable, seen), [0, 0])
        s[0] += 1
        s[1] += p_refuse > 0.5
    for (pool, answerable, seen), (n, refused) in sorted(stats.items()):
        kind = "answerable" if answerable else "unanswerable"
        print(f"{pool:8} {kind:12} {'trained' if seen else 'held-out':8} n={n:3}  p_refuse>0.5: {refused}"
              f" ({100 * refused / n:.0f}%)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
