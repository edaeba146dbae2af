"""`er sample --server URL[,URL...]`: sampling from running OpenAI-compatible servers (`er serve`, vLLM, SGLang).

The data plane of served sampling; the control plane (health, which weights, moving weights) is
er.sampling.server_control. The records are those of the in-process vLLM backend (er.sampling.vllm):

- the prompt is templated here, with the tokenizer of `-m` (the one `er update` trains with), and sent
  as token ids to `/v1/completions`, so `prompt_token_ids` are exactly what the server conditioned on;
- one HTTP request per `Request` (one prompt, `n` samples, `seed`): vLLM gives sample k the seed
  `seed + k`, the rule the in-process backend relies on, so a sample's randomness is its own seed's;
- every sampling field is sent explicitly (a server's defaults differ from `vllm.LLM`'s: `max_tokens`
  16, the model's generation_config.json): `temperature`, `top_p`, `top_k` 0, `min_p` 0, the penalties
  neutral, `stop` none, `stop_token_ids`, `ignore_eos` false, `min_tokens` 0, `skip_special_tokens`
  false; `return_token_ids` (completion ids, stop token included: counted and trained on) and, with
  `--logprobs`, `logprobs: 0` (the sampled token's log-prob) with `return_tokens_as_token_ids`;
- stop scaling travels as `vllm_xargs.er_stop_scale` (a list: vllm_xargs carries scalars and lists only)
  to the `StopScaleProcessor` that `er serve` loads server-side.

Concurrency: aiohttp on an event loop in a background thread, at most `--max-inflight` requests in
flight over all servers (the servers batch them; more only queues). `generate` returns at once; its
result is a sequence whose items wait for their own requests, so the Sampler writes each group as soon
as it and the groups before it are done (`| head -1` returns after the first). Keep-alive is 2 s,
under uvicorn's 5 s, so a connection the server already closed is never reused (SkyRL's finding).

Several URLs: each request goes to the live server with the fewest requests in flight. A server
that refuses a connection, drops one, answers 5xx or passes `--request-timeout` is dropped for the
rest of the run (one line on stderr); its requests in flight are cancelled and sent again to the
others with new request ids (vLLM refuses a duplicate id), so no group is lost or written twice.
The summary counts the re-sent requests. A sample the server aborted (`finish_reason: "abort"`, a
`/pause?mode=abort` by someone else) is sent again too. With no server left the command stops: one
line, exit 1, the groups already written kept.

Weights: the servers must hold `-m` (a checkpoint such as `ckpt/latest` included). When one holds
another checkpoint of the same model, it is moved to `-m` first (server_control.move_weights: drain,
reload, reset the prefix cache, label, resume); `reload` (`--watch`) moves every server between
chunks. After a move every server is asked which checkpoint it holds, and the run stops unless all
report the new one, so no record is labelled with a step its server does not hold. A LoRA adapter
checkpoint (`er update --lora`) is loaded beside its base under a name of its own and the requests name
it (er.sampling.server_adapters): no drain, no reload of the base. Records carry
`sampling.server` (the URL that produced the sample) and `policy.step`. Not detected: another client
moving a shared server's weights while a chunk is in flight (vLLM 0.32 does not label responses with
a weight version; 0.33's `return_weight_versions` would).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

from er.errors import ErError, UsageError
from er.io import log
from er.sampling.base import Completion, Request, SamplingConfig
from er.sampling.server_adapters import AdapterHistory

DEFAULT_MAX_INFLIGHT = 256  # vLLM's default max_num_seqs: what one server runs at once
DEFAULT_REQUEST_TIMEOUT = 1800.0  # a whole non-streamed generation: long reasoning on a slow device
KEEPALIVE = 2.0  # seconds; under the server's 5 s (VLLM_HTTP_TIMEOUT_KEEP_ALIVE)
BUSY_WAIT = 0.5  # seconds before asking a paused server (HTTP 503) again


@dataclass
class ServerOptions:
    """What `--server`, `--api`, `--api-key-env`, `--max-inflight` and `--request-timeout` say."""

    urls: list[str]
    api: str = "completions"
    api_key_env: str | None = None
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT

    @classmethod
    def parse(cls, servers: str, api: str, api_key_env: str | None, max_inflight: int,
              request_timeout: float) -> "ServerOptions":
        from er.sampling.server_control import normalize_url

        urls = [normalize_url(u) for u in servers.split(",") if u.strip()]
        if not urls:
            raise UsageError("--server needs at least one URL (http://HOST:PORT[,...])")
        if len(set(urls)) != len(urls):
            raise UsageError(f"--server names a URL twice: {servers}")
        if api not in ("completions", "chat"):
            raise UsageError(f"--api must be completions or chat, not {api!r}")
        if max_inflight < 1:
            raise UsageError(f"--max-inflight must be at least 1, not {max_inflight}")
        if not request_timeout > 0:
            raise UsageError(f"--request-timeout must be > 0, not {request_timeout}")
        if api_key_env is not None and not os.environ.get(api_key_env):
            raise UsageError(f"--api-key-env {api_key_env}: that environment variable is not set")
        return cls(urls, api, api_key_env, max_inflight, request_timeout)

    @property
    def api_key(self) -> str | None:
        """The key itself, read from the environment only (never argv, never a record)."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


