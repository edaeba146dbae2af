"""The RL loop end to end: TRL GRPOTrainer in-process vs the `er` pipe in both loop shapes.

Same model (the tiny er.tiny, or `--model`), same prompts (64 addition problems, plain text, answer in \\boxed{}),
same prompts per step, G, max tokens, reward (DLER truncation, L_T = max tokens), lr, clip 0.2/0.28,
no KL, one optimizer step per sampling step, float32 on CPU, in one process tree:

  (a) TRL 1.16 GRPOTrainer (examples/recipes/trl-bridge/train.py --beta 0): generation, reward,
      loss, backward, AdamW in one process; torch uses the machine's cores.
  (b) er step-wise (examples/stepwise/Makefile): a fresh `er sample | er score | er advantage |
      er update --resume` pipe per step (4 processes, OMP_NUM_THREADS=1 each).
  (c) er streaming (examples/stream.sh): one long pipe, `er sample --watch` reloading each checkpoint.
  (d) er step-wise with SERVER= (one `er serve` of the same model, vLLM on CPU): each step's sampler
      moves the server to the newest checkpoint in place and samples from it; no engine start per step.
      The server's start-up is paid once and reported on its own row (it is outside the step rate).

Also: the sampling share of one step (each stage alone, `er sample` in-process vs `--server`), and a
reload through the server (`move_weights`: drain, in-place reload, prefix-cache reset, resume) against
an engine restart (`er serve` start until /health answers).

`--all-cores`: every vLLM engine here (the in-process samplers and the server alike) runs its worker on
every core (VLLM_CPU_NUM_OF_RESERVED_CPU=0) instead of keeping one core for vLLM's scheduler process,
which on a 2-core machine leaves the worker one. The step-wise loop runs its stages one at a time, so
the sampler has the machine to itself; in the streaming loop the update runs beside it (README).

Reported: steps/s end to end (process start to exit, start-up included) and steady (between the first
and last step: TRL's train_runtime; er: arrival times of the metrics records), the ratios er / TRL,
and for er where a step's time goes (each stage run alone on one step's data; update compute from
its metrics' `seconds`). Differences that remain: TRL scales rewards by the batch std
(scale_rewards="batch"), er's `batch` estimator whitens token-weighted over the batch; TRL samples
with its generate loop, er with the transformers backend plus behaviour log-probs; er writes a
checkpoint every step (the streaming sampler reloads it), TRL keeps the model in memory.

Run: .venv/bin/python bench/loop.py [--quick] [--model DIR] [--backend transformers|vllm]
(`--model` takes a real model, e.g. `make real-model`'s SmolLM2; results go to bench/results/loop*_NAME.txt)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _util import save, table  # noqa: E402

BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT),
       "ACCELERATE_USE_CPU": "1"}
ER_ENV = {**ENV, "OMP_NUM_THREADS": "1"}


def write_prompts(path: Path) -> None:
    """The bench's 64 addition problems (plain text, answer in \\boxed{})."""
    path.write_text("".join(json.dumps({"id": f"add/{i}", "prompt": f"What is {i} + {2 * i + 1}? Put the answer "
                                                    f"in \\boxed{{}}.", "answer": str(3 * i + 1)}) + "\n"
                            for i in range(64)))


def run_trl(model, work, a) -> dict:
    args = [sys.executable, str(ROOT / "examples/recipes/trl-bridge/train.py"), "--model", model, "--dataset",
            str(DATA), "--preset", "", "--steps", str(a.steps), "-G", str(a.G), "--prompts-per-step", str(a.prompts),
            "--per-device-samples", str(a.prompts * a.G), "--L-T", str(a.max_tokens), "--lr", str(a.lr),
            "--beta", "0", "--cpu", "--output-dir", str(work / "trl")]
    t0 = time.perf_counter()
    proc = subprocess.run(args, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"TRL failed: {proc.stderr[-3000:]}")
    log = proc.stdout + proc.stderr
    runtime = float(re.search(r"'train_runtime': '([0-9.]+)'", log).group(1))
    steps = len(re.findall(r"'rewards/er_dler/mean'", log))
    return {"wall": wall, "steady": runtime, "steps": steps, "steady_n": steps}


def er_vars(model, a) -> dict:
    return {"MODEL": model, "PROMPTS": str(DATA), "BACKEND": a.backend, "G": str(a.G),
            "PROMPTS_PER_STEP": str(a.prompts), "MAX_TOKENS": str(a.max_tokens), "LR": str(a.lr),
            "ESTIMATOR": "batch", "KL_COEF": "0", "ER": str(BIN / "er"), "SEED": "0",
            # a randomly initialised model never answers right (and a small real one rarely within a few
            # dozen tokens): no pre-flight, and zero-signal steps (er update skips their forward/backward,
            # TRL does not) must not stop the run
            "PREFLIGHT": "", "ALLOW_ZERO_SIGNAL": "1"}


