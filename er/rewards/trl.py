"""The reward catalog as TRL reward functions: `er.rewards.trl_reward(name, **params)`.

TRL 1.16's GRPOTrainer calls each custom reward function once per generation batch as

    func(prompts=[...], completions=[...], completion_ids=[[int, ...], ...], **columns,
         trainer_state=..., log_extra=..., log_metric=...) -> list[float | None]

with one entry per completion; `columns` are the dataset's other columns (e.g. `answer`), repeated
per completion, and a None reward leaves the function out for that row. The G completions of a prompt
arrive consecutively (TRL's RepeatSampler). `TrlReward` turns the call into `er` records and groups:

- `completion`: the text, or for conversational completions the joined assistant `content`;
- `completion_tokens`: len(completion_ids), every token the policy generated, the EOS included: the
  rule `er sample` follows for its `completion_tokens` field, so a length reward (`dler:L_T=...`) gives
  the same value on the same completion in TRL and in `er score`;
- `finish_reason`: "length" when `eos_token_id` is given and the ids do not end with it, or when
  `max_completion_length` is given and reached; "stop" otherwise;
- `prompt` and every dataset column (`answer`, `level`, `target_length`, ...) as record fields;
- `group_id` / `sample_idx` / `group_size`: chunks of G rows. G is `num_generations` when given, else
  the trainer's own (`GRPOConfig.num_generations`, or `num_generations_eval` in evaluation), read from
  the trainer that TRL's `log_metric`/`log_extra` arguments belong to; called with neither, a row-level
  reward (dler, ...) scores the rows without group fields (it needs none), and a group- or batch-level
  one raises ValueError naming its level rather than guess (runs of identical prompts would merge two groups
  of the same prompt, or a data set's duplicate neighbours, into one).

A reward that `needs_correct` gets `correct` from math-verify inline (`er.rewards.verify`, gold =
the `answer` column) unless a `correct` column exists; a row without a gold answer gets null.
Required fields are checked as `er score` checks them (a ValueError naming the field).

Limits: group-level rewards (long-short, hapo...) see the groups of one process's slice of the batch;
with several processes keep per-device batches a multiple of num_generations. Stateful rewards keep
their state in the process that calls them. The callable pickles by (name, parameters) and rebuilds
its reward after unpickling, so it can cross process boundaries.
"""

from __future__ import annotations

from typing import Any

from er.errors import ErError

_TRL_KWARGS = frozenset({"trainer_state", "log_extra", "log_metric", "environments", "prompts", "completions",
                         "completion_ids"})