def check_flags(backend: str, opt) -> None:
    """--server replaces the in-process backends; the long-input methods need the transformers one."""
    if backend not in ("auto",):
        raise UsageError(f"--backend {backend} and --server exclude each other (the server is the backend)")
    if opt.longctx is not None and opt.longctx.any():
        raise UsageError(f"{', '.join(opt.longctx.flags())}: only the transformers backend supports these "
                         "(not --server)")


def _first_line(text: str, limit: int = 300) -> str:
    return " ".join(str(text).split())[:limit]


def _http_detail(raw: bytes) -> str:
    import orjson

    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _first_line(raw.decode(errors="replace"))
    if isinstance(parsed, dict):
        inner = parsed.get("error") or parsed.get("detail") or parsed.get("message") or parsed
        return _first_line(inner.get("message", inner) if isinstance(inner, dict) else inner)
    return _first_line(parsed)


class ServerGone(Exception):
    """One attempt on one server failed in a way that says the server, not the request, is broken."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Dispatcher:
    """Requests in flight over several servers: fewest in flight first, failover, a bound on the total.

    `submit(path, body, accept)` returns a concurrent Future of (url, answer). `accept(answer)` is
    False for an answer to send again (an aborted sample); 4xx answers are the request's fault and
    end the run; connection failures, 5xx and timeouts drop the server and go elsewhere.
    """

    def __init__(self, urls: list[str], *, max_inflight: int, timeout: float, api_key: str | None = None,
                 names: dict[str, str] | None = None):
        self.urls = list(urls)
        self.names = names or {}  # url -> the model name it serves (vLLM refuses any other in `model`)
        self.max_inflight = max_inflight
        self.timeout = timeout
        self.api_key = api_key
        self.inflight = {u: 0 for u in self.urls}
        self.dead: dict[str, str] = {}  # url -> why it was dropped
        self.retries = 0
        self._tasks: dict[str, set] = {u: set() for u in self.urls}
        self._posts: set = set()  # every submitted request's task, until it is done
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="er-server-client", daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._open(), self.loop).result()

    async def _open(self) -> None:
        import aiohttp

        self._sem = asyncio.Semaphore(self.max_inflight)
        # limit=0: the semaphore is the bound; aiohttp's own default (100) would queue silently
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE)
        self.session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))

    def submit(self, path: str, body: dict, accept: Callable[[dict], bool] | None = None) -> Future:
        return asyncio.run_coroutine_threadsafe(self._tracked(self._post(path, body, accept)), self.loop)

    async def _tracked(self, coro):
        task = asyncio.current_task()
        self._posts.add(task)
        try:
            return await coro
        finally:
            self._posts.discard(task)

    def _pick(self) -> str:
        alive = [u for u in self.urls if u not in self.dead]
        if not alive:
            why = "; ".join(f"{u}: {r}" for u, r in self.dead.items())
            raise ErError(f"no server left ({why})")
        return min(alive, key=lambda u: self.inflight[u])  # ties: the order given

    def _drop(self, url: str, reason: str) -> None:
        if url in self.dead:
            return
        self.dead[url] = reason
        left = len(self.urls) - len(self.dead)
        if left:
            log(f"er sample: {url}: {reason}; its requests go to the other {left} server(s)")
        for task in list(self._tasks[url]):
            task.cancel()  # its requests in flight: sent again elsewhere, not waited for

    async def _post(self, path: str, body: dict, accept) -> tuple[str, dict]:
        async with self._sem:
            attempt = 0
            while True:
                url = self._pick()
                if attempt:
                    self.retries += 1
                attempt += 1
                # a fresh id per attempt: vLLM answers 400 "already running" to an id it still holds
                sent = dict(body, request_id=f"er-{uuid.uuid4().hex}")
                if url in self.names:
                    sent["model"] = self.names[url]
                task = asyncio.ensure_future(self._once(url, path, sent))
                self._tasks[url].add(task)
                self.inflight[url] += 1
                try:
                    await asyncio.wait({task})  # never raises for the task's own outcome
                finally:
                    self.inflight[url] -= 1
                    self._tasks[url].discard(task)
                if task.cancelled():  # the server was dropped while this request was on it
                    continue
                exc = task.exception()
                if isinstance(exc, ServerGone):
                    self._drop(url, exc.reason)
                    continue
                if exc is not None:
                    raise exc
                status, answer = task.result()
                if status == 503:  # paused (a weight move in progress) or overloaded: ask again shortly
                    await asyncio.sleep(BUSY_WAIT)
                    continue
                if accept is not None and not accept(answer):
                    continue
                return url, answer

    async def _once(self, url: str, path: str, body: dict) -> tuple[int, dict | None]:
        import aiohttp
        import orjson

        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            async with self.session.post(url + path, data=orjson.dumps(body), headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                raw = await resp.read()
                status = resp.status
        except asyncio.TimeoutError:
            raise ServerGone(f"no answer within --request-timeout {self.timeout:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            raise ServerGone(f"cannot connect ({_first_line(exc.os_error or exc, 120)})") from None
        except (aiohttp.ClientError, ConnectionError) as exc:  # dropped mid-answer: the server died
            raise ServerGone(f"connection lost ({type(exc).__name__}: {_first_line(exc, 120)})") from None
        if status == 503:
            return status, None
        if status >= 500:
            raise ServerGone(f"HTTP {status}: {_http_detail(raw)}")
        if status >= 400:
            hint = " (the server wants an API key: --api-key-env VAR)" if status == 401 else ""
            raise ErError(f"HTTP {status}: {_http_detail(raw)}{hint}", source=url + path)
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ServerGone("the answer is not JSON (is this an OpenAI-compatible server?)") from None
        if not isinstance(answer, dict):
            raise ServerGone("the answer is not a JSON object (is this an OpenAI-compatible server?)")
        return status, answer

    def close(self) -> None:
        async def shut():
            # every request still queued or in flight (closing a connection makes vLLM abort it), waited
            # for here: a request left to wake after the session closed would fail on it, and with the
            # loop stopped its error would be printed at exit (`| head -1`, Ctrl-C)
            pending = [*self._posts, *(t for tasks in self._tasks.values() for t in tasks)]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self.session.close()

        if self.loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(shut(), self.loop).result(timeout=10)
            except Exception:  # closing after a failure: nothing more to save
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


def wait(future: Future):
    """The future's result; polls so that a Ctrl-C in the main thread is not held up by the wait."""
    while True:
        try:
            return future.result(timeout=0.2)
        except TimeoutError:
            continue