def run_stepwise(model, work, a, server: str | None = None) -> dict:
    cwd = work / ("stepwise-served" if server else "stepwise")
    cwd.mkdir()
    variables = {**er_vars(model, a), **({"SERVER": server} if server else {})}
    args = ["make", "--no-print-directory", "-f", str(ROOT / "examples/stepwise/Makefile"), f"steps={a.steps}",
            "KEEP_ROLLOUTS=0", *(f"{k}={v}" for k, v in variables.items())]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=ER_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = []
    for line in proc.stdout:
        if re.match(r"step \d+: ckpt/step-\d+ in", line):
            done.append(time.perf_counter() - t0)
    err = proc.stderr.read()
    if proc.wait() != 0:
        raise SystemExit(f"step-wise failed: {err[-3000:]}")
    wall = time.perf_counter() - t0
    update_s = sum(json.loads(x)["seconds"] for n in range(1, a.steps + 1)
                   for x in (cwd / "runs" / f"step-{n}" / "metrics.jsonl").read_text().splitlines())
    return {"wall": wall, "steady": done[-1] - done[0], "steps": len(done), "steady_n": len(done) - 1,
            "update_compute": update_s}


def run_stream(model, work, a) -> dict:
    env = {**ER_ENV, **er_vars(model, a), "STEPS": str(a.steps), "CKPT": str(work / "stream-ckpt")}
    t0 = time.perf_counter()
    proc = subprocess.Popen(["bash", str(ROOT / "examples/stream.sh")], env=env, cwd=work, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    arrivals, compute = [], 0.0
    for line in proc.stdout:
        arrivals.append(time.perf_counter() - t0)
        compute += json.loads(line)["seconds"]
    err = proc.stderr.read()
    if proc.wait() != 0:
        raise SystemExit(f"streaming failed: {err[-3000:]}")
    wall = time.perf_counter() - t0
    return {"wall": wall, "steady": arrivals[-1] - arrivals[0], "steps": len(arrivals),
            "steady_n": len(arrivals) - 1, "update_compute": compute}


def start_server(model, work, env: dict | None = None):
    """`er serve` of `model` on a free port: (process, URL, seconds until it printed the URL)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(work / f"serve-{port}.log", "wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "er"), "serve", "-m", model, "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=log, env=env or ENV)
    url = proc.stdout.readline().decode().strip()
    if not url:
        raise SystemExit(f"er serve failed: {(work / f'serve-{port}.log').read_text()[-3000:]}")
    return proc, url, time.perf_counter() - t0


def stop_server(proc) -> None:
    import signal

    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)


def reload_times(url, checkpoints, rounds: int = 3) -> list[float]:
    """Seconds the server was paused for each move_weights between the given checkpoints, in turn."""
    from er.sampling.server_control import ServerControl

    control = ServerControl(url)
    return [control.move_weights(str(checkpoints[i % len(checkpoints)])) for i in range(rounds * len(checkpoints))]


def stage_times(model, work, a, server: str | None = None) -> list[tuple]:
    """Each er stage alone on one step's data: wall seconds (start-up included)."""
    er = [str(BIN / "er")]
    files = {k: work / f"stage-{k}.jsonl" for k in ("sample", "score", "advantage", "metrics")}
    stages = [
        ("sample", er + ["sample", "-m", model, str(DATA), "--loop", "--limit",
                         str(a.prompts), "-n", str(a.G), "--max-tokens", str(a.max_tokens), "--backend",
                         a.backend, "--logprobs", "--seed", "0", "-q"], None),
        ("score", er + ["score", "-r", f"dler:L_T={a.max_tokens}", "-q"], "sample"),
        ("advantage", er + ["advantage", "-e", "batch", "--batch-groups", str(a.prompts), "-q"], "score"),
        ("update", er + ["update", "-m", model, "--out", str(work / "stage-ckpt"), "--lr", str(a.lr),
                         "--batch-size", str(a.prompts * a.G), "--allow-zero-signal", "-q"], "advantage"),
    ]
    if server:  # the same step's sampling through the warm server (it moves the server to `model` first)
        stages.insert(1, ("sample --server", er + ["sample", "-m", model, "--server", server, str(DATA), "--loop",
                                                   "--limit", str(a.prompts), "-n", str(a.G), "--max-tokens",
                                                   str(a.max_tokens), "--logprobs", "--seed", "0", "-q"], None))
    rows = []
    for name, args, src in stages:
        out = files["metrics" if name == "update" else name] if name != "sample --server" else work / "served.jsonl"
        t0 = time.perf_counter()
        with open(out, "wb") as f, open(files[src] if src else os.devnull, "rb") as inp:
            subprocess.run(args, stdin=inp, stdout=f, env=ER_ENV, check=True)
        rows.append((name, round(time.perf_counter() - t0, 2)))
    compute = json.loads(files["metrics"].read_text().splitlines()[0])["seconds"]
    rows.append(("update: step compute (metrics seconds)", round(compute, 3)))
    times = dict(rows)
    step_s = times["sample"] + times["score"] + times["advantage"] + times["update"]
    rows.append(("sampling share of a step, in-process", f"{times['sample'] / step_s:.0%}"))
    if server:
        served_s = step_s - times["sample"] + times["sample --server"]
        rows.append(("sampling share of a step, --server", f"{times['sample --server'] / served_s:.0%}"))
        rows.append(("sampling share falls by", f"{(times['sample'] / step_s) / (times['sample --server'] / served_s):.2f}x"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 steps instead of 12")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--prompts", type=int, default=4, help="prompts per step")
    ap.add_argument("-G", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--model", help="save_pretrained directory, e.g. `make real-model`'s SmolLM2 (default: the tiny "
                                    "model, built here)")
    ap.add_argument("--all-cores", action="store_true",
                    help="vLLM's workers (in process and in the server) on every core: VLLM_CPU_NUM_OF_RESERVED_CPU=0")
    ap.add_argument("--backend", default="transformers", choices=("transformers", "vllm"),
                    help="the in-process sampler of the loops without a server (default: transformers, what "
                         "--backend auto picks on a machine without CUDA)")
    a = ap.parse_args()
    a.steps = a.steps or (4 if a.quick else 12)
    if a.all_cores:
        for env in (ENV, ER_ENV):
            env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
    from er.tiny import build_tiny

    with tempfile.TemporaryDirectory(prefix="er-bench-loop-") as tmp:
        work = Path(tmp)
        global DATA
        DATA = work / "prompts.jsonl"
        write_prompts(DATA)
        model = a.model or build_tiny(str(work / "tiny"))
        name = f"model {Path(a.model).name}" if a.model else "tiny model (er.tiny)"
        header = (f"RL loop, {name}, {a.steps} steps x {a.prompts} prompts x G={a.G}, max tokens "
                  f"{a.max_tokens}, reward dler:L_T={a.max_tokens}, lr {a.lr}, clip 0.2/0.28, no KL, "
                  f"{os.cpu_count()} CPU cores.\nTRL: GRPOTrainer (loss dapo, scale_rewards=batch) in one process; "
                  f"er: 4 processes per pipe, OMP_NUM_THREADS=1 each, sampler --backend {a.backend} without a "
                  "server, estimator batch (token-weighted batch whitening), checkpoint every step. vLLM workers "
                  + ("on every core (--all-cores: VLLM_CPU_NUM_OF_RESERVED_CPU=0)." if a.all_cores else
                     "on vLLM's default cores (one kept for its scheduler process)."))
        print(header, flush=True)
        trl = run_trl(model, work, a)
        step = run_stepwise(model, work, a)
        stream = run_stream(model, work, a)
        server, url, server_start = start_server(model, work)
        try:
            served = run_stepwise(model, work, a, server=url)
            stages = stage_times(model, work, a, server=url)
            ckpt = work / "stepwise-served" / "ckpt"
            reloads = reload_times(url, [ckpt / f"step-{a.steps - 1}", ckpt / f"step-{a.steps}"])
        finally:
            stop_server(server)

    def rate(r, key):
        n = r["steady_n"] if key == "steady" else r["steps"]
        return n / r[key] if r[key] > 0 else float("nan")

    rows = []
    for name, r in (("TRL GRPOTrainer", trl), ("er step-wise", step), ("er streaming", stream),
                    ("er step-wise, SERVER=", served)):
        rows.append((name, r["steps"], f"{r['wall']:.1f}", f"{rate(r, 'wall'):.3f}",
                     f"{rate(r, 'wall') / rate(trl, 'wall'):.2f}x", f"{rate(r, 'steady'):.3f}",
                     f"{rate(r, 'steady') / rate(trl, 'steady'):.2f}x",
                     f"{r.get('update_compute', float('nan')):.2f}"))
    out = header + "\n\n" + table(rows, ("loop", "steps", "wall s", "steps/s (e2e)", "vs TRL", "steps/s (steady)",
                                         "vs TRL", "er update compute s")) + "\n\n"
    out += (f"step-wise with SERVER= vs without: {rate(served, 'wall') / rate(step, 'wall'):.2f}x steps/s end to end, "
            f"{rate(served, 'steady') / rate(step, 'steady'):.2f}x steady (the server's start-up, {server_start:.1f} s "
            "once, not included)\n\n")
    out += "er, one step's stages run alone (wall s, start-up included):\n" + table(stages, ("stage", "seconds"))
    reloads.sort()
    out += (f"\n\nnew weights into a running server (move_weights: drain, reload, prefix-cache reset, resume): "
            f"median {reloads[len(reloads) // 2]:.2f} s over {len(reloads)} moves, vs an engine restart (er serve "
            f"start to /health): {server_start:.1f} s -> {server_start / reloads[len(reloads) // 2]:.0f}x faster")
    print("\n" + out.split("\n\n", 1)[1])
    save(("loop_quick" if a.quick else "loop") + (f"_{Path(a.model).name}" if a.model else "")
         + ("" if a.backend == "transformers" else f"_{a.backend}") + ("_all_cores" if a.all_cores else ""), out)


if __name__ == "__main__":
    main()
