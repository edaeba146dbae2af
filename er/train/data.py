"""From a record stream to training steps (rank 0 reads; the result is broadcast to the other ranks).

Steps:
- policy-gradient losses (`grpo`, `drpo`): whole groups (`er.groups.iter_groups`) are collected until a
  step holds at least `--batch-size` samples; a step never splits a group, so it closes at the first
  group boundary at or after `--batch-size` samples.
- `sft`: records carrying `batch` (from `er decompose`, Dataset Decomposition) form one step per run
  of consecutive records with the same `batch` value; other records are taken `--batch-size` at a time.

Advantages: when records carry `reward` but no `advantage` (the short pipe `er sample | er score |
er update`), the step's groups go through `er.advantaging.AdvantageRunner` with `--estimator`
(the very code of `er advantage`; batch-scope estimators see the whole step as their batch). For the
`drpo` loss the fields the `drpo` estimator writes are needed (`drpo_weight`, `drpo_negative`); when
absent they are computed the same way with the `drpo` estimator.

Each row becomes an `Example` (token ids, advantage, behaviour log-probs...). Bad rows raise
`ErError` pinned to their line (or go to `--rejects`): missing `advantage` and `reward`, non-finite
advantage, missing `completion`, token ids outside the vocabulary, log-probs that do not match the
completion, sequences longer than the model's context.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

from er.errors import ErError, UsageError
from er.io import RecordStream, Row, log
from er.train.story import row_facts
from er.train.tokenize import encode_completion, encode_prompt


@dataclass
class Example:
    ids: list[int]  # prompt + completion token ids
    prompt_len: int
    advantage: float = 0.0
    logprobs: list[float] | None = None  # behaviour log-prob of each completion token
    temperature: float = 1.0
    group: int = 0  # group index within the step
    reward: float | None = None
    drpo_weight: float = 0.0
    drpo_negative: bool = False
    max_tokens: int | None = None  # sampling.max_tokens, for Dr. GRPO's constant normaliser
    correct: bool | None = None  # the row's verdict, for the reason of a zero-signal step

    @property
    def completion_len(self) -> int:
        return len(self.ids) - self.prompt_len


@dataclass
class StepBatch:
    examples: list[Example]
    n_groups: int
    rows: int
    mode_prompts: list[tuple[list[int], bool]] = field(default_factory=list)  # (prompt ids, prefer_short)
    facts: list = field(default_factory=list)  # er.train.story.RowFacts of each example, for the metrics


def _finite_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


class ExampleBuilder:
    """Tokenises and checks rows (see module doc)."""

    def __init__(self, tokenizer: Any, loss: str, vocab_size: int, max_positions: int | None,
                 model_path: str, out_dir: str, strict: bool = False, temperature: float | None = None):
        self.tok = tokenizer
        self.loss = loss
        self.vocab_size = vocab_size
        self.max_positions = max_positions
        self.strict = strict
        self.temperature = temperature
        self._same_models = {model_path, os.path.realpath(model_path)}
        self._out = os.path.realpath(out_dir)
        self._warned = False
        self._prompt_cache: dict[str, list[int]] = {}
        self.mismatched = 0

    def _prompt_ids(self, prompt: Any) -> list[int]:
        if isinstance(prompt, str):
            ids = self._prompt_cache.get(prompt)
            if ids is None:
                if len(self._prompt_cache) > 4096:
                    self._prompt_cache.clear()
                ids = self._prompt_cache[prompt] = encode_prompt(self.tok, prompt)
            return ids
        return encode_prompt(self.tok, prompt)

    def _check_policy(self, record: dict) -> None:
        policy = record.get("policy")
        model = policy.get("model") if isinstance(policy, dict) else None
        if not isinstance(model, str) or model in self._same_models:
            return
        real = os.path.realpath(model)
        if real in self._same_models or real == self._out or real.startswith(self._out + os.sep):
            return
        if self.strict:
            raise ErError(f"record was sampled from policy {model!r}, not the model being trained "
                          f"({sorted(self._same_models)[0]!r}); drop --strict to train on it anyway")
        self.mismatched += 1
        if not self._warned:
            self._warned = True
            log(f"er update: warning: records sampled from policy {model!r}, not -m "
                f"{sorted(self._same_models)[0]!r} (off-policy; --strict makes this an error)")

    def build(self, record: dict, group: int) -> Example:
        self._check_policy(record)
        drawn = record.get("sampling")
        if isinstance(drawn, dict) and drawn.get("length_from") == "usage" and record.get("token_ids") is None:
            # re-tokenizing the text would train on tokens the policy may never have drawn (pitfall 1 of
            # served sampling): such rows are for er score | er eval only
            raise ErError(f"no token ids: sampled through an endpoint that returns none ({drawn.get('server')}, "
                          "sampling.length_from 'usage'); er update trains on the drawn tokens only: sample with "
                          "`er sample --server URL` (--api completions) or an in-process backend with --logprobs")
        completion = encode_completion(self.tok, record)
        prompt = record.get("prompt")
        if prompt is None and self.loss != "sft":
            raise ErError("missing field 'prompt'")
        context = record.get("prompt_token_ids")  # what `er sample` conditioned on, exactly
        if context is not None:
            if not isinstance(context, list) or not all(type(t) is int for t in context):
                raise ErError("field 'prompt_token_ids' should be a list of integers")
            prompt_ids = context
        else:
            sampling = record.get("sampling")
            if isinstance(prompt, str) and isinstance(sampling, dict) and sampling.get("chat") is True:
                # sampled through the chat template (er sample's default) but stored without its ids:
                # train on the templated prompt too, not on text the policy never saw
                prompt = [{"role": "user", "content": prompt}]
            prompt_ids = self._prompt_ids(prompt) if prompt is not None else []
        ids = prompt_ids + completion
        bad = [t for t in ids if t < 0 or t >= self.vocab_size]
        if bad:
            raise ErError(f"token id {bad[0]} is outside the model's vocabulary (0..{self.vocab_size - 1})")
        if self.max_positions and len(ids) > self.max_positions:
            raise ErError(f"prompt + completion is {len(ids)} tokens, over the model's "
                          f"max_position_embeddings {self.max_positions}")
        ex = Example(ids=ids, prompt_len=len(prompt_ids), group=group)
        sampling = record.get("sampling")
        if isinstance(sampling, dict):
            if self.temperature is None and _finite_number(sampling.get("temperature")) and sampling["temperature"] > 0:
                ex.temperature = float(sampling["temperature"])
            if type(sampling.get("max_tokens")) is int:
                ex.max_tokens = sampling["max_tokens"]
        if self.temperature is not None:
            ex.temperature = self.temperature
        r = record.get("reward")
        ex.reward = float(r) if _finite_number(r) else None
        ex.correct = record.get("correct") if type(record.get("correct")) is bool else None
        if self.loss == "sft":
            return ex
        adv = record.get("advantage")
        if adv is None and "advantage" not in record:
            raise ErError("missing field 'advantage' (and no 'reward' to compute it from; run er score first)")
        if not _finite_number(adv):
            raise ErError(f"field 'advantage' should be a finite number, got {adv!r}")
        ex.advantage = float(adv)
        lp = record.get("logprobs")
        if lp is not None:
            if not isinstance(lp, list) or not all(_finite_number(v) for v in lp):
                raise ErError("field 'logprobs' should be a list of finite numbers")
            if len(lp) != len(completion):
                raise ErError(f"field 'logprobs' has {len(lp)} entries but the completion has "
                              f"{len(completion)} tokens (send 'token_ids' with 'logprobs')")
            ex.logprobs = [float(v) for v in lp]
        if self.loss == "drpo":
            w = record.get("drpo_weight")
            neg = record.get("drpo_negative")
            if w is not None and not _finite_number(w):
                raise ErError(f"field 'drpo_weight' should be a finite number or null, got {w!r}")
            ex.drpo_weight = float(w or 0.0)
            ex.drpo_negative = bool(neg)
        return ex


def _mode_target(group: list[dict], tolerance: float) -> bool | None:
    """prefer_short for a group: its `preferred_mode`, else (reconstructed) Acc_S >= Acc_L - tolerance
    from rows' `mode` (long/short) and `correct`; None when the group says nothing."""
    for r in group:
        pm = r.get("preferred_mode")
        if pm is not None:
            if pm not in ("long", "short"):
                raise ErError(f"field 'preferred_mode' should be 'long' or 'short', got {pm!r}")
            return pm == "short"
    acc: dict[str, list[float]] = {"long": [], "short": []}
    for r in group:
        if r.get("mode") in acc and r.get("correct") is not None:
            acc[r["mode"]].append(float(bool(r["correct"])))
    if acc["long"] and acc["short"]:
        return sum(acc["short"]) / len(acc["short"]) >= sum(acc["long"]) / len(acc["long"]) - tolerance
    return None


