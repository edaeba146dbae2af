"""LoRA adapters on running servers: `er serve -m ADAPTER`, and `er sample --server URL -m ckpt/latest` when
the checkpoint is `er update --lora`'s step-N (a peft adapter directory).

vLLM's runtime LoRA endpoints (on with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=1` and `--enable-lora`, which `er
serve` sets for an adapter or `--max-lora-rank`): `POST /v1/load_lora_adapter {"lora_name", "lora_path"}`
reads the adapter directory (a path the server sees: a shared filesystem), `/v1/models` then lists it with
its base as `parent`, and a request samples it by naming it as its `model`. The base stays in the engine;
an adapter version costs milliseconds where a full reload costs a drain and a weight load.

- **A new name per version.** vLLM keys its prefix cache by (adapter name, path) and re-reads an adapter
  loaded with `load_inplace` on every step (specs: vLLM #42125, prime-rl's reset of that flag). So each
  version is named after its real path and the size and mtime of its weights: no name is ever reused for
  other weights, a new version needs no pause, no drain and no prefix-cache reset, and requests in flight
  finish on the version they started with.
- **Shared servers.** Samplers following one checkpoint directory compute the same name and load it once;
  vLLM refuses a second load of a listed name, which counts as success when the listing has that name at
  that path.
- **The base.** A server must run the adapter's base model. One holding another checkpoint of the same
  model is moved to the base first (server_control.move_weights); one of another model is a usage error.
- **Dropping old versions.** Each sampler unloads the versions it loaded before the previous one (the
  previous one stays listed: a sampler sharing the server may still be on it). vLLM's LRU
  (`--max-cpu-loras`) bounds what the engine keeps in memory in any case.
- **The check before a record is labelled:** every server lists the new name at the new path.
"""

from __future__ import annotations

import hashlib
import os

from er.errors import ErError

KEEP_VERSIONS = 2  # this sampler's current and previous adapter stay listed on the server
# `er serve`'s LoRA settings: two adapters in one batch (two samplers on two versions of a shared server,
# or one sampler right after a switch) and four cached; the rank is the adapter's, rounded up for vLLM
MAX_LORAS = 2
MAX_CPU_LORAS = 4


def adapter_name(path: str) -> str:
    """The name a server serves adapter directory `path` under: `er-step-N-<10 hex>` (the hash of its real
    path and of the size and mtime of its weights, so other weights at the same path get another name)."""
    from er.train.checkpoint import checkpoint_step
    from er.train.lora import ADAPTER_WEIGHTS

    real = os.path.realpath(path)
    try:
        st = os.stat(os.path.join(real, ADAPTER_WEIGHTS))
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        stamp = ""
    digest = hashlib.sha1(f"{real}\0{stamp}".encode()).hexdigest()[:10]
    step = checkpoint_step(real)
    label = f"step-{step}" if step is not None else os.path.basename(real.rstrip("/")) or "adapter"
    return f"er-{label}-{digest}"


def server_lora_args(rank: int) -> list[str]:
    """The vLLM server flags that let it serve adapters of rank <= `rank`."""
    from er.train.lora import vllm_rank

    return ["--enable-lora", "--max-lora-rank", str(vllm_rank(rank)), "--max-loras", str(MAX_LORAS),
            "--max-cpu-loras", str(MAX_CPU_LORAS)]


def place_adapter(control, path: str) -> str:
    """Load adapter directory `path` on the server behind `control` unless it lists it already; returns the
    name to sample it by. ErError when the server does not list it afterwards."""
    real = os.path.realpath(path)
    name = adapter_name(real)
    if control.adapters().get(name) != real:
        control.load_adapter(name, real)
        listed = control.adapters().get(name)
        if listed != real:
            raise ErError(f"after loading adapter {real} the server lists {name} at {listed}", source=control.url)
    return name


class AdapterHistory:
    """The adapter names one sampler loaded on one server, oldest first; `retire` unloads all but the
    last KEEP_VERSIONS."""

    def __init__(self):
        self.names: list[str] = []

    def add(self, name: str) -> None:
        if name in self.names:
            self.names.remove(name)
        self.names.append(name)

    def retire(self, control) -> None:
        while len(self.names) > KEEP_VERSIONS:
            control.unload_adapter(self.names.pop(0))
