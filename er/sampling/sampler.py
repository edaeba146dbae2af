"""`er sample`'s engine: prompt records in, G sample records per prompt out (DESIGN.md, schemas/sample.json).

Prompts are read a chunk at a time, rendered (the chat template when `prompt` is a message list, or a
string and the tokenizer has a chat template, unless `chat=False` (`--no-chat`); `chat=True` (`--chat`)
requires one; `system` adds a system turn; `sampling.chat` records which), changed by the interventions (er.sampling.interventions),
tokenized, completed by a backend (er.sampling.hf or er.sampling.vllm), and written back in input
order, the G samples of a prompt contiguous. Between chunks the policy is reloaded when `--watch`
sees a new checkpoint (er.sampling.policy).

Per sample: `group_id` (the prompt's `id`; `id#k` for its k-th repeat, e.g. later epochs of
`--loop`), `sample_idx`, `group_size`, `completion` (decoded with special tokens kept, e.g.
`</think>`, minus the final stop token), `completion_tokens` (generated ids, the stop token
included), `think_tokens` (er.sampling.think), `prompt_tokens` (prefill included), `finish_reason`,
`policy {model, step}`, `sampling {temperature, top_p, max_tokens, seed, ...}`; with logprobs `token_ids` and `logprobs`.

Seeds: prompt number i of the stream (0, 1, ... over all epochs) gets the base seed
blake2b(f"{seed}:{i}") mod 2^30 and its sample k uses base + k (vLLM's child-seed rule), so what a
prompt gets does not depend on the chunk or batch it ran in.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from er.errors import ErError, UsageError
from er.sampling.base import Request, SamplingConfig, StopScale
from er.sampling.interventions import Interventions
from er.sampling.think import think_tokens
from er.schema import fields_added
from er.signals import atomic_writes


def prompt_seed(seed: int | None, index: int) -> int | None:
    if seed is None:
        return None
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 30) - 1)


@dataclass
class SampleOptions:
    n: int = 1
    max_tokens: int = 1024
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = 0
    logprobs: bool = False
    logprobs_mode: str = "processed"
    chat: bool | None = None  # None: the chat template when the tokenizer has one; True: required; False: raw text
    system: str | None = None
    max_context: int | None = None
    interventions: Interventions = field(default_factory=Interventions)
    longctx: object = None  # er.sampling.longctx.LongContext (transformers backend only)

    def __post_init__(self):
        if self.n < 1:
            raise UsageError(f"-n must be at least 1, not {self.n}")
        if self.max_tokens < 1:
            raise UsageError(f"--max-tokens must be at least 1, not {self.max_tokens}")
        if not 0 < self.top_p <= 1:
            raise UsageError(f"--top-p must be in (0, 1], not {self.top_p}")
        if self.temperature < 0:
            raise UsageError(f"--temperature must be >= 0, not {self.temperature}")
        if self.logprobs_mode not in ("processed", "raw"):
            raise UsageError(f"--logprobs-mode must be processed or raw, not {self.logprobs_mode!r}")


@dataclass
class Policy:
    backend: object
    model: str  # as the user named it
    step: int | None


@dataclass
class _Prepared:
    row: tuple  # (source, line, record)
    index: int  # prompt number in the stream (seeds)
    group_id: str
    subgroups: list
    ids: list[list[int]]  # prompt ids per subgroup
    caps: list[int]
    texts: list[str]
    turns: list = field(default_factory=list)  # per subgroup: tokens per chat turn (SirLLM) or None
    infos: list = field(default_factory=list)  # per subgroup: XL3M's selection (the record's long_context) or None
    chat: list = field(default_factory=list)  # per subgroup: whether the chat template rendered the prompt
    contexts: list = field(default_factory=list)  # per subgroup: tokens of the fixed context (Squeezed) or None


class Sampler:
    """Turns prompt rows into sample records with one policy (reloadable)."""

    def __init__(self, policy: Policy, tokenizer, options: SampleOptions,
                 reload: Callable[[], Policy | None] | None = None):
        self.policy = policy
        self.tok = tokenizer
        self.opt = options
        self.reload = reload
        self.cfg = SamplingConfig(options.temperature, options.top_p, options.logprobs, options.logprobs_mode)
        self.seen_ids: dict[str, int] = {}
        iv = options.interventions
        self.eos_ids = self._eos_ids()
        self.stop_scale = None
        self.think_ids = tokenizer.encode(iv.think_end, add_special_tokens=False) if iv.think_end else []
        if iv.stop_scale is not None and iv.stop_scale != 1.0:
            ids = self.think_ids
            if len(ids) == 1:
                self.stop_scale = (ids[0], math.log(iv.stop_scale), ids[0])
            else:
                if not self.eos_ids:
                    raise UsageError("--stop-scale: --think-end is not one token and the tokenizer has no EOS")
                self.stop_scale = (self.eos_ids[0], math.log(iv.stop_scale), None)
        self.mlt_stop_ids = []
        if iv.target_style == "mlt":
            from er.sampling.interventions import MLT_TARGETS

            for t in [*(f"[MLT:{n}]" for n in MLT_TARGETS), "[MLT:>800]"]:
                enc = tokenizer.encode(t, add_special_tokens=False)
                if len(enc) == 1:
                    self.mlt_stop_ids.append(enc[0])

    def _decode(self, ids) -> str:
        return self.tok.decode(ids, skip_special_tokens=False)

    def _eos_ids(self) -> list[int]:
        ids = set()
        if self.tok.eos_token_id is not None:
            ids.add(self.tok.eos_token_id)
        backend_eos = getattr(self.policy.backend, "eos_ids", None) or []
        ids.update(backend_eos)
        return sorted(ids)

    # ---- prompts -------------------------------------------------------------------------------
    def _render(self, record: dict, suffix: str) -> tuple[str, bool, list | None]:
        """The prompt text, whether a chat template produced it (then no extra special tokens), and the messages."""
        prompt = record["prompt"]
        if isinstance(prompt, list):
            messages = [dict(m) for m in prompt]
            if not all(isinstance(m, dict) and isinstance(m.get("content"), str) and "role" in m for m in messages):
                raise ErError("field 'prompt' must be a string or a list of {role, content}")
        elif isinstance(prompt, str):
            messages = [{"role": "user", "content": prompt}] if self._chat_for_text() else None
        else:
            raise ErError(f"field 'prompt' should be a string or a message list, got {type(prompt).__name__}")
        if messages is None:
            return (prompt + ("\n" + suffix if suffix else "")), False, None
        if self.opt.system and not any(m.get("role") == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": self.opt.system})
        if suffix:
            for m in reversed(messages):
                if m.get("role") == "user":
                    m["content"] = m["content"] + "\n" + suffix
                    break
            else:
                messages.append({"role": "user", "content": suffix})
        if not getattr(self.tok, "chat_template", None):
            raise UsageError("the prompt is a message list (or --chat/--system) but the tokenizer has no chat template")
        return self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False), True, messages

    def _chat_for_text(self) -> bool:
        """Whether a string prompt goes through the chat template.

        An instruct model fed raw text often answers nothing at all (SmolLM2-135M-Instruct: 45 of 64
        completions empty), so the template is the default whenever the tokenizer has one.
        """
        if self.opt.chat is None:
            return bool(self.opt.system) or bool(getattr(self.tok, "chat_template", None))
        return self.opt.chat or bool(self.opt.system)

    def _turns(self, text: str, messages: list | None) -> list[int] | None:
        """Tokens per chat turn (a turn starts at each user message after the first) for SirLLM."""
        if not messages:
            return None
        starts = []
        users = [k for k, m in enumerate(messages) if m.get("role") == "user"]
        for k in users[1:]:
            head = self.tok.apply_chat_template(messages[:k], add_generation_prompt=False, tokenize=False)
            if not text.startswith(head):
                raise ErError("--memory sirllm: the chat template does not render message prefixes as prefixes")
            starts.append(len(head))
        offsets = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        bounds = [sum(1 for a, _ in offsets if a < c) for c in starts] + [len(offsets)]
        return [b - a for a, b in zip([0] + bounds[:-1], bounds)]

    def group_id(self, record: dict, index: int) -> str:
        """The prompt's `id` (its position when it has none); `id#k` for its k-th repeat in this stream."""
        rid = str(record.get("id") if record.get("id") is not None else index)
        k = self.seen_ids.get(rid, 0)
        self.seen_ids[rid] = k + 1
        return rid if k == 0 else f"{rid}#{k}"

    def prepare(self, row: tuple, index: int) -> _Prepared:
        source, line, record = row
        if "prompt" not in record:
            from er.data.presets import matching_presets

            hint = " or ".join(f"--preset {name}" for name in matching_presets(record))
            raise ErError("missing field 'prompt'" + (f" (its fields are a benchmark's: add {hint})" if hint else ""))
        if record.get("id") is None:
            record = {**record, "id": str(index)}
            row = (source, line, record)
        group_id = self.group_id(record, index)
        rng = random.Random(f"{self.opt.seed}:{index}:plan")
        subs = self.opt.interventions.plan(record, self.opt.n, rng)
        ids, caps, texts, turns, infos, chat, contexts = [], [], [], [], [], [], []
        from er.sampling.longctx.fixed_context import encode, place

        rendered, fixed = place(record)
        context = self.opt.max_context
        lc = self.opt.longctx
        unbounded = lc is not None and ((lc.attention is not None and not getattr(lc.attention, "per_prompt", False))
                                        or lc.memory is not None)
        for sub in subs:
            text, templated, messages = self._render(rendered, sub.suffix)
            chat.append(templated)
            text += sub.prefill
            enc, context_len = encode(self.tok, text, fixed, not templated)
            cap = self.opt.max_tokens if sub.max_tokens is None else sub.max_tokens
            info = None
            if lc is not None and lc.context is not None:
                backend = self.policy.backend
                enc, info = lc.context.apply(backend.model, backend.pad_id, enc, context, cap)
                context_len = None
            turns.append(self._turns(text, messages) if lc is not None and lc.memory is not None else None)
            infos.append(info)
            if context is not None and not unbounded:
                if len(enc) >= context:
                    raise ErError(f"prompt has {len(enc)} tokens; the model context is {context} (--max-model-len)")
                cap = min(cap, context - len(enc))
            ids.append(enc)
            caps.append(cap)
            texts.append(sub.prefill)
            contexts.append(context_len)
        return _Prepared(row, index, group_id, subs, ids, caps, texts, turns, infos, chat, contexts)

    # ---- generation ------------------------------------------------------------------------------
    def _requests(self, p: _Prepared) -> list[Request]:
        reqs = []
        base = prompt_seed(self.opt.seed, p.index)
        think_end = None
        for sub, ids, cap in zip(p.subgroups, p.ids, p.caps):
            scale = None
            if self.stop_scale is not None:
                token, bias, think_end = self.stop_scale
                closed = think_end is not None and self.opt.interventions.think_end in sub.prefill
                scale = StopScale(token, bias, think_end, closed)
            seed = None if base is None else base + sub.start
            reqs.append(Request(ids, sub.n, cap, seed, list(self.mlt_stop_ids), scale,
                                turns=p.turns[len(reqs)] if p.turns else None,
                                context_len=p.contexts[len(reqs)] if p.contexts else None))
        return reqs

    def generate_chunk(self, chunk: list[_Prepared]) -> Iterator[list[dict]]:
        """Sample records of each prepared prompt of the chunk, one list (a group) per prompt."""
        if self.reload is not None:
            new = self.reload()
            if new is not None:
                self.policy = new
        requests: list[Request] = []
        spans = []
        for p in chunk:
            rs = self._requests(p)
            spans.append((len(requests), len(rs)))
            requests.extend(rs)
        results = self.policy.backend.generate(requests, self.cfg) if requests else []
        for p, (start, count) in zip(chunk, spans):
            yield self._records(p, requests[start:start + count], results[start:start + count])

    def _records(self, p: _Prepared, reqs: list[Request], results) -> list[dict]:
        record = p.row[2]
        out = []
        policy = {"model": self.policy.model, "step": self.policy.step}
        n = self.opt.n
        infos = p.infos or [None] * len(reqs)
        # a prompt's `correct`/`reward`/`advantage` say nothing about these new completions
        owned = fields_added("sample", "advantaged")
        record = {k: v for k, v in record.items() if k not in owned}
        for sub, req, comps, prefill, info, chat in zip(p.subgroups, reqs, results, p.texts, infos, p.chat):
            sampling = {"temperature": self.opt.temperature, "top_p": self.opt.top_p, "max_tokens": req.max_tokens,
                        "seed": self.opt.seed, "chat": chat}
            if self.opt.longctx is not None and self.opt.longctx.any():
                sampling["long_context"] = self.opt.longctx.describe()
            if self.stop_scale is not None:
                sampling["stop_scale"] = self.opt.interventions.stop_scale
                sampling["think_end"] = self.opt.interventions.think_end
            stops = set(self.eos_ids) | set(req.stop_ids)
            for k, c in enumerate(comps):
                ids = c.token_ids
                body = ids[:-1] if c.finish_reason == "stop" and ids and ids[-1] in stops else ids
                text = self.tok.decode(body, skip_special_tokens=False)
                rec = dict(record)
                rec.update(sub.fields)
                rec.update({
                    "group_id": p.group_id, "sample_idx": sub.start + k, "group_size": n, "completion": text,
                    "completion_tokens": len(ids), "prompt_tokens": len(req.prompt_ids),
                    "finish_reason": c.finish_reason, "policy": dict(policy),
                    "sampling": dict(sampling, server=c.server) if c.server else dict(sampling),
                    "think_tokens": think_tokens(ids, self.opt.interventions.think_end, self.think_ids,
                                                 self._decode, prefill),
                    # the exact context the completion was drawn from (template, system turn, intervention
                    # text and prefill included), so `er update` trains on that context and no other
                    "prompt_token_ids": list(req.prompt_ids),
                })
                if prefill:
                    rec["prefix"] = prefill
                if info is not None:
                    rec["long_context"] = dict(info)
                if c.info is not None:
                    rec["long_context"] = {**rec.get("long_context", {}), **c.info}
                if self.opt.interventions.mode == "auto":
                    rec["mode"] = self.opt.interventions.detect_mode(text)
                if self.opt.logprobs:
                    rec["token_ids"] = list(ids)
                    rec["logprobs"] = [float(x) for x in (c.logprobs or [])]
                out.append(rec)
        return out