class Pending(Sequence):
    """The results of `generate`, in request order; an item (or a slice) waits for its own requests."""

    def __init__(self, items: list[tuple[Future, Callable[[str, dict], list[Completion]]]]):
        self.items = items  # (future of (url, answer), parse)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return [parse(*wait(f)) for f, parse in self.items[key]]
        future, parse = self.items[key]
        return parse(*wait(future))


def completion_body(r: Request, cfg: SamplingConfig) -> dict:
    """The `/v1/completions` body of one request: every field that decides the samples, explicit
    (`model` is added per server by the Dispatcher)."""
    body = {
        "prompt": list(r.prompt_ids), "n": r.n, "max_tokens": r.max_tokens, "seed": r.seed,
        "temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": 0, "min_p": 0.0,
        "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
        "stop": [], "stop_token_ids": list(r.stop_ids), "ignore_eos": False, "min_tokens": 0,
        "skip_special_tokens": False, "include_stop_str_in_output": False, "echo": False, "stream": False,
        "return_token_ids": True,
    }
    if cfg.logprobs:
        body.update(logprobs=0, return_tokens_as_token_ids=True)
    if r.stop_scale is not None:
        s = r.stop_scale
        # vllm_xargs carries scalars and lists only: er.sampling.vllm_worker.stop_scale_xarg's 4-list
        # (not imported: that module imports vLLM, which a client does not need)
        body["vllm_xargs"] = {"er_stop_scale": [int(s.token), float(s.bias),
                                                -1 if s.think_end is None else int(s.think_end), int(bool(s.closed))]}
    return body


