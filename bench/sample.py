"""Benchmark `er sample` against the plain library calls on the same prompts (tiny model, CPU).

    .venv/bin/python bench/sample.py [--quick] [--skip-transformers] [--skip-vllm] [--skip-server] [--model DIR]

transformers: er's Sampler + HFBackend (prompt rendering, batching by length, KV-cache decoding,
record building) vs a plain `model.generate(do_sample=True, num_return_sequences=G)` loop over
batches of the same size with left padding. vLLM (CPU build): er's Sampler + VLLMBackend (engine in
a helper process, requests over a pipe) vs raw `LLM.generate` in this process with the same engine
settings. Served (`er sample --server`): er's Sampler + ServerBackend (HTTP to an `er serve` of the same
model, started by this script) vs er's Sampler + VLLMBackend, both engines with er's CPU settings and
`--max-model-len 512`, run interleaved. Tokens/s counts generated completion tokens (EOS included, padding not); model loading and
engine start are outside the timings. Prints a table and both ratios (er / baseline). `--model DIR`
(e.g. the `make real-model` SmolLM2) replaces the tiny model; prompts get its chat template in er's runs.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def make_prompts(n: int) -> list[dict]:
    rng = random.Random(0)
    words = "the answer is sum add carry digit step so we get think first then total result".split()
    out = []
    for i in range(n):
        body = " ".join(rng.choices(words, k=rng.randint(3, 40)))
        out.append({"id": str(i), "prompt": f"{rng.randint(0, 999)} + {rng.randint(0, 999)} = {body}"})
    return out


def er_run(backend, tok, prompts, G, max_tokens, seed=0):
    from er.sampling.sampler import Policy, SampleOptions, Sampler

    sampler = Sampler(Policy(backend, "bench", None), tok, SampleOptions(n=G, max_tokens=max_tokens, seed=seed))
    t0 = time.perf_counter()
    prepared = [sampler.prepare(("<b>", i + 1, p), i) for i, p in enumerate(prompts)]
    tokens = sum(r["completion_tokens"] for g in sampler.generate_chunk(prepared) for r in g)
    return tokens, time.perf_counter() - t0


def hf_baseline(model, tok, prompts, G, max_tokens, batch_size):
    import torch

    eos = tok.eos_token_id
    texts = [p["prompt"] for p in prompts]
    per = max(1, batch_size // G)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    tokens = 0
    with torch.inference_mode():
        for i in range(0, len(texts), per):
            enc = tok(texts[i:i + per], return_tensors="pt", padding=True)
            out = model.generate(**enc, do_sample=True, num_return_sequences=G, max_new_tokens=max_tokens,
                                 top_p=1.0, temperature=1.0, top_k=0, pad_token_id=tok.pad_token_id)
            gen = out[:, enc["input_ids"].shape[1]:]
            for row in gen.tolist():
                n = len(row)
                if eos in row:
                    n = row.index(eos) + 1
                tokens += n
    return tokens, time.perf_counter() - t0


class VLLMRaw:
    """Raw `LLM.generate` in this process, with the engine settings er's worker uses on CPU."""

    def __init__(self, path, tok):
        from vllm import LLM

        self.tok = tok
        self.llm = LLM(path, dtype="float32", max_model_len=512, seed=0, enforce_eager=True,
                       gpu_memory_utilization=0.2, kv_cache_memory_bytes=256 << 20,
                       distributed_executor_backend="uni", logprobs_mode="processed_logprobs",
                       enable_chunked_prefill=False)

    def __call__(self, prompts, G, max_tokens, seed=0):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        ids = [self.tok.encode(p["prompt"]) for p in prompts]
        params = [SamplingParams(n=G, max_tokens=max_tokens, seed=seed + i, skip_special_tokens=False)
                  for i in range(len(ids))]
        t0 = time.perf_counter()
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=x) for x in ids], params, use_tqdm=False)
        dt = time.perf_counter() - t0
        return sum(len(o.token_ids) for ro in outs for o in ro.outputs), dt


