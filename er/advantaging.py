"""`er advantage`: turn rewards into advantages, group by group (or batch by batch).

The same code serves `er update` when its input carries rewards but no advantages, so there is one
implementation of every estimator.

Dynamic sampling (DAPO, used by DLER): a group whose non-null rewards are all equal carries no
learning signal under group-relative estimators and is dropped, counted per reason
("all rewards equal (0.0)", "all rewards null"); `in == out + rejected + dropped` still holds. Each kept
row carries `dropped_groups`, the number of groups dropped between the previous kept group and its own,
so `er update` downstream can report how many groups each step lost (a run's trailing drops have no
kept group to carry them; the summary still counts them).
Null rewards get advantage 0 and stay out of the statistics.

An estimator may return a dict of per-row arrays instead of one array: "advantage" (required) plus
extra fields written onto every row under their keys (a float NaN is written as null), for losses
that need more than a scalar advantage (DRPO's `drpo_weight` / `drpo_negative`).
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator

import numpy as np

from er.advantages import ESTIMATORS
from er.advantages.base import Batch
from er.errors import ErError, UsageError
from er.groups import reject_group
from er.io import RecordStream, Row
from er.params import bind_params, parse_spec

# Rows per vectorised call for group-scope estimators reading a file: large enough to amortise numpy,
# small enough that the records in flight stay in cache (4096 was measurably slower than 256).
CHUNK_ROWS = 256


def build_estimator(spec: str):
    name, params = parse_spec(spec)
    return bind_params(ESTIMATORS.get(name), params, f"--estimator {name}")


def _row_problem(record: dict, needs_tokens: bool) -> str | None:
    if "reward" not in record:
        return "missing field 'reward' (run `er score` first)"
    r = record["reward"]
    if r is not None and (type(r) not in (int, float) or not math.isfinite(r)):
        return f"field 'reward' should be a finite number or null, got {r!r}"
    if needs_tokens:
        n = record.get("completion_tokens")
        if type(n) is not int or n < 0:
            return "missing or invalid 'completion_tokens' (the batch estimator weights by tokens)"
    return None


class AdvantageRunner:
    def __init__(self, spec: str = "grpo", batch_groups: int = 32, dynamic_sampling: bool = False,
                 eager: bool = False, normalize_then_sum: str | None = None):
        self.spec = spec
        self.estimator = build_estimator(spec)
        self.row_check = None
        if normalize_then_sum is not None:  # each `rewards` component normalised, then summed/averaged
            from er.advantages.multi import NormalizeThenSum, rewards_problem

            try:
                self.estimator = NormalizeThenSum(self.estimator, normalize_then_sum)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            self.spec, self.row_check = f"normalize-then-{normalize_then_sum}({spec})", rewards_problem
        if batch_groups < 1:
            raise UsageError("--batch-groups must be >= 1")
        self.batch_groups = batch_groups
        self.dynamic_sampling = dynamic_sampling
        self.scope = getattr(self.estimator, "scope", "group")
        self.needs_tokens = getattr(self.estimator, "needs_tokens", False)
        self.extra = getattr(self.estimator, "extra_fields", ())
        self.eager = eager
        self._dropped = 0  # groups dropped since the last kept one (dynamic sampling)

    def _keep(self, group: list[Row], stream: RecordStream) -> list[Row]:
        good = []
        for row in group:
            problem = _row_problem(row[2], self.needs_tokens) or (self.row_check and self.row_check(row[2]))
            if problem:
                stream.reject(row[0], row[1], problem, row[2])
            else:
                good.append(row)
        if good and len(good) != len(group):
            reject_group(stream, good, ErError(f"group {group[0][2].get('group_id')!r} is incomplete after rejected rows"))
            return []
        if self.dynamic_sampling and good:
            values = {row[2]["reward"] for row in good} - {None}
            if not values:
                stream.drop("all rewards null", len(good))
                self._dropped += 1
                return []
            if len(values) == 1:
                stream.drop(f"all rewards equal ({float(next(iter(values)))})", len(good))
                self._dropped += 1
                return []
            for row in good:
                row[2]["dropped_groups"] = self._dropped
            self._dropped = 0
        return good

    def _compute(self, groups: list[list[Row]], stream: RecordStream) -> list[dict]:
        records = [row[2] for g in groups for row in g]
        sizes = [len(g) for g in groups]
        starts = np.zeros(len(sizes), dtype=np.int64)
        if len(sizes) > 1:
            np.cumsum(sizes[:-1], out=starts[1:])
        reward = np.array([np.nan if r["reward"] is None else r["reward"] for r in records], dtype=np.float64)
        tokens = (np.array([r["completion_tokens"] for r in records], dtype=np.float64) if self.needs_tokens
                  else np.zeros(len(records)))
        correct = np.array([np.nan if r.get("correct") is None else float(r["correct"]) for r in records])
        fields = {f: [r.get(f) for r in records] for f in self.extra} if self.extra else None
        try:
            adv = self.estimator(Batch(reward, tokens, correct, starts, fields))
        except ErError as exc:
            row = groups[0][0]
            raise exc.located(row[0], row[1]) from None
        extra = {}
        if isinstance(adv, dict):  # {"advantage": ..., "other_field": ...}: extra per-row fields for the loss
            extra = {k: np.asarray(v) for k, v in adv.items() if k != "advantage"}
            adv = np.asarray(adv["advantage"], dtype=np.float64)
        nulls = np.isnan(reward)
        if nulls.any():
            stream.note("null rewards given advantage 0", int(nulls.sum()))
        adv = np.where(np.isnan(adv), 0.0, adv).tolist()
        spec = self.spec
        for r, a in zip(records, adv):
            r["advantage"] = a
            r["estimator"] = spec
        for name, values in extra.items():
            items = values.tolist()
            if values.dtype.kind == "f":  # NaN marks "not set for this row": written as null
                items = [None if v != v else v for v in items]
            for r, v in zip(records, items):
                r[name] = v
        return records

    def run(self, groups: Iterable[list[Row]], stream: RecordStream) -> Iterator[list[dict]]:
        chunk: list[list[Row]] = []
        rows = 0
        for group in groups:
            kept = self._keep(group, stream)
            if not kept:
                continue
            chunk.append(kept)
            rows += len(kept)
            full = (len(chunk) >= self.batch_groups if self.scope == "batch"
                    else self.eager or rows >= CHUNK_ROWS)
            if full:
                yield self._compute(chunk, stream)
                chunk, rows = [], 0
        if chunk:
            if self.scope == "batch" and len(chunk) < self.batch_groups:
                stream.note("groups in a final batch smaller than --batch-groups", len(chunk))
            yield self._compute(chunk, stream)
