"""`er score`: apply rewards to groups of records, verify correctness in a process pool, combine.

Per row the scorer adds `rewards` ({key: value or null}), `reward` (the combination) and `correct`.

`correct` (one rule, `er score --help`): when a verifier reward is named in the run (`math`, which
checks with math-verify, or a reward that judges answers itself such as `tail`), `correct` is always
recomputed, whatever the row carried (a rescored file never keeps an old verdict). Otherwise a
`correct` already on the row is used as it is and must be true, false or null: anything else (the
string "false", 0/1) is a data error at that line; a row without one is verified when a reward needs it.

Combination (`--combine`):
- `sum`: R = sum_k w_k r_k (weights default 1);
- `product`: R = prod_k r_k^{w_k} — the CaRL rule (arXiv 2504.17838): a progress term multiplied
  by soft compliance factors in [0, 1], so a factor 0 (CaRL: driving outside the lanes) zeroes that
  step's progress, and no heterogeneous shaped terms are added. CaRL's HARD infractions are not a
  factor: they end the episode, forfeiting later progress, plus an additive terminal penalty
  (-1 for a collision), which a product cannot express; give such rows reward 0 with a factor or
  add the penalty in a separate `sum` stage. A negative component with a fractional weight is null.
A null component makes the combined reward null (the row is kept and counted, never scored 0).

Batch-level rewards (`level = "batch"`, e.g. GRPO-lambda's top-lambda selection across prompts)
implement `score_batch(groups: list[list[dict]]) -> list[list[float | None]]` and carry
`batch_groups`: the scorer buffers that many whole groups, scores them together (other rewards
still see one group at a time) and writes them out; a last, smaller batch is scored as it is and
counted in the summary. All batch-level rewards of one run must agree on `batch_groups`.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from er.errors import ErError, UsageError
from er.groups import reject_group
from er.io import RecordStream, Row
from er.params import bind_params, check_timeout, parse_spec
from er.rewards import REWARDS
from er.rewards.base import finite_or_none
from er.schema import check_correct, check_required


def build_reward(spec: str) -> tuple[str, Any, float]:
    """`name[:key=val,...,weight=w]` -> (key in `rewards`, reward object, weight)."""
    name, params = parse_spec(spec)
    cls = REWARDS.get(name)
    weight = params.pop("weight", "1")
    try:
        weight_value = float(weight)
    except ValueError:
        raise UsageError(f"--reward {spec}: weight must be a number, not {weight!r}") from None
    return name, bind_params(cls, params, f"--reward {name}"), weight_value


class Scorer:
    def __init__(self, specs: list[str], combine: str = "sum", workers: int = 0, timeout: float = 10.0):
        check_timeout(timeout)
        if not specs:
            raise UsageError("give at least one --reward (see `er score --list`)")
        if combine not in ("sum", "product"):
            raise UsageError(f"--combine must be sum or product, not {combine!r}")
        self.combine = combine
        self.rewards: list[tuple[str, Any, float]] = []
        seen: dict[str, int] = {}
        for spec in specs:
            key, reward, weight = build_reward(spec)
            if key not in REWARDS.names():  # a plug-in (`module:Attr`): a worker, a deadline, checked results
                from er.plugins import PluginReward

                reward = PluginReward(reward, key, timeout)
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > 1:  # the same reward twice with other parameters: keep both, distinctly named
                key = f"{key}#{seen[key]}"
            self.rewards.append((key, reward, weight))
        self._weights = [w for _, _, w in self.rewards]
        self.workers = workers
        self.timeout = timeout
        # A reward that judges answers itself (`judges_correct`, e.g. `tail`) sets `correct` for the
        # rewards that need it, instead of math-verify.
        judges = [(k, r) for k, r, _ in self.rewards if getattr(r, "judges_correct", False)]
        if len(judges) > 1:
            raise UsageError(f"only one reward can judge correctness, got {', '.join(k for k, _ in judges)}")
        self.judge = judges[0] if judges else None
        self.needs_correct = self.judge is None and any(getattr(r, "needs_correct", False)
                                                        for _, r, _ in self.rewards)
        # a verifier in the run recomputes `correct` on every row (see the module docstring)
        self.recompute_correct = self.judge is not None or any(getattr(r, "verifies_correct", False)
                                                               for _, r, _ in self.rewards)
        self.whole_groups = any(getattr(r, "level", "row") != "row" for _, r, _ in self.rewards)
        sizes = {r.batch_groups for _, r, _ in self.rewards if getattr(r, "level", "row") == "batch"}
        if len(sizes) > 1:
            raise UsageError(f"batch-level rewards disagree on batch_groups ({sorted(sizes)}); give one value")
        self.batch_groups = sizes.pop() if sizes else 0
        self.fields: dict[str, Any] = {}
        for _, r, _ in self.rewards:
            self.fields.update(getattr(r, "fields", {"completion": "string"}))

    def use_state(self, path: str) -> None:
        """Hand `--state FILE` to the stateful rewards (HAPO's history)."""
        stateful = [r for _, r, _ in self.rewards if hasattr(r, "use_state")]
        if not stateful:
            raise UsageError("--state is given but no reward keeps state (e.g. hapo)")
        for r in stateful:
            r.use_state(path)

    # ---- stages --------------------------------------------------------------------------------
    def check_row(self, record: dict, added: frozenset[str] = frozenset()) -> None:
        """The checks this run makes on a row before scoring it (ErError naming the problem).

        `added`: fields an earlier stage will still add (`er validate --kind prompt --for score:...`
        checks a prompt for what scoring it later needs, e.g. `answer`). Pops a carried `correct`
        when the run recomputes it."""
        check_required(record, {k: v for k, v in self.fields.items() if k not in added})
        if self.recompute_correct:
            record.pop("correct", None)
        else:
            check_correct(record)
        if self.needs_correct and "correct" not in record:
            if record.get("answer") is None:
                raise ErError("missing field 'answer' (needed to verify correctness; "
                              "or score with a reward that sets 'correct' first)")
            if not isinstance(record["answer"], (str, int, float)) or isinstance(record["answer"], bool):
                raise ErError(f"field 'answer' should be a string or number, got {type(record['answer']).__name__}")

    def _valid(self, group: list[Row], stream: RecordStream) -> list[Row]:
        good = []
        for row in group:
            try:
                self.check_row(row[2])
                good.append(row)
            except ErError as exc:
                stream.reject_error(row, exc)
        if self.whole_groups and good and len(good) != len(group):
            exc = ErError(f"group {group[0][2].get('group_id')!r} is incomplete after rejected rows "
                          "(a group-level reward needs every row)")
            reject_group(stream, good, exc)
            return []
        return good

    def _verify(self, groups: Iterable[list[Row]], stream: RecordStream) -> Iterator[list[Row]]:
        """Set `correct` on every row that has none: in a process pool, or inline with workers=0."""
        from er.pool import Failure, OrderedPool
        from er.rewards import verify

        def parts_of(group: list[Row]) -> list[list[Row]]:
            return [[group[i] for i in part] for part in verify.unverified_parts([r[2] for r in group])]

        def payload(part: list[Row]):
            return verify.group_payload([r[2] for r in part], self.timeout)

        def apply(part: list[Row], results: list) -> None:
            for row, res in zip(part, results):
                if isinstance(res, (verify.Null, Failure)):
                    stream.note(f"null correct ({res.reason})")
                    row[2]["correct"] = None
                else:
                    row[2]["correct"] = bool(res)

        if self.workers <= 0:
            for group in groups:
                for part in parts_of(group):
                    apply(part, list(verify.check_group(payload(part))))
                yield group
            return

        def tasks():
            for group in groups:
                parts = parts_of(group)
                if not parts:
                    yield (group, []), (None, [], self.timeout)
                for i, part in enumerate(parts):
                    yield (group if i == len(parts) - 1 else None, part), payload(part)

        # parse + verify may each take `timeout`; the hard deadline leaves room for both.
        with OrderedPool(verify.check_group, self.workers, item_timeout=2 * self.timeout + 2,
                         resume=verify.resume_group, size=verify.group_size) as pool:
            for (group, part), results in pool.imap(tasks()):
                apply(part, results)
                if group is not None:
                    yield group

    def _judge(self, group: list[Row], stream: RecordStream) -> list[Row]:
        """Set `correct` from the judging reward (1 -> True, 0 -> False, null -> null)."""
        records = [r[2] for r in group]
        try:
            values = self.judge[1](records)
        except ErError as exc:
            reject_group(stream, group, exc)
            return []
        for record, v in zip(records, values):
            v = finite_or_none(v)
            record["correct"] = None if v is None else v >= 1.0
            if v is None:
                stream.note(f"null correct ({self.judge[0]})")
        return group

    def _reward(self, group: list[Row], stream: RecordStream, batch_values: dict | None = None) -> list[Row]:
        records = [r[2] for r in group]
        columns = []
        for key, reward, _ in self.rewards:
            if self.judge is not None and key == self.judge[0]:  # already judged: its value is `correct`
                columns.append([None if r["correct"] is None else float(r["correct"]) for r in records])
                continue
            try:
                values = batch_values[key] if batch_values and key in batch_values else reward(records)
            except ErError as exc:
                # a stateful reward (hapo) is not probed row by row: that would update its state twice
                if getattr(reward, "level", "row") != "row" or len(group) == 1 or hasattr(reward, "use_state"):
                    reject_group(stream, group, exc)
                    return []
                return self._without_bad_rows(reward, group, stream, batch_values)
            if len(values) != len(records):
                raise RuntimeError(f"reward {key} returned {len(values)} values for {len(records)} rows")
            columns.append([finite_or_none(v) for v in values])
        for i, record in enumerate(records):
            parts = {key: col[i] for (key, _, _), col in zip(self.rewards, columns)}
            record["rewards"] = parts
            record["reward"] = self._combine([col[i] for col in columns])
            if record["reward"] is None:
                stream.note("null reward")
            record.setdefault("correct", None)
        return group

    def _without_bad_rows(self, reward: Any, group: list[Row], stream: RecordStream,
                          batch_values: dict | None) -> list[Row]:
        """A row-level reward refused a group: reject each row it refuses at that row's own line
        (not the group's first), then score the rest, as `_valid` does with rows it refuses."""
        good = []
        for row in group:
            try:
                reward([row[2]])
                good.append(row)
            except ErError as exc:
                stream.reject_error(row, exc)
        if self.whole_groups:
            if good:
                reject_group(stream, good, ErError(f"group {group[0][2].get('group_id')!r} is incomplete after "
                                                   "rejected rows (a group-level reward needs every row)"))
            return []
        return self._reward(good, stream, batch_values) if good else []

    def _combine(self, values: list[float | None]) -> float | None:
        if None in values:
            return None
        if self.combine == "sum":
            if len(values) == 1 and self._weights[0] == 1.0:
                return values[0]
            total = 0.0
            for w, v in zip(self._weights, values):
                total += w * v
            return finite_or_none(total)
        total = 1.0
        for w, v in zip(self._weights, values):
            if v < 0 and w != int(w):
                return None
            total *= v ** w if w != 1 else v
        return finite_or_none(total)

    def _score_batch(self, groups: list[list[Row]], stream: RecordStream) -> Iterator[list[Row]]:
        """Score `groups` together: batch-level rewards see all of them, the others one group at a time."""
        batch_values: list[dict] = [{} for _ in groups]
        for key, reward, _ in self.rewards:
            if getattr(reward, "level", "row") != "batch":
                continue
            try:
                values = reward.score_batch([[r[2] for r in g] for g in groups])
            except ErError as exc:
                for g in groups:
                    reject_group(stream, g, exc)
                return
            for slot, v in zip(batch_values, values):
                slot[key] = v
        for group, slot in zip(groups, batch_values):
            scored = self._reward(group, stream, slot)
            if scored:
                yield scored

    def _batches(self, groups: Iterable[list[Row]], stream: RecordStream) -> Iterator[list[Row]]:
        buffer: list[list[Row]] = []
        for group in groups:
            buffer.append(group)
            if len(buffer) >= self.batch_groups:
                yield from self._score_batch(buffer, stream)
                buffer = []
        if buffer:
            stream.note(f"groups in a last, smaller batch ({len(buffer)} < batch_groups {self.batch_groups})",
                        len(buffer))
            yield from self._score_batch(buffer, stream)

    # ---- the whole stage -------------------------------------------------------------------------
    def run(self, groups: Iterable[list[Row]], stream: RecordStream) -> Iterator[list[Row]]:
        valid = (g for g in (self._valid(g, stream) for g in groups) if g)
        if self.needs_correct:
            valid = self._verify(valid, stream)
        elif self.judge is not None:
            valid = (g for g in (self._judge(g, stream) for g in valid) if g)
        try:
            if self.batch_groups:
                yield from self._batches(valid, stream)
            else:
                for group in valid:
                    scored = self._reward(group, stream)
                    if scored:
                        yield scored
        finally:
            for _, reward, _ in self.rewards:
                reward.close()