def not_aborted(answer: dict) -> bool:
    return not any(c.get("finish_reason") == "abort" for c in answer.get("choices") or [])


def parse_completions(url: str, answer: dict, n: int, logprobs: bool) -> list[Completion]:
    """The n completions of one `/v1/completions` answer, by choice index."""
    choices = sorted(answer.get("choices") or [], key=lambda c: c.get("index", 0))
    if len(choices) != n:
        raise ErError(f"asked for n={n} samples, got {len(choices)} (the server does not honour n)", source=url)
    out = []
    for c in choices:
        ids = c.get("token_ids")
        if not isinstance(ids, list):
            raise ErError("the answer has no token_ids (return_token_ids needs vLLM or SGLang; "
                          "--api chat evaluates other servers)", source=url)
        lp = None
        if logprobs:
            lp = (c.get("logprobs") or {}).get("token_logprobs")
            if not isinstance(lp, list) or len(lp) != len(ids):
                raise ErError(f"the answer has {len(lp) if isinstance(lp, list) else 'no'} log-probs for "
                              f"{len(ids)} tokens", source=url)
        finish = "stop" if c.get("finish_reason") == "stop" else "length"
        out.append(Completion(list(ids), finish, lp, server=url))
    return out


def in_parallel(fn, items: list):
    """fn(item) for every item at once (one thread each); the first failure is raised after all finish."""
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        futures = [pool.submit(fn, x) for x in items]
        results, failure = [], None
        for f in futures:
            try:
                results.append(f.result())
            except ErError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return results