def iter_epochs(rows: list[tuple], seed: int | None, loop: bool, spacing: int = 0) -> Iterator[tuple]:
    """The rows once, or (with loop) forever, each epoch after the first reshuffled by seed + epoch.

    `spacing`: the rows among the last `spacing` of an epoch move (in shuffled order) to the end of
    the next one, so no row comes back within `spacing` rows of its last draw while the list has at
    least 2 * spacing rows (`er sample --loop --limit L` uses L - 1: a run of L prompts, e.g. a step
    of examples/stepwise, never holds a prompt twice, even where it straddles two epochs).
    """
    yield from rows
    epoch = 1
    last = list(range(len(rows)))
    while loop and rows:
        order = list(range(len(rows)))
        random.Random(f"{seed}:epoch:{epoch}").shuffle(order)
        if spacing > 0:
            recent = set(last[-spacing:])
            order = [i for i in order if i not in recent] + [i for i in order if i in recent]
        yield from (rows[i] for i in order)
        last = order
        epoch += 1


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must be I/N (0 <= I < N), not {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard must be I/N with 0 <= I < N, not {text!r}")
    return i, n


def run_stream(sampler: Sampler, rows: Iterable[tuple], stream, *, chunk_prompts: int, limit: int | None = None,
               shard: tuple[int, int] | None = None, progress=None, skip: int = 0) -> None:
    """Drive `sampler` over `rows` ((source, line, record)), writing groups to `stream` (RecordStream).

    `skip` drops the first rows (counted as dropped, "skipped") but still counts their ids, so a run
    that resumes a cycled (`--loop`) list at a position gives every prompt the `id#k` it would have
    had in one run from the start: group_ids stay unique across the runs of a step-wise loop.

    Each finished group is written and flushed at once, whatever the input (a file too): sampling is
    slow, so `| head -1` gets its line after the first chunk and a Ctrl-C keeps every finished group,
    the output ending on a record boundary (er.signals.atomic_writes).
    """
    stream.eager_flush = True
    chunk: list[_Prepared] = []
    taken = 0
    position = -1

    def flush():
        for group in sampler.generate_chunk(chunk):
            with atomic_writes():
                stream.write_many(group)
                stream.end_group()
            if progress is not None:
                progress.update(1, tokens=sum(r["completion_tokens"] for r in group))
        chunk.clear()

    if limit == 0:  # `--limit 0`: no prompt at all (as `head -n 0`), not one
        return
    for row in rows:
        position += 1
        if position < skip:
            sampler.group_id(row[2], position)
            stream.drop("skipped")
            continue
        if shard is not None and position % shard[1] != shard[0]:
            stream.drop("other shard")
            continue
        try:
            chunk.append(sampler.prepare(row, position))
        except UsageError:
            raise
        except ErError as exc:
            stream.reject_error(row, exc)
            continue
        taken += 1
        if len(chunk) >= chunk_prompts:
            flush()
        if limit is not None and taken >= limit:
            break
    if chunk:
        flush()
