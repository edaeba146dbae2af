"""Control calls to one vLLM OpenAI-compatible server (`er serve`, or `vllm serve` in dev mode).

Synchronous, standard library only (urllib), and every call has a timeout: a control call that hangs
would leave a learner waiting forever on a paused server. The data plane (many completions in flight)
is not here; this is the handful of calls around it:

- `health()` (`GET /health`), `served_model()` (`GET /v1/models`: the model id and `max_model_len`);
- `warm_up(model)`: one one-token completion with a log-prob, which `er serve` sends before it says the
  server is ready: vLLM ranks sampled tokens with a `torch.compile`d function, compiled by the first
  request that asks for log-probs (3 s on CPU here), which would otherwise land on the first sampler;
- `pause(mode)` (`POST /pause?mode=wait|abort|keep`), `resume()` (`POST /resume`), `is_paused()`;
- `reload_weights(path, step)`: `POST /collective_rpc {"method": "er_reload_weights", "kwargs":
  {"weights_path", "step"}}`, er's worker extension (`er.sampling.vllm_worker.ReloadExtension`): vLLM's
  in-place `reload_weights` plus the CPU repack of tied embeddings, and it records which checkpoint the
  workers hold;
- `reset_prefix_cache()`: `POST /reset_prefix_cache`, retried while it answers `{"success": false}`
  (it fails while blocks are held). vLLM does not reset the prefix cache on a reload, and KV computed
  with the old weights would silently mix two policies into one sample;
- `weights()`: which checkpoint the server holds, from the workers themselves (`er_weights` through
  `/collective_rpc`), so the label cannot drift from what was loaded; vLLM's own label
  (`/update_weight_version`, `/weight_info`) is set to `step-N` as well, for tools that read it;
- `move_weights(path, step)`: pause (drain) -> reload -> reset prefix cache -> label -> resume; the
  resume runs in a `finally`, also when a step fails (a lost resume leaves the server paused for good);
- `adapters()`, `load_adapter(name, path)`, `unload_adapter(name)`: vLLM's runtime LoRA endpoints
  (`/v1/load_lora_adapter`, `/v1/unload_lora_adapter`, with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=1`);
  which adapter versions to load and drop is er.sampling.server_adapters'.

The dev endpoints (`/collective_rpc`, `/pause`, ...) exist only with `VLLM_SERVER_DEV_MODE=1`, and
`--api-key` does not guard them. Failures raise ErError with one line naming the server.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from er.errors import ErError, UsageError

# Seconds per call. A drain (`pause?mode=wait`) waits for the longest sample in flight and a reload
# reads a checkpoint from a shared filesystem: both get minutes, the rest seconds.
CONTROL_TIMEOUT = 30.0
DRAIN_TIMEOUT = 900.0
RELOAD_TIMEOUT = 900.0
PREFIX_RESET_TRIES = 20

WORKER_EXTENSION = "er.sampling.vllm_worker.ReloadExtension"


@dataclass(frozen=True)
class ServedModel:
    """What `/v1/models` says: the name requests must use, the context, the directory it came from."""

    name: str
    max_model_len: int | None
    root: str | None


@dataclass(frozen=True)
class Weights:
    """Which checkpoint the server's workers hold (`path` as loaded, `step` when known) and its shape."""

    path: str
    step: int | None
    architecture: str | None = None
    vocab_size: int | None = None
    hidden_size: int | None = None
    layers: int | None = None
    logprobs_mode: str | None = None  # vLLM's: processed_logprobs or raw_logprobs (fixed at server start)

    @property
    def label(self) -> str:
        return f"step-{self.step}" if self.step is not None else os.path.basename(self.path.rstrip("/"))


def normalize_url(url: str) -> str:
    """`http://host:port` without a trailing slash; a bare `host:port` gets `http://`. UsageError otherwise."""
    raw = url.strip()
    if "://" not in raw:
        raw = "http://" + raw
    parts = urllib.parse.urlsplit(raw)
    try:
        parts.port  # noqa: B018 - raises on a non-numeric port
    except ValueError:
        raise UsageError(f"--server {url!r}: not a URL (http://HOST:PORT)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--server {url!r}: not a URL (http://HOST:PORT)")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