class StepReader:
    """Iterates `StepBatch`es from a RecordStream (rank 0)."""

    def __init__(self, stream: RecordStream, builder: ExampleBuilder, loss: str, batch_size: int,
                 estimator: str | None = None, dynamic_sampling: bool = False, mode_switch: bool = False,
                 mode_tolerance: float = 0.0):
        if batch_size < 1:
            raise UsageError("--batch-size must be >= 1")
        self.stream = stream
        self.builder = builder
        self.loss = loss
        self.batch_size = batch_size
        self.estimator = estimator or ("drpo" if loss == "drpo" else "grpo")
        self.dynamic_sampling = dynamic_sampling
        self.mode_switch = mode_switch
        self.mode_tolerance = mode_tolerance
        self._runner = None
        self._mode: str | None = None  # "given" | "compute"

    # ---- grouping ------------------------------------------------------------------------
    def _raw_steps(self) -> Iterator[list[list[Row]]]:
        rows = self.stream.records()
        if self.loss == "sft":
            yield from self._sft_steps(rows)
            return
        from er.groups import iter_groups

        step: list[list[Row]] = []
        n = 0
        for group in iter_groups(rows, self.stream):
            step.append(group)
            n += len(group)
            if n >= self.batch_size:
                yield step
                step, n = [], 0
        if step:
            yield step

    def _sft_steps(self, rows: Iterator[Row]) -> Iterator[list[list[Row]]]:
        step: list[list[Row]] = []
        key = object()
        for row in rows:
            b = row[2].get("batch", None)
            if step and (b != key or (b is None and len(step) >= self.batch_size)):
                yield step
                step = []
            key = b
            step.append([row])
        if step:
            yield step

    # ---- advantages ----------------------------------------------------------------------
    def _needs_compute(self, record: dict) -> bool:
        if self.loss == "drpo":
            return "drpo_weight" not in record and "drpo_negative" not in record
        return "advantage" not in record

    def _with_advantages(self, groups: list[list[Row]]) -> list[list[Row]]:
        if self.loss == "sft":
            return groups
        if self._mode is None:
            first = groups[0][0][2]
            if not self._needs_compute(first):
                self._mode = "given"
            elif "reward" in first:
                self._mode = "compute"
                from er.advantaging import AdvantageRunner

                self._runner = AdvantageRunner(self.estimator, batch_groups=1,
                                               dynamic_sampling=self.dynamic_sampling)
                log(f"er update: records carry rewards but no advantages: computing them with "
                    f"--estimator {self.estimator} (as er advantage would; scope {self._runner.scope})")
            else:
                self._mode = "given"  # rows will fail with 'missing advantage and reward'
        if self._mode == "given":
            return groups
        runner = self._runner
        runner.batch_groups = len(groups)
        kept = {id(r) for chunk in runner.run(groups, self.stream) for r in chunk}
        out = []
        for g in groups:
            rows = [row for row in g if id(row[2]) in kept]
            if rows:
                out.append(rows)
        return out

    # ---- examples ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[StepBatch]:
        for raw in self._raw_steps():
            groups = self._with_advantages(raw)
            examples: list[Example] = []
            prompts: list[tuple[list[int], bool]] = []
            n_groups = 0
            rows = 0
            facts = []
            for g in groups:
                built = []
                for row in g:
                    try:
                        built.append(self.builder.build(row[2], n_groups))
                        facts.append(row_facts(row[2]))
                    except ErError as exc:
                        self.stream.reject_error(row, exc)
                if not built:
                    continue
                if self.mode_switch:
                    try:
                        target = _mode_target([row[2] for row in g], self.mode_tolerance)
                    except ErError as exc:
                        raise exc.located(g[0][0], g[0][1]) from None
                    if target is not None:
                        first = g[0][2]
                        base = first.get("base_prompt", first.get("prompt"))
                        prompts.append((self.builder._prompt_ids(base), target))
                examples.extend(built)
                rows += len(built)
                n_groups += 1
            if examples:
                yield StepBatch(examples, n_groups, rows, prompts, facts)
