#!/usr/bin/env python3
"""The Python reference, timed on the same GGUF and data as `bench`, for side-by-side figures.

Parts (each in its own child process, so each peak memory is its own):
  train     transformers + PEFT, the reference recipe: LoRA r16 alpha 32 dropout 0.05 on
            q/k/v/o, f32, batch 4 padded to 192, AdamW 3e-4 with a step every 2 micro-steps;
            one warm-up micro-step, then --micro-steps timed ones, scaled to an epoch.
  generate  transformers `generate`, greedy, f32, PEFT adapter unmerged (as the reference
            evaluates), one eval prompt at a time.
  llama     llama-cpp-python on the GGUF as shipped: one stream, --threads threads, greedy.
  matmul    torch's f32 matmul on bench's shapes (--matmul-tokens, --matmul-dims): forward x·Wᵀ
            and input gradient dY·W, the layer mix of both; the BLAS the reference trains with,
            beside candle's ceiling.

A part whose packages are missing is skipped with a message saying so. Writes one JSON file
(--out) that `bench --reference FILE` reads; prints a short summary.

    scripts/bench_reference.py --gguf models/qwen2.5-coder-0.5b-instruct.gguf --out /tmp/ref.json

Needs: torch, transformers, peft and gguf (transformers reads GGUF through it) for train and
generate; llama-cpp-python for llama.
"""

import argparse
import importlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

USER_START = "<|im_start|>user\n"
TURN_SEP = "<|im_end|>\n<|im_start|>assistant\n"
END = "<|im_end|>"
PARTS = ("train", "generate", "llama", "matmul")


def peak_bytes():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def read_jsonl(path):
    texts = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                texts.append(json.loads(line)["text"])
            except (ValueError, KeyError) as e:
                sys.exit(f"{path}:{n}: not a JSON object with a \"text\" field ({e})")
    if not texts:
        sys.exit(f"{path}: no samples")
    return texts


def prompt_of(text):
    """The generation prompt of a ChatML sample, as kb_dataset::prompt builds it."""
    if not (text.startswith(USER_START) and TURN_SEP in text):
        sys.exit(f"not a ChatML sample: {text[:60]!r}")
    question = text[len(USER_START):].split(TURN_SEP, 1)[0]
    return f"{USER_START}{question}{TURN_SEP}"


def missing(modules):
    out = []
    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError:
            out.append(m)
    return out


def load_transformers(gguf):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d, name = os.path.split(os.path.abspath(gguf))
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    try:
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
    except TypeError:  # transformers < 4.56 calls it torch_dtype
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, torch_dtype=torch.float32)
    load_s = time.perf_counter() - start
    if tok.pad_token is None:
        tok.pad_token = "<|endoftext|>"
    return tok, model, load_s


def lora(model):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=0.05,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, cfg)


def part_train(a):
    import torch

    torch.manual_seed(42)
    tok, model, load_s = load_transformers(a.gguf)
    tok.padding_side = "right"
    model = lora(model)
    model.train()
    texts = read_jsonl(a.train)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.01)
    batch, pad_to, accum = 4, 192, 2
    # The recipe trains in f32; --autocast-bf16 runs the forward under CPU bf16 autocast (oneDNN's
    # bf16 kernels), a comparison point for kb-lora's bf16 products, not the recipe.
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.autocast_bf16)

    def micro(i):
        chunk = [texts[(i * batch + k) % len(texts)] for k in range(batch)]
        enc = tok(chunk, padding="max_length", max_length=pad_to, truncation=True, return_tensors="pt")
        labels = enc["input_ids"].clone()
        labels[enc["attention_mask"] == 0] = -100
        start = time.perf_counter()
        with autocast:
            out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=labels)
        (out.loss / accum).backward()
        if i % accum == accum - 1:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return time.perf_counter() - start, int(enc["attention_mask"].sum())

    micro(0)  # warm-up
    times, real = [], 0
    for i in range(1, a.micro_steps + 1):
        t, n = micro(i)
        times.append(t)
        real += n
        print(f"reference train micro-step {i}/{a.micro_steps}: {t:.1f} s", file=sys.stderr)
    per_epoch = math.ceil(len(texts) / batch)
    med = statistics.median(times)
    return {
        "transformers_train": {
            "micro_steps": a.micro_steps,
            "autocast_bf16": a.autocast_bf16,
            "batch": batch,
            "pad_to": pad_to,
            "micro_step_seconds": med,
            "micro_steps_per_epoch": per_epoch,
            "epoch_seconds": med * per_epoch,
            "real_tokens_per_s": real / sum(times),
            "padded_tokens_per_s": batch * pad_to / med,
            "load_seconds": load_s,
            "peak_memory_bytes": peak_bytes(),
        }
    }


