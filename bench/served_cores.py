"""How many cores vLLM's CPU worker should get under `er serve`: vLLM's default against all of them.

vLLM on CPU keeps one core per engine worker for its scheduler process (VLLM_CPU_NUM_OF_RESERVED_CPU,
default: the local world size), so on a 2-core machine the worker computes on one. This times one
step-wise step's sampling (`er sample --server`, 4 prompts x G=4, 32 tokens, log-probs, as in
bench/loop.py) against one `er serve` started each way, with the machine otherwise idle (the step-wise
loop: stages one at a time) and with one other CPU-bound process beside it (the streaming loop, where
`er update` computes while the sampler samples; a Python busy loop stands in for it here).

Each setting: its own server, one run to warm the client's caches (discarded), then 3 runs each way
(median). Wall seconds, the sampler's start-up included.

Run: .venv/bin/python bench/served_cores.py [--model DIR]  (default: `make real-model`'s SmolLM2)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from _util import save, table  # noqa: E402
from loop import BIN, ENV, ER_ENV, start_server, stop_server, write_prompts  # noqa: E402

SETTINGS = (("vLLM's default (one core kept for the scheduler)", {}),
            ("every core (VLLM_CPU_NUM_OF_RESERVED_CPU=0)", {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}))


def sampling_seconds(model: str, url: str, prompts: Path) -> float:
    args = [str(BIN / "er"), "sample", "-m", model, "--server", url, str(prompts), "--loop", "--limit", "4",
            "-n", "4", "--max-tokens", "32", "--logprobs", "--seed", "0", "-q"]
    t0 = time.perf_counter()
    subprocess.run(args, stdout=subprocess.DEVNULL, env=ER_ENV, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model directory (default: the real model of `make real-model`)")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    model = a.model or subprocess.run([sys.executable, str(ROOT / "examples/real_model.py"), "--path"],
                                      capture_output=True, text=True, check=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="er-bench-cores-") as tmp:
        work = Path(tmp)
        prompts = work / "prompts.jsonl"
        write_prompts(prompts)
        for name, extra in SETTINGS:
            server, url, started = start_server(model, work, env={**ENV, **extra})
            try:
                sampling_seconds(model, url, prompts)  # warm: the client's page cache and tokenizer memo
                idle = [sampling_seconds(model, url, prompts) for _ in range(a.rounds)]
                busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                try:
                    time.sleep(1.0)
                    loaded = [sampling_seconds(model, url, prompts) for _ in range(a.rounds)]
                finally:
                    busy.kill()
                    busy.wait()
            finally:
                stop_server(server)
            rows.append((name, f"{statistics.median(idle):.2f}", f"{statistics.median(loaded):.2f}",
                         f"{started:.1f}"))
    out = (f"One step's er sample --server (4 prompts x G=4, 32 tokens, log-probs), model {Path(model).name}, "
           f"{os.cpu_count()} CPU cores, median of {a.rounds} (wall s, the sampler's start-up included).\n\n"
           + table(rows, ("vLLM worker cores", "machine idle", "one other busy process", "server start s")))
    print(out)
    save("served_cores", out)


if __name__ == "__main__":
    main()