def completion_text(completion: Any) -> str:
    """Plain text, or the assistant content of a conversational completion."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, list):
        parts = []
        for message in completion:
            if isinstance(message, dict) and message.get("role", "assistant") == "assistant":
                content = message.get("content", "")
                if isinstance(content, list):  # multimodal content blocks: keep the text ones
                    content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
                parts.append(content or "")
        return "".join(parts)
    raise ValueError(f"cannot read a completion of type {type(completion).__name__}")


def _groups(n: int, num_generations: int) -> list[tuple[int, int]]:
    if n % num_generations:
        raise ValueError(f"{n} completions are not whole groups of num_generations={num_generations}")
    return [(s, s + num_generations) for s in range(0, n, num_generations)]


def trainer_group_size(kwargs: dict) -> int | None:
    """G of the GRPOTrainer whose bound `log_metric`/`log_extra` TRL passed (train or eval), else None."""
    for key in ("log_metric", "log_extra"):
        trainer = getattr(kwargs.get(key), "__self__", None)
        train_g = getattr(trainer, "num_generations", None)
        if isinstance(train_g, int):
            training = getattr(getattr(trainer, "model", None), "training", True)
            eval_g = getattr(trainer, "num_generations_eval", None)
            return train_g if training or not isinstance(eval_g, int) else eval_g
    return None


class TrlReward:
    """A picklable TRL reward function wrapping one `er` reward."""

    def __init__(self, name: str, num_generations: int | None = None, max_completion_length: int | None = None,
                 eos_token_id: int | list[int] | None = None, timeout: float = 10.0, **params: Any):
        if num_generations is not None and num_generations < 1:
            raise ValueError("num_generations must be >= 1")
        self.name, self.params = name, dict(params)
        self.num_generations, self.max_completion_length = num_generations, max_completion_length
        eos = [] if eos_token_id is None else ([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id))
        self.eos_ids, self.timeout = frozenset(eos), timeout
        self.__name__ = f"er_{name}"  # TRL logs rewards under the function's name
        self._build()

    def _build(self) -> None:
        from er.params import bind_params
        from er.rewards import REWARDS

        self.reward = bind_params(REWARDS.get(self.name), dict(self.params), f"reward {self.name}")

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "reward"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._build()

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"trl_reward({self.name!r}{', ' if params else ''}{params})"

    # ---- records ---------------------------------------------------------------------------------
    def records(self, prompts, completions, completion_ids, columns: dict) -> list[dict]:
        n = len(completions)
        rows = []
        for i in range(n):
            record = {k: v[i] for k, v in columns.items()}
            record["completion"] = completion_text(completions[i])
            if prompts is not None:
                record["prompt"] = prompts[i]
            if completion_ids is not None:
                ids = list(completion_ids[i])
                ended = bool(ids) and ids[-1] in self.eos_ids
                record["completion_tokens"] = len(ids)  # the EOS included, as er sample counts
                truncated = (self.eos_ids and not ended) or (
                    self.max_completion_length is not None and len(ids) >= self.max_completion_length and not ended)
                record["finish_reason"] = "length" if truncated else "stop"
            else:
                record.setdefault("finish_reason", "stop")
            rows.append(record)
        return rows

    def _verify(self, group: list[dict]) -> None:
        from er.rewards import verify

        for r in group:
            if "correct" not in r and r.get("answer") is None:
                r["correct"] = None
        for part in verify.unverified_parts(group):
            records = [group[i] for i in part]
            for r, res in zip(records, verify.check_group(verify.group_payload(records, self.timeout))):
                r["correct"] = None if isinstance(res, verify.Null) else bool(res)

    # ---- TRL's entry point -------------------------------------------------------------------------
    def __call__(self, prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float | None]:
        from er.rewards.base import finite_or_none
        from er.schema import check_required

        if completions is None:
            raise ValueError("TRL passes `completions`; none given")
        n = len(completions)
        columns = {k: v for k, v in kwargs.items()
                   if k not in _TRL_KWARGS and isinstance(v, (list, tuple)) and len(v) == n}
        size = self.num_generations or trainer_group_size(kwargs)
        level = getattr(self.reward, "level", "row")
        if size is None and level != "row":
            raise ValueError(f"er reward {self.name} is {level}-level and the group size is unknown; pass "
                             "trl_reward(..., num_generations=G) (GRPOConfig.num_generations)")
        records = self.records(prompts, completions, completion_ids, columns)
        out: list[float | None] = []
        # a row-level reward needs no groups: with the size unknown its rows get no group fields
        for g, (start, end) in enumerate(_groups(n, size) if size is not None else [(0, n)]):
            group = records[start:end]
            for idx, r in enumerate(group if size is not None else ()):
                r.setdefault("group_id", f"trl-{g}")
                r["sample_idx"], r["group_size"] = idx, len(group)
            try:
                for r in group:
                    check_required(r, getattr(self.reward, "fields", {"completion": "string"}))
                if getattr(self.reward, "needs_correct", False):
                    self._verify(group)
                values = self.reward(group)
            except ErError as exc:
                raise ValueError(f"er reward {self.name}: row {start}: {exc.message}") from None
            out.extend(finite_or_none(v) for v in values)
        return out