def decode_result(a, prompts, total_n, total_t, threads, load_s, peft=True):
    """One decoding part's figures, in the key order of the reference file."""
    r = {"prompts": len(prompts)}
    if peft:
        r["peft_lora"] = not a.no_adapter
    r.update(
        {
            "max_new_tokens": a.max_new_tokens,
            "tokens": total_n,
            "seconds": total_t,
            "tokens_per_s": total_n / total_t,
            "threads": threads,
            "load_seconds": load_s,
            "peak_memory_bytes": peak_bytes(),
        }
    )
    return r


def part_generate(a):
    import torch

    tok, model, load_s = load_transformers(a.gguf)
    if not a.no_adapter:
        model = lora(model)  # unmerged, as the reference evaluates
    model.eval()
    prompts = [prompt_of(t) for t in read_jsonl(a.eval)][: a.gen_prompts]
    stop = [tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    total_t, total_n = 0.0, 0
    with torch.no_grad():
        warm = tok(prompts[0], return_tensors="pt")
        model.generate(**warm, max_new_tokens=2, do_sample=False, pad_token_id=stop[1])
        for i, p in enumerate(prompts):
            enc = tok(p, return_tensors="pt")
            start = time.perf_counter()
            out = model.generate(
                **enc, max_new_tokens=a.max_new_tokens, do_sample=False, eos_token_id=stop, pad_token_id=stop[1]
            )
            t = time.perf_counter() - start
            new = out[0, enc["input_ids"].shape[1]:].tolist()
            # Count what `bench` counts: generated tokens without the stop token.
            n = len(new[: next((k for k, x in enumerate(new) if x in stop), len(new))])
            total_t += t
            total_n += n
            print(f"reference generate {i + 1}/{len(prompts)}: {n} tokens in {t:.1f} s", file=sys.stderr)
    return {"transformers_generate": decode_result(a, prompts, total_n, total_t, torch.get_num_threads(), load_s)}


def part_llama(a):
    from llama_cpp import Llama

    start = time.perf_counter()
    llm = Llama(model_path=a.gguf, n_threads=a.threads, n_ctx=1024, seed=42, verbose=False)
    load_s = time.perf_counter() - start
    prompts = [prompt_of(t) for t in read_jsonl(a.eval)][: a.llama_prompts]
    llm.create_completion(prompts[0], max_tokens=2, temperature=0.0)  # warm-up
    total_t, total_n = 0.0, 0
    for i, p in enumerate(prompts):
        start = time.perf_counter()
        r = llm.create_completion(p, max_tokens=a.max_new_tokens, temperature=0.0, top_k=1, repeat_penalty=1.0)
        t = time.perf_counter() - start
        n = r["usage"]["completion_tokens"]
        total_t += t
        total_n += n
        print(f"llama.cpp {i + 1}/{len(prompts)}: {n} tokens in {t:.1f} s", file=sys.stderr)
    return {"llama_cpp": decode_result(a, prompts, total_n, total_t, a.threads, load_s, peft=False)}


NEEDS = {
    "train": ["torch", "transformers", "peft", "gguf"],
    "generate": ["torch", "transformers", "peft", "gguf"],
    "llama": ["llama_cpp"],
    "matmul": ["torch"],
}
PIP = {
    "train": "torch transformers peft gguf",
    "generate": "torch transformers peft gguf",
    "llama": "llama-cpp-python",
    "matmul": "torch",
}


def part_matmul(a):
    import torch

    t = a.matmul_tokens
    h, kv, ffn = a.matmul_dims
    shapes = [("q/o", h, h, 2), ("k/v", kv, h, 2), ("gate/up", ffn, h, 2), ("down", h, ffn, 1)]

    def seconds_per_call(f):
        # As bench does: one warm-up call sizes each sample to >= ~50 ms; median of 5 samples.
        start = time.perf_counter()
        f()
        calls = max(1, math.ceil(0.05 / max(time.perf_counter() - start, 1e-6)))
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(calls):
                f()
            samples.append((time.perf_counter() - start) / calls)
        return statistics.median(samples)

    out, flops, fwd_s, dx_s = [], 0.0, 0.0, 0.0
    with torch.no_grad():
        for name, o, i, per_layer in shapes:
            x, w, dy = torch.randn(t, i), torch.randn(o, i) * 0.02, torch.randn(t, o)
            f = 2.0 * t * i * o
            fwd = seconds_per_call(lambda: x @ w.T)
            dx = seconds_per_call(lambda: dy @ w)
            out.append({"name": name, "out": o, "inp": i, "per_layer": per_layer,
                        "fwd_gflops": f / fwd / 1e9, "dx_gflops": f / dx / 1e9})  # fmt: skip
            flops += f * per_layer
            fwd_s += fwd * per_layer
            dx_s += dx * per_layer
    return {
        "torch_matmul": {
            "tokens": t,
            "dims": [h, kv, ffn],
            "threads": torch.get_num_threads(),
            "shapes": out,
            "fwd_gflops": flops / fwd_s / 1e9,
            "ceiling_gflops": 2 * flops / (fwd_s + dx_s) / 1e9,
        }
    }


def versions():
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for dist in ("torch", "transformers", "peft", "gguf", "llama-cpp-python"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def run_all(a, parts):
    result = {"skipped": [], "versions": versions()}
    for part in parts:
        lacking = missing(NEEDS[part])
        if lacking:
            msg = f"{part}: Python packages missing ({', '.join(lacking)}); pip install {PIP[part]}"
            print(f"skipping {msg}", file=sys.stderr)
            result["skipped"].append(msg)
            continue
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "part.json")
            args = [sys.executable, os.path.abspath(__file__), "--part", part, "--out", out] + common_args(a)
            print(f"reference part {part} ...", file=sys.stderr)
            rc = subprocess.call(args)
            if rc != 0 or not os.path.exists(out):
                result["skipped"].append(f"{part}: failed with exit code {rc} (see the messages above)")
                continue
            with open(out, encoding="utf-8") as f:
                result.update(json.load(f))
    return result


def common_args(a):
    return [
        "--gguf", a.gguf, "--train", a.train, "--eval", a.eval, "--micro-steps", str(a.micro_steps),
        "--gen-prompts", str(a.gen_prompts), "--llama-prompts", str(a.llama_prompts),
        "--max-new-tokens", str(a.max_new_tokens), "--threads", str(a.threads),
        "--matmul-tokens", str(a.matmul_tokens), "--matmul-dims", ",".join(map(str, a.matmul_dims)),
    ] + (["--autocast-bf16"] if a.autocast_bf16 else [])  # fmt: skip


def summary(r):
    lines = []
    if "transformers_train" in r:
        t = r["transformers_train"]
        lines.append(
            f"transformers+PEFT train: {t['micro_step_seconds']:.1f} s/micro-step, epoch {t['epoch_seconds'] / 60:.1f} min,"
            f" peak {t['peak_memory_bytes'] / 2**30:.2f} GiB"
        )
    for key, name in (("transformers_generate", "transformers generate"), ("llama_cpp", "llama.cpp")):
        if key in r:
            g = r[key]
            lines.append(f"{name}: {g['tokens_per_s']:.1f} tok/s over {g['prompts']} prompts, peak {g['peak_memory_bytes'] / 2**30:.2f} GiB")
    if "torch_matmul" in r:
        m = r["torch_matmul"]
        lines.append(f"torch matmul: {m['ceiling_gflops']:.1f} GFLOP/s (layer mix fwd + input grad, {m['tokens']} tokens)")
    lines += [f"skipped: {s}" for s in r.get("skipped", [])]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gguf", required=True, help="the GGUF file bench uses")
    p.add_argument("--train", default="data/train_qwen_v1.jsonl", help="training set (ChatML JSONL)")
    p.add_argument("--eval", default="data/eval_qwen_v1.jsonl", help="eval set whose questions are the prompts")
    p.add_argument("--out", required=True, help="JSON file to write (for bench --reference)")
    p.add_argument("--part", choices=("all",) + PARTS, default="all", help="which part (all: each in a child process)")
    p.add_argument("--skip", nargs="*", choices=PARTS, default=[], help="parts not to run")
    p.add_argument("--micro-steps", type=int, default=3, help="timed training micro-steps (after one warm-up)")
    p.add_argument("--autocast-bf16", action="store_true",
                   help="train: forward under torch.autocast('cpu', bfloat16) instead of the recipe's f32")
    p.add_argument("--gen-prompts", type=int, default=3, help="eval prompts for transformers generate")
    p.add_argument("--llama-prompts", type=int, default=8, help="eval prompts for llama.cpp")
    p.add_argument("--max-new-tokens", type=int, default=150, help="most new tokens per answer (as the evaluator)")
    p.add_argument("--no-adapter", action="store_true",
                   help="generate with the plain base model (default: with an untrained PEFT LoRA, as the reference evaluates)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="llama.cpp threads")
    p.add_argument("--matmul-tokens", type=int, default=200, help="matmul: rows of the input (as bench)")
    p.add_argument("--matmul-dims", type=lambda v: [int(x) for x in v.split(",")], default=[896, 128, 4864],
                   help="matmul: hidden,kv,ffn widths (as bench; 1536,256,8960 for 1.5B)")
    a = p.parse_args()
    if len(a.matmul_dims) != 3:
        sys.exit(f"--matmul-dims {a.matmul_dims}: give three widths, hidden,kv,ffn")
    if not os.path.isfile(a.gguf):
        sys.exit(f"--gguf {a.gguf}: no such file; run scripts/fetch-model.sh 0.5b")
    if a.part == "all":
        result = run_all(a, [x for x in PARTS if x not in a.skip])
        result["skipped"] += [f"{x}: skipped by --skip" for x in a.skip]
        print(summary(result))
    else:
        result = {"train": part_train, "generate": part_generate, "llama": part_llama, "matmul": part_matmul}[a.part](a)
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
