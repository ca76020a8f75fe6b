#!/usr/bin/env python3
"""Optional benchmark of serve-qwen-lora on a real model (standard library only; not part of CI).

One run, side by side on the same machine and model:
  1. offline: test-qwen-lora answers the eval set (batched, greedy, --batch-size 16) and writes its
     report: its generation seconds are the offline rate's denominator;
  2. the eval set through the server with 16 concurrent clients (post-processing on): same raw
     answers, final answers and source labels as the offline report? aggregate tokens/s against the
     offline rate (target >= 80%);
  3. time to first token (first content chunk of a raw stream) p50 / p95 at 1, 4 and 16 clients;
  4. optionally (--soak-seconds) 16 clients for that long: failed requests and the server's peak RSS
     growth after the warm-up (target 0 failures, <= 5%);
  5. optionally (--llama-server BIN, with --gguf among the model flags) llama.cpp's own server on the
     same GGUF with 16 parallel slots (--llama-lora FILE: an `export-gguf --lora-only` adapter), the
     same ChatML prompts to its /v1/completions from 16 clients, greedy: its aggregate tokens/s
     against ours with post-processing on (target >= 1.0x).
The offline answers' token counts are the server's (greedy answers are the same tokens; step 2
checks that they are the same answers).

usage: scripts/serve_bench.py --bin target/release -- --gguf models/qwen2.5-coder-0.5b-instruct.gguf --no-adapter
       (everything after -- is passed to both test-qwen-lora and serve-qwen-lora)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client


def percentile(v, p):
    v = sorted(v)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def eval_questions(path):
    qs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"]
            q = text.split("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0]
            qs.append(q)
    return qs


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Client:
    def __init__(self, port):
        self.port = port

    def chat(self, question, stream=False, postprocess=True, max_tokens=None):
        body = {"model": "kb-lora", "messages": [{"role": "user", "content": question}], "stream": stream,
                "postprocess": postprocess}
        if max_tokens:
            body["max_tokens"] = max_tokens
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        t0 = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
        res = conn.getresponse()
        if res.status != 200:
            raise RuntimeError(f"{res.status}: {res.read()[:300]!r}")
        if not stream:
            v = json.loads(res.read())
            conn.close()
            return v, None, time.perf_counter() - t0
        first = None
        tokens = 0
        while True:
            line = res.readline()
            if not line:
                break
            line = line.decode().strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            c = json.loads(data)
            if c.get("choices") and c["choices"][0]["delta"].get("content") and first is None:
                first = time.perf_counter() - t0
            if c.get("usage"):
                tokens = c["usage"]["completion_tokens"]
        conn.close()
        return {"usage": {"completion_tokens": tokens}}, first, time.perf_counter() - t0


def run_pool(items, n_clients, call):
    """Calls `call(item)` for every item, n_clients at a time; returns (results in order, wall seconds,
    errors)."""
    out = [None] * len(items)
    next_i = [0]
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= len(items):
                return
            try:
                out[i] = call(items[i])
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors.append(f"{items[i]}: {e}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out, time.perf_counter() - t0, errors


def run_clients(client, questions, n_clients, **kw):
    """Sends every question to our server once, n_clients at a time."""
    return run_pool(questions, n_clients, lambda q: client.chat(q, **kw))


def wait_healthy(port, what):
    for _ in range(1200):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"{what} did not come up")


def llama_cpp(a, flags, questions, ours):
    gguf = flags[flags.index("--gguf") + 1]
    port = a.port + 1
    cmd = [a.llama_server, "-m", gguf, "--parallel", "16", "-c", str(16 * 2048), "--port", str(port),
           "--threads", str(os.cpu_count())]
    if a.llama_lora:
        cmd += ["--lora", a.llama_lora]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(port, "llama-server")

        def complete(q):
            body = {"prompt": f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n",
                    "max_tokens": 150, "temperature": 0, "stop": ["<|im_end|>", "<|endoftext|>"]}
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
            v = json.loads(conn.getresponse().read())
            conn.close()
            return v

        out, wall, errors = run_pool(questions, 16, complete)
        if errors:
            sys.exit(f"llama-server: {len(errors)} requests failed: {errors[:3]}")
        tokens = sum(v["usage"]["completion_tokens"] for v in out)
        rate = tokens / wall
        print(f"  llama.cpp llama-server, 16 slots, 16 clients: {wall:.1f} s, {tokens} tokens, {rate:.1f} tokens/s; "
              f"ours with post-processing ÷ llama.cpp = {ours / rate:.2f}x (target >= 1.0x)")
        return {"seconds": wall, "tokens": tokens, "tokens_per_s": rate, "ours_vs_llama_cpp": ours / rate}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release")
    ap.add_argument("--eval", default="data/eval_qwen_v1.jsonl")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--ttft-requests", type=int, default=2, help="requests per client for the TTFT figures")
    ap.add_argument("--soak-seconds", type=int, default=0)
    ap.add_argument("--out", default="test_outputs/serve_bench.json")
    ap.add_argument("--llama-server", help="llama.cpp's llama-server binary, for the comparison")
    ap.add_argument("--llama-lora", help="LoRA GGUF for llama-server (export-gguf --lora-only)")
    ap.add_argument("model_flags", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    flags = [f for f in a.model_flags if f != "--"]
    questions = eval_questions(a.eval)
    results = {"eval": a.eval, "questions": len(questions), "model_flags": flags}

    with tempfile.TemporaryDirectory() as tmp:
        report_path = os.path.join(tmp, "offline.json")
        subprocess.run([f"{a.bin}/test-qwen-lora", *flags, "--eval", a.eval, "--batch-size", "16",
                        "--report", report_path], check=True, stdout=subprocess.DEVNULL)
        with open(report_path, encoding="utf-8") as f:
            report = json.load(f)
    offline_secs = report["summary"]["generation_seconds"]
    details = {d["question"]: d for d in report["details"]}

    server = subprocess.Popen([f"{a.bin}/serve-qwen-lora", *flags, "--port", str(a.port), "--batch-size", "16",
                               "--queue", "256"], stderr=subprocess.DEVNULL)
    try:
        client = Client(a.port)
        wait_healthy(a.port, "the server")
        client.chat(questions[0], max_tokens=2)  # warm-up

        out, wall, errors = run_clients(client, questions, 16)
        if errors:
            sys.exit(f"{len(errors)} requests failed: {errors[:3]}")
        tokens = sum(v["usage"]["completion_tokens"] for v, _, _ in out)
        same_raw = sum(v["kb_source"]["raw_answer"] == details[q]["raw"] for q, (v, _, _) in zip(questions, out))
        same_final = sum(v["choices"][0]["message"]["content"] == details[q]["model"]
                         and v["kb_source"]["label"] == details[q]["source"] for q, (v, _, _) in zip(questions, out))
        offline_rate, served_rate = tokens / offline_secs, tokens / wall
        results.update(tokens=tokens, offline_seconds=offline_secs, offline_tokens_per_s=offline_rate,
                       served_seconds=wall, served_tokens_per_s=served_rate, served_vs_offline=served_rate / offline_rate,
                       same_raw_answers=same_raw, same_final_answers_and_labels=same_final)
        print(f"eval set, {len(questions)} questions, {tokens} tokens")
        print(f"  offline test-qwen-lora batch 16: {offline_secs:.1f} s, {offline_rate:.1f} tokens/s")
        print(f"  server, 16 clients, post-processed: {wall:.1f} s, {served_rate:.1f} tokens/s "
              f"= {served_rate / offline_rate:.0%} of offline (target >= 80%)")
        print(f"  same raw answers: {same_raw}/{len(questions)}; same final answer and label: {same_final}/{len(questions)}")

        ttft = {}
        for n in [int(c) for c in a.clients.split(",")]:
            qs = (questions * 4)[: n * a.ttft_requests]
            res, wall, errors = run_clients(client, qs, n, stream=True, postprocess=False)
            firsts = [f for _, f, _ in res if f is not None]
            ttft[n] = {"p50_s": percentile(firsts, 0.5), "p95_s": percentile(firsts, 0.95), "requests": len(qs),
                       "failed": len(errors)}
            print(f"  time to first token, {n:>2} clients: p50 {ttft[n]['p50_s']:.2f} s, p95 {ttft[n]['p95_s']:.2f} s "
                  f"({len(qs)} raw streams, {len(errors)} failed)")
        results["ttft"] = ttft

        if a.soak_seconds:
            stop = time.perf_counter() + a.soak_seconds
            warm_until = time.perf_counter() + min(60, a.soak_seconds / 5)
            counts = {"ok": 0, "failed": 0}
            peak = {"warm": 0, "after": 0}
            lock = threading.Lock()

            def soaker(k):
                i = k
                while time.perf_counter() < stop:
                    try:
                        client.chat(questions[i % len(questions)])
                        with lock:
                            counts["ok"] += 1
                    except Exception:  # noqa: BLE001 - counted
                        with lock:
                            counts["failed"] += 1
                    i += 16

            threads = [threading.Thread(target=soaker, args=(k,)) for k in range(16)]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                r = rss_kib(server.pid)
                key = "warm" if time.perf_counter() < warm_until else "after"
                peak[key] = max(peak[key], r)
                time.sleep(0.5)
            growth = (peak["after"] - peak["warm"]) / peak["warm"] if peak["warm"] else float("nan")
            results["soak"] = {"seconds": a.soak_seconds, **counts, "peak_rss_warm_kib": peak["warm"],
                               "peak_rss_after_kib": peak["after"], "rss_growth": growth}
            print(f"  soak {a.soak_seconds} s at 16 clients: {counts['ok']} answered, {counts['failed']} failed; "
                  f"peak RSS {peak['warm'] / 1024:.0f} MiB in warm-up, {peak['after'] / 1024:.0f} MiB after "
                  f"({growth:+.1%}; target <= 5%)")
        if a.llama_server:
            results["llama_cpp"] = llama_cpp(a, flags, questions, served_rate)
    finally:
        server.send_signal(2)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out + ".tmp", "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, ensure_ascii=False)
    os.replace(a.out + ".tmp", a.out)
    print(f"written to {a.out}")


if __name__ == "__main__":
    main()