def best_of(rounds, *runs):
    """Interleave the runs `rounds` times (the machine's load drifts) and keep each one's best tokens/s."""
    best = [0.0] * len(runs)
    for _ in range(rounds):
        for i, run in enumerate(runs):
            tokens, seconds = run()
            best[i] = max(best[i], tokens / seconds)
    return best


def served_row(path, vb, tok, prompts, G, max_tokens, rounds):
    """(in-process er tok/s, served er tok/s): an `er serve` of `path` (same engine settings as `vb`)."""
    import select
    import signal
    import socket
    import subprocess

    from er.sampling.server_client import ServerBackend, ServerOptions

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "er.cli", "serve", "-m", path, "--port", str(port),
                             "--max-model-len", "512"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 900)
        url = proc.stdout.readline().decode().strip() if ready else ""
        if not url:
            raise SystemExit(f"er serve did not start (exit {proc.poll()})")
        sb = ServerBackend(ServerOptions([url]), path)
        er_run(sb, tok, prompts[:2], G, 4)  # warm-up
        best = best_of(rounds, lambda: er_run(vb, tok, prompts, G, max_tokens),
                       lambda: er_run(sb, tok, prompts, G, max_tokens))
        sb.close()
        return best
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument("--skip-server", action="store_true")
    ap.add_argument("--skip-transformers", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default=None, help="save_pretrained directory (default: the tiny model, built here)")
    args = ap.parse_args()
    n_prompts, G, max_tokens, batch = (16, 4, 32, 32) if args.quick else (64, 4, 64, 64)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from er.sampling.hf import HFBackend
    from er.tiny import build_tiny

    path = args.model or build_tiny(os.path.join(tempfile.mkdtemp(prefix="er-bench-"), "tiny"))
    tok = AutoTokenizer.from_pretrained(path)
    prompts = make_prompts(n_prompts)
    rows = []

    if not args.skip_transformers:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        backend = HFBackend(path, batch_size=batch, eos_ids=[tok.eos_token_id], pad_id=tok.pad_token_id)
        er_run(backend, tok, prompts[:2], G, 4)  # warm-up both
        hf_baseline(model, tok, prompts[:2], G, 4, batch)
        b, e = best_of(args.rounds, lambda: hf_baseline(model, tok, prompts, G, max_tokens, batch),
                       lambda: er_run(backend, tok, prompts, G, max_tokens))
        rows.append(("transformers", "model.generate loop", b, e))

    if not args.skip_vllm:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from er.sampling.vllm import VLLMBackend

        vb = VLLMBackend(path, seed=0, max_model_len=512)
        raw = VLLMRaw(path, tok)
        er_run(vb, tok, prompts[:2], G, 4)  # warm-up both
        raw(prompts[:2], G, 4)
        b, e = best_of(args.rounds, lambda: raw(prompts, G, max_tokens), lambda: er_run(vb, tok, prompts, G, max_tokens))
        rows.append(("vllm (cpu)", "raw LLM.generate", b, e))
        if not args.skip_server:
            del raw  # one engine fewer while the server runs
            b, e = served_row(path, vb, tok, prompts, G, max_tokens, args.rounds)
            rows.append(("--server (cpu)", "er --backend vllm", b, e))
        vb.close()

    lines = [f"model={os.path.basename(os.path.normpath(path))} prompts={n_prompts} G={G} max_tokens={max_tokens} "
             f"batch={batch} (best of {args.rounds} interleaved rounds)",
             f"{'backend':14} {'baseline':22} {'base tok/s':>10} {'er tok/s':>10} {'ratio':>7}"]
    lines += [f"{name:14} {base:22} {b:10.0f} {e:10.0f} {e / b:7.2f}x" for name, base, b, e in rows]
    print("\n".join(lines))
    from _util import save

    save("sample" + ("_quick" if args.quick else "") + (f"_{os.path.basename(os.path.normpath(args.model))}"
                                                         if args.model else ""), "\n".join(lines))


if __name__ == "__main__":
    main()