class ServerControl:
    """The control plane of one server URL. `api_key` goes to the `/v1` calls (the only ones vLLM guards)."""

    def __init__(self, url: str, *, timeout: float = CONTROL_TIMEOUT, api_key: str | None = None):
        self.url = normalize_url(url)
        self.timeout = timeout
        self.api_key = api_key

    # -- transport ------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, body: dict | None = None, query: dict | None = None,
              timeout: float | None = None, what: str, text: bool = False) -> object:
        """The decoded JSON answer (None for an empty body; the text itself with `text`, for the endpoints
        that answer in words); ErError with one line on any failure."""
        url = self.url + path + (("?" + urllib.parse.urlencode(query)) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if self.api_key and path.startswith("/v1"):
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        limit = self.timeout if timeout is None else timeout
        try:
            with urllib.request.urlopen(request, timeout=limit) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise ErError(f"{what}: {self._http_failure(exc, path)}", source=self.url) from None
        except (TimeoutError, socket.timeout):
            raise ErError(f"{what}: no answer within {limit:g} s", source=self.url) from None
        except urllib.error.URLError as exc:
            raise ErError(f"{what}: {self._unreachable(exc.reason)}", source=self.url) from None
        except (ConnectionError, OSError) as exc:  # reset mid-answer
            raise ErError(f"{what}: {self._unreachable(exc)}", source=self.url) from None
        if not raw.strip():
            return None
        if text:
            return raw.decode(errors="replace")
        try:
            return json.loads(raw)
        except ValueError:
            raise ErError(f"{what}: the answer is not JSON (is this a vLLM server?)", source=self.url) from None

    @staticmethod
    def _unreachable(reason) -> str:
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return "no answer (timed out)"
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused (no server listens there; start one with `er serve`)"
        if isinstance(reason, socket.gaierror):
            return "unknown host"
        return f"cannot connect ({reason})"

    @staticmethod
    def _http_failure(exc: urllib.error.HTTPError, path: str) -> str:
        try:
            detail = exc.read().decode(errors="replace")
            parsed = json.loads(detail)
            if isinstance(parsed, dict):  # vLLM: {"error": {"message": ...}} or FastAPI's {"detail": ...}
                inner = parsed.get("error") or parsed.get("detail") or parsed.get("message") or detail
                detail = str(inner.get("message", inner) if isinstance(inner, dict) else inner)
        except (OSError, ValueError):
            detail = exc.reason or ""
        first = " ".join(str(detail).split())[:300]
        if exc.code == 404 and path in ("/collective_rpc", "/pause", "/resume", "/reset_prefix_cache",
                                        "/is_paused", "/update_weight_version", "/weight_info"):
            return (f"{path} is not served (HTTP 404): the server is not in dev mode; start it with `er serve` "
                    "(or VLLM_SERVER_DEV_MODE=1 and --worker-extension-cls " + WORKER_EXTENSION + ")")
        if exc.code == 401:
            return "unauthorized (HTTP 401): the server wants an API key"
        return f"HTTP {exc.code}" + (f": {first}" if first else "")

    # -- calls ----------------------------------------------------------------------------------

    def health(self, timeout: float = 5.0) -> None:
        """Returns when `/health` answers 200; ErError otherwise."""
        self._call("GET", "/health", timeout=timeout, what="health check")

    def _models(self) -> list[dict]:
        """The entries `/v1/models` lists: the served model first, then the LoRA adapters (with a `parent`)."""
        answer = self._call("GET", "/v1/models", what="listing models")
        models = answer.get("data") if isinstance(answer, dict) else None
        return [m for m in models or [] if isinstance(m, dict)]

    def served_model(self) -> ServedModel:
        """The first model `/v1/models` lists (vLLM serves one; LoRA adapters are listed after it)."""
        models = self._models()
        if not models:
            raise ErError("listing models: /v1/models lists none (is this an OpenAI-compatible server?)",
                          source=self.url)
        first = models[0]
        return ServedModel(str(first.get("id")), first.get("max_model_len"), first.get("root"))

    def warm_up(self, model: str, timeout: float = RELOAD_TIMEOUT) -> float:
        """One completion of one token with its log-prob, shaped like `er sample --server`'s requests
        (token-id prompt, seed, `return_token_ids`); returns the seconds it took. Token 0 exists in every
        vocabulary, and a one-token prompt fills no prefix-cache block."""
        body = {"model": model, "prompt": [0], "max_tokens": 1, "logprobs": 1, "seed": 0,
                "return_token_ids": True}
        t0 = time.perf_counter()
        self._call("POST", "/v1/completions", body=body, timeout=timeout, what="warm-up completion")
        return time.perf_counter() - t0

    def adapters(self) -> dict[str, str | None]:
        """The LoRA adapters the server lists (`/v1/models` entries with a `parent`): name -> path."""
        return {str(m.get("id")): m.get("root") for m in self._models() if m.get("parent")}

    def load_adapter(self, name: str, path: str, timeout: float = RELOAD_TIMEOUT) -> None:
        """`POST /v1/load_lora_adapter`: the adapter directory `path` (as the server sees it) under `name`.
        A name already listed is refused by vLLM (HTTP 400 "already been loaded"): that answer is success
        when the listing has `name` at `path` (another sampler loaded the same version)."""
        try:
            self._call("POST", "/v1/load_lora_adapter", body={"lora_name": name, "lora_path": path},
                       timeout=timeout, what=f"loading adapter {path}", text=True)
        except ErError as exc:
            if "already been loaded" in exc.message and self.adapters().get(name) == path:
                return
            raise ErError(f"{exc.message}{_lora_hint(exc.message)}", source=self.url) from None

    def unload_adapter(self, name: str) -> None:
        """`POST /v1/unload_lora_adapter`; a name the server no longer lists is not an error."""
        try:
            self._call("POST", "/v1/unload_lora_adapter", body={"lora_name": name}, what=f"unloading adapter {name}",
                       text=True)
        except ErError as exc:
            if "HTTP 404" not in exc.message:
                raise

    def pause(self, mode: str = "wait", timeout: float = DRAIN_TIMEOUT) -> None:
        """Stop scheduling: `wait` lets requests in flight finish (drain), `abort` ends them, `keep` freezes them."""
        if mode not in ("wait", "abort", "keep"):
            raise UsageError(f"pause mode must be wait, abort or keep, not {mode!r}")
        self._call("POST", "/pause", query={"mode": mode}, timeout=timeout, what=f"pausing (mode={mode})")

    def resume(self) -> None:
        self._call("POST", "/resume", what="resuming")

    def is_paused(self) -> bool:
        answer = self._call("GET", "/is_paused", what="asking whether paused")
        return bool(isinstance(answer, dict) and answer.get("is_paused"))

    def _rpc(self, method: str, kwargs: dict, timeout: float, what: str) -> object:
        """The first worker's result of `method` (every worker runs it; with data parallelism vLLM
        returns one engine's results)."""
        body = {"method": method, "kwargs": kwargs, "timeout": timeout}
        try:
            answer = self._call("POST", "/collective_rpc", body=body, timeout=timeout + 5, what=what)
        except ErError as exc:
            if "HTTP 500" in exc.message and method.startswith("er_"):
                raise ErError(f"{exc.message} (does the server load er's worker extension? start it with "
                              f"`er serve`, or pass --worker-extension-cls {WORKER_EXTENSION})",
                              source=self.url) from None
            raise
        results = answer.get("results") if isinstance(answer, dict) else None
        return results[0] if results else None

    def reload_weights(self, path: str, step: int | None = None, timeout: float = RELOAD_TIMEOUT) -> float:
        """Load checkpoint directory `path` (as the server sees it: a shared filesystem) into every
        worker in place; returns the seconds it took."""
        kwargs = {"weights_path": path}
        if step is not None:
            kwargs["step"] = str(step)  # /collective_rpc's contract: string arguments
        t0 = time.perf_counter()
        self._rpc("er_reload_weights", kwargs, timeout, what=f"reloading {path}")
        return time.perf_counter() - t0

    def reset_prefix_cache(self, tries: int = PREFIX_RESET_TRIES, wait: float = 0.25) -> None:
        """Drop cached prefix KV; retried while blocks are still held (`{"success": false}`)."""
        for _ in range(tries):
            answer = self._call("POST", "/reset_prefix_cache", what="resetting the prefix cache")
            if not isinstance(answer, dict) or answer.get("success", True):
                return
            time.sleep(wait)
        raise ErError(f"resetting the prefix cache: still refused after {tries} tries (blocks held)",
                      source=self.url)

    def weights(self) -> Weights:
        """Which checkpoint the workers hold (path, step) and the model's shape, from er's extension."""
        info = self._rpc("er_weights", {}, CONTROL_TIMEOUT, what="asking which weights it holds")
        if not isinstance(info, dict) or "path" not in info:
            raise ErError(f"asking which weights it holds: unexpected answer {str(info)[:100]!r}", source=self.url)
        step = info.get("step")
        if step is None:
            from er.train.checkpoint import checkpoint_step

            step = checkpoint_step(info["path"])
        return Weights(str(info["path"]), int(step) if step is not None else None, info.get("architecture"),
                       info.get("vocab_size"), info.get("hidden_size"), info.get("layers"), info.get("logprobs_mode"))

    def set_version(self, label: str) -> None:
        """vLLM's own weight label (`/weight_info`; 0.33 returns it per token as `weight_versions`)."""
        self._call("POST", "/update_weight_version", body={"new_version": label}, what="labelling the weights")

    def version(self) -> str | None:
        answer = self._call("GET", "/weight_info", what="reading the weight label")
        return answer.get("weight_version") if isinstance(answer, dict) else None

    def check_compatible(self, path: str) -> Weights:
        """The server's Weights, after checking that checkpoint `path` has the same architecture and shape
        (a server of another model cannot take its weights in place); UsageError naming both otherwise."""
        held = self.weights()
        shape = checkpoint_shape(path)
        mine = (held.architecture, held.vocab_size, held.hidden_size, held.layers)
        theirs = (shape.get("architecture"), shape.get("vocab_size"), shape.get("hidden_size"), shape.get("layers"))
        if any(a is not None and b is not None and a != b for a, b in zip(mine, theirs)):
            def show(t):
                return f"{t[0]} (vocab {t[1]}, hidden {t[2]}, {t[3]} layers)"

            raise UsageError(f"{self.url} serves another model: {show(mine)} from {held.path}; {path} is "
                             f"{show(theirs)}")
        return held

    def move_weights(self, path: str, step: int | None = None, *, drain_timeout: float = DRAIN_TIMEOUT,
                     reload_timeout: float = RELOAD_TIMEOUT) -> float:
        """pause (drain) -> reload -> reset prefix cache -> label -> resume (always). Returns the seconds
        the server was paused. `path` is resolved (a `latest` link names its step-N) before it is sent."""
        real = os.path.realpath(path)
        refuse_adapter(real)
        if step is None:
            from er.train.checkpoint import read_step

            step = read_step(real)
        self.check_compatible(real)
        t0 = time.perf_counter()
        self.pause("wait", timeout=drain_timeout)
        failure: ErError | None = None
        try:
            self.reload_weights(real, step, timeout=reload_timeout)
            self.reset_prefix_cache()
            self.set_version(f"step-{step}" if step is not None else os.path.basename(real))
        except ErError as exc:
            failure = exc
        finally:
            try:
                self.resume()
            except ErError as exc:
                if failure is None:
                    raise
                raise ErError(f"{failure.message}; and then {exc.message}", source=self.url) from None
        if failure is not None:
            raise failure
        return time.perf_counter() - t0


def _lora_hint(message: str) -> str:
    """What to do about a refused adapter load, when vLLM's answer says why."""
    if "HTTP 404" in message:
        return (" (the server's runtime LoRA endpoints are off: start it with `er serve -m ADAPTER` or `er serve -m "
                "BASE --max-lora-rank R`, or VLLM_ALLOW_RUNTIME_LORA_UPDATING=1 and --enable-lora)")
    if "LoRA is not enabled" in message or "enable-lora" in message:
        return " (the server was started without LoRA: `er serve -m BASE --max-lora-rank R` enables it)"
    return ""


def refuse_adapter(path: str, flag: str = "-m") -> None:
    """UsageError for a LoRA adapter where full weights must move (`move_weights`: an in-place reload
    takes a save_pretrained model; adapters go through er.sampling.server_adapters)."""
    from er.train.lora import is_adapter_dir

    if is_adapter_dir(path):
        raise UsageError(f"{flag} {path} is a LoRA adapter, not full weights: load it with "
                         "er.sampling.server_adapters (er sample --server -m ADAPTER does)")


def checkpoint_shape(path: str) -> dict:
    """architecture / vocab_size / hidden_size / layers from `path`/config.json ({} when unreadable)."""
    try:
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return {}
    return model_shape(config)


def model_shape(config: dict) -> dict:
    """The fields that decide whether one model's weights load into another's engine."""
    text = config.get("text_config") or config
    archs = config.get("architectures") or [None]
    return {"architecture": archs[0], "vocab_size": text.get("vocab_size"), "hidden_size": text.get("hidden_size"),
            "layers": text.get("num_hidden_layers")}
