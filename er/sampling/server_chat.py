"""`er sample --server URL --api chat -m NAME`: evaluate any OpenAI-compatible chat endpoint.

Messages go to `/v1/chat/completions` and the server applies its own chat template (so these rows
measure the served model as served; `er update` does not train on them unless they carry token ids).
`-m` is the model name the server knows (a local model directory also lends its tokenizer, used to
count `think_tokens` from token ids). The key, when needed, is read from the environment variable
named by `--api-key-env`.

What comes back depends on the server. A probe (one short request, n=2) asks before the run:

- token ids: vLLM and SGLang return `token_ids` (and `prompt_token_ids`) with `return_token_ids`; the
  lengths are then counted from them (`sampling.length_from: "token_ids"`). Otherwise (hosted APIs,
  llama.cpp) from `usage.completion_tokens` / `usage.prompt_tokens` (`"usage"`), and hidden reasoning,
  where the provider reports it (`usage.completion_tokens_details.reasoning_tokens`), is `think_tokens`;
- `n`: when the server returns fewer choices than asked, or no token ids (usage is summed over the
  choices of a request, so it would not say each sample's length), every sample is its own request,
  sample k with the seed `seed + k` (hosted APIs may ignore seeds);
- log-probs (`--logprobs`): `logprobs.content[].logprob`, kept only with token ids to align them;
- vLLM's extra fields (`return_token_ids`, `top_k`, `skip_special_tokens`...): a server that refuses
  unknown fields (HTTP 400) is asked again with the standard OpenAI fields only.

One line on stderr says what the probe found and what the run falls back to. The record fields are
those of `er sample` (schemas/sample.json) with `sampling.api: "chat"`, `sampling.server` and
`sampling.length_from`; `policy.step` is null (the weights are the server's). Interventions that edit
the prompt or the logits (--budgets, --stop-scale, ...) need the completions API and are refused.
A request the server refuses (HTTP 4xx, e.g. a prompt over its context) ends the run with one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator

from er.errors import ErError, UsageError
from er.io import log
from er.sampling.server_client import Dispatcher, not_aborted, wait
from er.sampling.sampler import Sampler, prompt_seed
from er.schema import fields_added

PROBE_MESSAGES = [{"role": "user", "content": "Say OK."}]
VLLM_EXTRAS = {"return_token_ids": True, "return_tokens_as_token_ids": True, "skip_special_tokens": False,
               "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0}


@dataclass
class Capabilities:
    extras: bool = True  # the server takes vLLM's extra fields
    token_ids: bool = False
    n: bool = False
    logprobs: bool = False
    max_tokens_field: str = "max_tokens"

    def describe(self, want_logprobs: bool) -> str:
        parts = ["token ids: yes" if self.token_ids else "no token ids: lengths from usage.completion_tokens"]
        parts.append("n honoured" if self.n and self.token_ids else "one request per sample (seed + k)")
        if want_logprobs:
            parts.append("log-probs: yes" if self.logprobs and self.token_ids else "no log-probs")
        if not self.extras:
            parts.append("standard OpenAI fields only")
        return "; ".join(parts)


def check_flags(opt) -> None:
    iv = opt.interventions
    used = [flag for flag, on in (("--budgets", iv.budgets), ("--target-length", iv.target),
                                  ("--level", iv.levels), ("--mode", iv.mode), ("--stop-scale", iv.stop_scale))
            if on]
    if used:
        raise UsageError(f"{', '.join(used)}: need --api completions (the chat API templates server-side)")
    if opt.chat is False:
        raise UsageError("--no-chat and --api chat exclude each other")


class ChatClient:
    """Chat requests over a Dispatcher, shaped by what the probe found."""

    def __init__(self, dispatcher: Dispatcher, model: str, opt):
        self.dispatcher = dispatcher
        self.model = model
        self.opt = opt
        self.caps = Capabilities()

    def body(self, messages: list, n: int, seed: int | None) -> dict:
        body = {"model": self.model, "messages": messages, "n": n, self.caps.max_tokens_field: self.opt.max_tokens,
                "temperature": self.opt.temperature, "top_p": self.opt.top_p, "stream": False}
        if seed is not None:
            body["seed"] = seed
        if self.opt.logprobs:
            body["logprobs"] = True
        if self.caps.extras:
            body.update(VLLM_EXTRAS)
            if self.opt.logprobs:
                body["top_logprobs"] = 0
        return body

    def probe(self) -> Capabilities:
        """Ask once (n=2, 4 tokens) what the server returns; retry with fewer fields on HTTP 400."""
        caps = self.caps
        answer = None
        for _ in range(3):
            body = dict(self.body(PROBE_MESSAGES, 2, 0), logprobs=True, **{caps.max_tokens_field: 4})
            body.pop("top_logprobs", None)
            if caps.extras:
                body["top_logprobs"] = 0
            try:
                _, answer = wait(self.dispatcher.submit("/v1/chat/completions", body))
                break
            except ErError as exc:
                if "HTTP 400" not in exc.message:
                    raise
                if "max_completion_tokens" in exc.message and caps.max_tokens_field == "max_tokens":
                    caps.max_tokens_field = "max_completion_tokens"  # OpenAI's reasoning models
                elif caps.extras:
                    caps.extras = False
                else:
                    raise
        if answer is None:
            raise ErError("the chat endpoint refused every form of the probe request", source=self.dispatcher.urls[0])
        choices = answer.get("choices") or []
        caps.n = len(choices) == 2
        first = choices[0] if choices else {}
        caps.token_ids = isinstance(first.get("token_ids"), list)
        content = (first.get("logprobs") or {}).get("content")
        caps.logprobs = isinstance(content, list) and bool(content)
        return caps


@dataclass
class _Prepared:
    row: tuple
    index: int
    group_id: str
    messages: list
    futures: list = field(default_factory=list)  # per request: (first sample index, future)


class ChatSampler:
    """run_stream's sampler (prepare / group_id / generate_chunk) for the chat API: no local template."""

    group_id = Sampler.group_id  # the same `id` / `id#k` rule

    def __init__(self, client: ChatClient, opt, model_name: str, tokenizer=None):
        self.client = client
        self.opt = opt
        self.model_name = model_name
        self.tok = tokenizer
        self.seen_ids: dict[str, int] = {}
        end = opt.interventions.think_end
        self.think_ids = tokenizer.encode(end, add_special_tokens=False) if tokenizer is not None and end else []

    def prepare(self, row: tuple, index: int) -> _Prepared:
        source, line, record = row
        prompt = record.get("prompt")
        if prompt is None:
            raise ErError("missing field 'prompt'")
        if isinstance(prompt, str):
            messages = [{"role": "user", "content": prompt}]
        elif isinstance(prompt, list) and all(isinstance(m, dict) and "role" in m and isinstance(m.get("content"), str)
                                              for m in prompt):
            messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
        else:
            raise ErError("field 'prompt' must be a string or a list of {role, content}")
        if self.opt.system and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": self.opt.system})
        if record.get("id") is None:
            row = (source, line, {**record, "id": str(index)})
        return _Prepared(row, index, self.group_id(row[2], index), messages)

    def generate_chunk(self, chunk: list[_Prepared]) -> Iterator[list[dict]]:
        caps = self.client.caps
        together = caps.n and caps.token_ids
        for p in chunk:  # all of the chunk in flight before the first group is awaited
            base = prompt_seed(self.opt.seed, p.index)
            starts = [0] if together else range(self.opt.n)
            for k in starts:
                n = self.opt.n if together else 1
                seed = None if base is None else base + k
                p.futures.append((k, self.client.dispatcher.submit(
                    "/v1/chat/completions", self.client.body(p.messages, n, seed), not_aborted)))
        for p in chunk:
            yield self._records(p, [(k, *wait(f)) for k, f in p.futures])

    def _records(self, p: _Prepared, answers: list) -> list[dict]:
        owned = fields_added("sample", "advantaged")
        base = {k: v for k, v in p.row[2].items() if k not in owned}
        caps = self.client.caps
        out = []
        for start, url, answer in answers:
            choices = sorted(answer.get("choices") or [], key=lambda c: c.get("index", 0))
            want = self.opt.n if (caps.n and caps.token_ids) else 1
            if len(choices) != want:
                raise ErError(f"asked for {want} choice(s), got {len(choices)}", source=url)
            usage = answer.get("usage") or {}
            for j, c in enumerate(choices):
                out.append(self._record(base, p, start + j, url, c, answer, usage))
        return out

    def _record(self, base: dict, p: _Prepared, idx: int, url: str, choice: dict, answer: dict, usage: dict) -> dict:
        message = choice.get("message") or {}
        text = message.get("content") or ""
        ids = choice.get("token_ids") if isinstance(choice.get("token_ids"), list) else None
        prompt_ids = answer.get("prompt_token_ids") if isinstance(answer.get("prompt_token_ids"), list) else None
        sampling = {"temperature": self.opt.temperature, "top_p": self.opt.top_p, "max_tokens": self.opt.max_tokens,
                    "seed": self.opt.seed, "chat": True, "server": url, "api": "chat",
                    "length_from": "token_ids" if ids is not None else "usage"}
        if ids is not None:
            completion_tokens = len(ids)
            prompt_tokens = len(prompt_ids) if prompt_ids is not None else usage.get("prompt_tokens")
        else:
            completion_tokens, prompt_tokens = usage.get("completion_tokens"), usage.get("prompt_tokens")
        if not isinstance(completion_tokens, int) or not isinstance(prompt_tokens, int):
            raise ErError("the answer has neither token_ids nor usage token counts", source=url)
        rec = dict(base)
        rec.update({
            "group_id": p.group_id, "sample_idx": idx, "group_size": self.opt.n, "completion": text,
            "completion_tokens": completion_tokens, "prompt_tokens": prompt_tokens,
            "finish_reason": "length" if choice.get("finish_reason") == "length" else "stop",
            "policy": {"model": self.model_name, "step": None}, "sampling": sampling,
            "think_tokens": self._think(ids, usage),
        })
        if prompt_ids is not None:
            rec["prompt_token_ids"] = list(prompt_ids)
        if self.opt.logprobs and ids is not None:
            content = (choice.get("logprobs") or {}).get("content") or []
            if len(content) != len(ids):
                raise ErError(f"the answer has {len(content)} log-probs for {len(ids)} tokens", source=url)
            rec["token_ids"] = list(ids)
            rec["logprobs"] = [float(t["logprob"]) for t in content]
        return rec

    def _think(self, ids, usage: dict) -> int | None:
        if ids is not None and self.tok is not None:
            from er.sampling.think import think_tokens

            return think_tokens(ids, self.opt.interventions.think_end, self.think_ids,
                                lambda x: self.tok.decode(x, skip_special_tokens=False))
        reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
        return reasoning if isinstance(reasoning, int) and reasoning > 0 else None


def open_chat(options, model: str | None, opt):
    """(ChatSampler, Dispatcher) for `--api chat`, after the probe (its finding on stderr)."""
    from er.sampling.server_control import ServerControl

    check_flags(opt)
    if not model:
        raise UsageError("--api chat needs -m NAME (the model name the server knows)")
    tokenizer = None
    name = model
    if os.path.isdir(model):
        from er.models import load_tokenizer

        tokenizer = load_tokenizer(model)
    control = ServerControl(options.urls[0], api_key=options.api_key)
    try:  # a vLLM server knows a local model by its resolved path
        served = control.served_model()
        if os.path.isdir(model) and os.path.realpath(model) in (served.name, served.root):
            name = served.name
    except ErError:
        pass  # not every endpoint lists models
    dispatcher = Dispatcher(options.urls, max_inflight=options.max_inflight, timeout=options.request_timeout,
                            api_key=options.api_key)
    client = ChatClient(dispatcher, name, opt)
    try:
        caps = client.probe()
    except BaseException:
        dispatcher.close()
        raise
    log(f"er sample: {', '.join(options.urls)} (chat API): {caps.describe(opt.logprobs)}")
    return ChatSampler(client, opt, model, tokenizer), dispatcher