class ServerBackend:
    """A sampling backend (er.sampling.base) whose engine is one or more running servers."""

    name = "server"

    def __init__(self, options: ServerOptions, model_path: str, *, logprobs_mode: str = "processed",
                 note: Callable[[str, int], None] | None = None):
        from er.sampling.server_control import ServerControl

        self.options = options
        self.note = note
        self.controls = [ServerControl(u, api_key=options.api_key) for u in options.urls]
        served = in_parallel(self._connect, self.controls)
        self.base_names = {c.url: s.name for c, s in zip(self.controls, served)}
        # url -> the model name its requests carry: the base's, or the LoRA adapter's it serves now; the
        # Dispatcher reads this dict, so a reload (between chunks, nothing in flight) switches the requests
        self.names = dict(self.base_names)
        self.history: dict[str, AdapterHistory] = {}
        lens = [s.max_model_len for s in served if s.max_model_len]
        self.max_context = min(lens) if lens else None
        self.held = self._hold(model_path)
        self.dispatcher = Dispatcher(options.urls, max_inflight=options.max_inflight,
                                     timeout=options.request_timeout, api_key=options.api_key, names=self.names)
        self.logprobs_mode = logprobs_mode

    @staticmethod
    def _connect(control):
        control.health()
        return control.served_model()

    def _hold(self, path: str) -> dict:
        """Make every server hold checkpoint `path` (moving those that hold another one); url -> Weights|None."""
        real = os.path.realpath(path)
        return dict(zip([c.url for c in self.controls], in_parallel(lambda c: self._place(c, real, path),
                                                                   self.controls)))

    def _place(self, control, real: str, shown: str):
        """Make the server behind `control` serve checkpoint `real` (a full model, or a LoRA adapter on its
        base) and point its requests at it; its Weights, or None for a server that cannot say."""
        from er.sampling.server_adapters import place_adapter
        from er.train.lora import adapter_base, is_adapter_dir

        adapter = real if is_adapter_dir(real) else None
        weights = os.path.realpath(adapter_base(real)) if adapter else real
        try:
            held = control.check_compatible(weights)  # UsageError: a server of another model
        except UsageError:
            raise
        except ErError as exc:
            if "not in dev mode" in exc.message or "worker extension" in exc.message:
                # a plain `vllm serve`: it cannot say which weights it holds, nor take others
                log(f"er sample: {control.url} cannot say which weights it holds (not started with `er "
                    f"serve`); its records are labelled with -m {shown}")
                held = None
            else:
                raise
        if held is not None and os.path.realpath(held.path) != weights:
            log(f"er sample: {control.url} holds {held.path}; moving it to {weights}")
            control.move_weights(weights)
            held = self._verify(control, weights)
        if adapter is None:
            self.names[control.url] = self.base_names[control.url]
        else:
            self.names[control.url] = place_adapter(control, adapter)
            self.history.setdefault(control.url, AdapterHistory()).add(self.names[control.url])
        return held

    @staticmethod
    def _verify(control, real: str):
        """The server's Weights once it reports `real`; ErError otherwise (no record may name a step it
        does not hold)."""
        from er.train.checkpoint import read_step

        held = control.weights()
        want = read_step(real)
        if os.path.realpath(held.path) != real or (want is not None and held.step != want):
            raise ErError(f"after the reload the server reports {held.path} (step {held.step}), not {real}",
                          source=control.url)
        return held

    def reload(self, path: str) -> float:
        """Move every server to checkpoint `path` (in parallel) and check that all switched; seconds taken.
        A LoRA adapter is loaded beside the base under a new name (er.sampling.server_adapters): no drain."""
        from er.train.lora import is_adapter_dir

        real = os.path.realpath(path)
        t0 = time.perf_counter()

        def one(control):
            if self.held.get(control.url) is None and not is_adapter_dir(real):
                raise ErError("cannot take new weights in place (not started with `er serve`)", source=control.url)
            held = self._place(control, real, path)
            if control.url in self.history:
                self.history[control.url].retire(control)
            return held

        for control, held in zip(self.controls, in_parallel(one, self.controls)):
            self.held[control.url] = held
        return time.perf_counter() - t0

    def generate(self, requests: list[Request], cfg: SamplingConfig) -> Pending:
        items = []
        for r in requests:
            future = self.dispatcher.submit("/v1/completions", completion_body(r, cfg), not_aborted)
            items.append((future, lambda url, answer, n=r.n: parse_completions(url, answer, n, cfg.logprobs)))
        return Pending(items)

    def close(self) -> None:
        self.dispatcher.close()
        if self.note is not None and self.dispatcher.retries:
            self.note("requests re-sent to another server", self.dispatcher.retries)
