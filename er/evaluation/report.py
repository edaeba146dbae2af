"""`er eval`'s accuracy/length report: one record per (model, dataset[, --by fields]) over scored rows.

Memory stays flat in the number of rows: per report group a growing `array('q')` of token counts and a
`bytearray` of verdicts (1 correct, 0 wrong, 2 null), plus per problem (`group_id`, else `id`) two
small ints (judged samples n, correct c) for pass@k — and, only when maj@k is asked for, the first
k votes of each problem as an `array('q')` of (answer id << 1 | correct), answers interned to ids. Records themselves are never kept.

Keys of a report: `model` = `policy.model` (else a top-level `model` field, else "-"); `dataset` =
the record's `dataset` field, else the `--preset` name, else the source file's name without its
extensions ("stdin" for a pipe). With `--compare` over several files, each file is a `run` (its
name) and the dataset no longer falls back to the file name. `--by FIELD` adds any record field
(dotted paths like `sampling.temperature` reach into objects) to the key and to the report.

Metric definitions, the pass@k estimator, budgets, think/answer tokens, AUC_OAA, the overthinking score
and AES: see `er.evaluation.metrics`.
"""

from __future__ import annotations

import functools
import os
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from er.errors import ErError, UsageError
from er.evaluation import metrics as M

_MISSING = object()
_EXTS = (".gz", ".zst", ".jsonl", ".json", ".ndjson", ".arrow", ".parquet", ".feather")

NOT_SCORED = ("missing field 'correct': these rows are not scored. Score them first "
              "(`er score --reward math`) or let eval score them (`er eval --reward math`)")


def file_label(source: str) -> str:
    if source in ("-", "<stdin>"):
        return "stdin"
    name = os.path.basename(source)
    changed = True
    while changed:
        changed = False
        for ext in _EXTS:
            if name.endswith(ext) and len(name) > len(ext):
                name, changed = name[: -len(ext)], True
    return name


def length_bin(prompt_tokens: Any) -> int | None:
    """`--by length_bin`: prompt_tokens in power-of-two bins [2^k, 2^(k+1)), labelled 2^k (0 for 0; None if absent)."""
    if type(prompt_tokens) is not int or prompt_tokens < 0:
        return None
    return 1 << (prompt_tokens.bit_length() - 1) if prompt_tokens else 0


def field_getter(path: str) -> Callable[[dict], Any]:
    """A getter for a (possibly dotted) record field; a missing field reads as None.

    `length_bin` (when the record has no such field) is derived from `prompt_tokens` (see length_bin).
    """
    if path == "length_bin":
        return lambda r: r["length_bin"] if "length_bin" in r else length_bin(r.get("prompt_tokens"))
    parts = path.split(".")
    if len(parts) == 1:
        return lambda r: r.get(path)

    def get(r: dict) -> Any:
        value: Any = r
        for p in parts:
            if type(value) is not dict:
                return None
            value = value.get(p)
        return value

    return get


def model_of(record: dict) -> str:
    policy = record.get("policy")
    if type(policy) is dict and isinstance(policy.get("model"), str):
        return policy["model"]
    model = record.get("model")
    return model if isinstance(model, str) else "-"


class Keys:
    """Builds the report key (run, model, dataset, *by) of a record; shared by every metric family."""

    def __init__(self, by: Iterable[str] = (), default_dataset: str | None = None, run_by_file: bool = False,
                 labels: dict[str, str] | None = None):
        self.by = list(by)
        for name in self.by:
            if name in ("model", "dataset", "run"):
                raise UsageError(f"--by {name}: {name} is always part of the key")
        self.getters = [field_getter(b) for b in self.by]
        self.default_dataset = default_dataset
        self.run_by_file = run_by_file or bool(labels)  # --label NAME per input: the run is named so
        self._labels: dict[str, str] = dict(labels or {})

    def label(self, source: str) -> str:
        label = self._labels.get(source)
        if label is None:
            label = self._labels[source] = file_label(source)
        return label

    def __call__(self, source: str, record: dict) -> tuple:
        dataset = record.get("dataset")
        if not isinstance(dataset, str):
            if self.default_dataset is not None:
                dataset = self.default_dataset
            else:
                dataset = "-" if self.run_by_file else self.label(source)
        run = self.label(source) if self.run_by_file else None
        by = tuple(_hashable(g(record)) for g in self.getters)
        return (run, model_of(record), dataset) + by

    def fields(self, key: tuple) -> dict:
        out: dict[str, Any] = {}
        if key[0] is not None:
            out["run"] = key[0]
        out["model"], out["dataset"] = key[1], key[2]
        for name, value in zip(self.by, key[3:]):
            out[name] = value
        return out


def _hashable(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        import orjson

        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return value


class _Group:
    __slots__ = (
        "last_verifier",
        "missing_tokens",
        "problems",
        "singles",
        "think",
        "thinking_rows",
        "timeouts",
        "tokens",
        "truncated",
        "verdicts",
        "verifiers",
    )

    def __init__(self) -> None:
        self.tokens = array("q")
        self.think = array("q")  # think_tokens, else completion_tokens (-1 = neither)
        self.verdicts = bytearray()
        self.truncated = 0
        self.problems: dict = {}  # problem id -> [n judged, c correct, votes?]
        self.singles: Counter = Counter()  # rows without a problem id: problems of one sample
        self.verifiers: set = set()
        self.last_verifier: Any = None
        self.timeouts: int | None = None
        self.missing_tokens = 0
        self.thinking_rows = 0  # rows with a think block (a think_tokens); none: no think/answer split


class ReasoningReport:
    """Streams scored rows into per-key summaries; `reports()` gives the report records."""

    def __init__(self, keys: Keys, budgets: Iterable[int] = (), ks: Iterable[int] | None = None,
                 maj: Iterable[int] | None = None, extract: str = "auto", verifier: str | None = None,
                 recommended_n: int | None = None, auc_tokens: int | None = None):
        self.keys = keys
        if auc_tokens is not None and auc_tokens < 1:
            raise UsageError(f"--auc-tokens must be a positive token count, not {auc_tokens}")
        self.auc_tokens = auc_tokens
        self.max_cap = 0  # the largest sampling.max_tokens seen (the default AUC horizon)
        self.budgets = sorted({int(b) for b in budgets})
        if any(b < 0 for b in self.budgets):
            raise UsageError("--budgets must be non-negative token counts")
        self.ks = sorted(set(ks)) if ks else None
        self.maj = sorted(set(maj)) if maj else []
        if any(k < 1 for k in (self.ks or [])) or any(k < 1 for k in self.maj):
            raise UsageError("k must be >= 1 for pass@k and maj@k")
        self.kmax_vote = max(self.maj) if self.maj else 0
        self.extract_name, self.extract = (None, None)
        if self.maj:
            from er.evaluation.answers import extractor

            self.extract_name, self.extract = extractor(extract)
        self.verifier = verifier
        self.recommended_n = recommended_n
        self.groups: dict[tuple, _Group] = {}
        self._cache: dict[tuple, tuple] = {}
        self._answer_ids: dict[str, int] = {}
        self._by_getters = keys.getters

    # ---- the hot path ------------------------------------------------------------------------
    def add(self, source: str, record: dict) -> tuple:
        # Fast path: the report key depends only on (source, policy.model, dataset, --by values);
        # remember the group per distinct raw combination instead of rebuilding the key every row.
        get = record.get
        policy = get("policy")
        raw = (source, policy.get("model") if type(policy) is dict else None, get("model"), get("dataset"))
        if self._by_getters:
            raw += tuple(g(record) for g in self._by_getters)
        try:
            key, g = self._cache[raw]
        except KeyError:
            key = self.keys(source, record)
            g = self.groups.get(key)
            if g is None:
                g = self.groups[key] = _Group()
            self._cache[raw] = (key, g)
        except TypeError:  # an unhashable model/dataset/--by value: build the key the slow way
            key = self.keys(source, record)
            g = self.groups.get(key)
            if g is None:
                g = self.groups[key] = _Group()
        pid = get("group_id")
        if pid is None:
            pid = get("id")
        if pid is not None and type(pid) not in (str, int):  # checked before any count changes
            raise ErError(f"field '{'group_id' if 'group_id' in record else 'id'}' should be a string or integer, "
                          f"got {type(pid).__name__}")
        c = get("correct", _MISSING)
        if c is True:
            v = 1
        elif c is False:
            v = 0
        elif c is None:
            v = 2
        elif c is _MISSING:
            raise ErError(NOT_SCORED + ("" if "answer" in record else
                                        " (and they have no 'answer' to verify against: add the gold answers)"))
        else:
            raise ErError(f"field 'correct' should be true, false or null, got {type(c).__name__}")
        t = get("completion_tokens")
        if type(t) is int and t >= 0:
            pass
        elif t is None:
            t = -1
            g.missing_tokens += 1
        else:
            raise ErError(f"field 'completion_tokens' should be a non-negative integer, got {t!r}")
        th = get("think_tokens")
        if th is None:
            th = t
        elif type(th) is int and 0 <= th and (t < 0 or th <= t):
            g.thinking_rows += 1
        elif type(th) is not int or th < 0 or (t >= 0 and th > t):
            raise ErError(f"field 'think_tokens' should be an integer in [0, completion_tokens], got {th!r}")
        g.tokens.append(t)
        g.think.append(th)
        sampling = get("sampling")
        if type(sampling) is dict:
            cap = sampling.get("max_tokens")
            if type(cap) is int and cap > self.max_cap:
                self.max_cap = cap
        g.verdicts.append(v)
        if get("finish_reason") == "length":
            g.truncated += 1
        if self.verifier is None:
            rewards = get("rewards")
            if type(rewards) is dict:
                names = tuple(rewards)
                if names != g.last_verifier:
                    g.last_verifier = names
                    g.verifiers.add(names)
        if v == 2:
            return key
        if pid is None:
            g.singles[(1, v)] += 1
            if self.maj:
                g.problems[object()] = [1, v, array("q", (self._vote(record) << 1 | v,))]
            return key
        p = g.problems.get(pid)
        if p is None:
            p = g.problems[pid] = [0, 0, array("q")] if self.maj else [0, 0]
        p[0] += 1
        p[1] += v
        if self.maj and len(p[2]) < self.kmax_vote:
            p[2].append(self._vote(record) << 1 | v)
        return key

    def _vote(self, record: dict) -> int:
        """The completion's answer as a small int id (0 = no answer), so votes are compact arrays."""
        text = record.get("completion")
        answer = self.extract(text) if isinstance(text, str) else None
        if answer is None:
            return 0
        ident = self._answer_ids.get(answer)
        if ident is None:
            ident = self._answer_ids[answer] = len(self._answer_ids) + 1
        return ident

    def add_timeouts(self, key: tuple, n: int) -> None:
        g = self.groups.get(key)
        if g is not None:
            g.timeouts = (g.timeouts or 0) + n

    # ---- the reports -------------------------------------------------------------------------
    def horizon(self) -> int:
        """T of oaa_auc: --auc-tokens, else the largest sampling.max_tokens, else the longest completion (>= 1)."""
        if self.auc_tokens is not None:
            return self.auc_tokens
        if self.max_cap:
            return self.max_cap
        return max([max(g.tokens, default=0) for g in self.groups.values()] + [1])

    def reports(self) -> list[dict]:
        horizon = self.horizon()
        out = [self._report(key, g, horizon) for key, g in self.groups.items() if len(g.verdicts)]
        for members in comparison_sets(out, self.keys.by):
            all_tokens = [r["mean_tokens"] for r in members if r.get("mean_tokens") is not None]
            for r in members:
                r["overthinking_score"] = M.overthinking_score(r.get("accuracy"), r.get("mean_tokens"), all_tokens)
        return out

    def arrays(self):
        """(key fields, tokens, think tokens, verdicts) per group, as numpy arrays (for plots)."""
        import numpy as np

        for key, g in self.groups.items():
            yield (self.keys.fields(key), np.frombuffer(g.tokens, dtype=np.int64) if len(g.tokens) else
                   np.zeros(0, np.int64), np.frombuffer(g.think, dtype=np.int64) if len(g.think) else
                   np.zeros(0, np.int64), np.frombuffer(bytes(g.verdicts), dtype=np.uint8))

    def _report(self, key: tuple, g: _Group, horizon: int) -> dict:
        import numpy as np

        tokens = np.frombuffer(g.tokens, dtype=np.int64) if len(g.tokens) else np.zeros(0, np.int64)
        verdicts = np.frombuffer(bytes(g.verdicts), dtype=np.uint8)
        n = len(verdicts)
        n_correct = int(np.count_nonzero(verdicts == 1))
        n_null = int(np.count_nonzero(verdicts == 2))
        judged = n - n_null
        accuracy = n_correct / judged if judged else None

        counts: Counter = Counter(g.singles)
        for pid, p in g.problems.items():
            if type(pid) is object:  # a single-row problem kept only for its vote
                continue
            if p[0]:
                counts[(p[0], p[1])] += 1
        problems = sum(counts.values())
        min_n = min((nn for nn, _ in counts), default=0)

        rec: dict[str, Any] = {"metric": "reasoning", **self.keys.fields(key), "n": n, "problems": problems,
                               "samples_per_problem": min_n if problems else None,
                               "accuracy": accuracy, "correct": n_correct, "judged": judged, "null": n_null,
                               "timeouts": g.timeouts, "verifier": self._verifier_name(g)}
        ks = self.ks if self.ks is not None else M.default_ks(min_n)
        for k in ks:
            rec[f"pass@{k}"] = M.mean_pass_at_k(counts, k)
        if self.maj:
            votes = [[(code >> 1 or None, bool(code & 1)) for code in p[2]] for p in g.problems.values() if p[2]]
            for k in self.maj:
                rec[f"maj@{k}"] = M.mean_maj_at_k(votes, k)
            rec["extract"] = self.extract_name

        known = tokens >= 0
        lengths = tokens[known]
        summary = M.length_summary(lengths)
        rec["mean_tokens"], rec["median_tokens"], rec["p90_tokens"] = summary["mean"], summary["median"], summary["p90"]
        for label, mask in (("correct", verdicts == 1), ("incorrect", verdicts == 0)):
            s = M.length_summary(tokens[known & mask])
            rec[f"mean_tokens_{label}"], rec[f"median_tokens_{label}"] = s["mean"], s["median"]
        rec["max_tokens"] = int(lengths.max()) if len(lengths) else None
        rec["truncated"] = g.truncated
        rec["truncation_rate"] = g.truncated / n if n else None
        total_tokens = int(lengths.sum())
        rec["total_tokens"] = total_tokens
        rec["tokens_per_correct"] = total_tokens / n_correct if n_correct and len(lengths) else None
        rec["accuracy_per_1k_tokens"] = (1000.0 * accuracy / summary["mean"]
                                         if accuracy is not None and summary["mean"] else None)
        for b, acc in M.budget_accuracy(tokens, verdicts, self.budgets).items():
            rec[f"accuracy_at_{b}"] = acc
        rec["missing_tokens"] = g.missing_tokens
        think = np.frombuffer(g.think, dtype=np.int64) if len(g.think) else np.zeros(0, np.int64)
        # without a think block in any row there is no think/answer split to report (not "all think")
        thinks = g.thinking_rows > 0
        rec["mean_think_tokens"] = M.length_summary(think[think >= 0])["mean"] if thinks else None
        rec["mean_answer_tokens"] = M.length_summary((tokens - think)[known])["mean"] if thinks else None
        rec["oaa_auc"] = M.oaa_auc(think, verdicts, horizon)
        rec["auc_tokens"] = horizon
        if self.recommended_n is not None:
            rec["recommended_n"] = self.recommended_n
        return rec

    def _verifier_name(self, g: _Group) -> str | None:
        if self.verifier is not None:
            names = [self.verifier]
        else:
            names = sorted({"+".join(v) for v in g.verifiers if v})
        if not names:
            return None
        text = ", ".join(names)
        if any(part.split(":")[0] == "math" for n in names for part in n.replace("+", ",").split(",")):
            text += f" (math-verify {_version('math-verify')})"
        return text


@functools.cache  # looked up per report group; the installed version cannot change mid-run
def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


# ---- comparison ----------------------------------------------------------------------------------
def comparison_sets(reports: list[dict], by: Iterable[str]) -> list[list[dict]]:
    """Reports that are compared with each other: the same metric, dataset and --by fields, in input order."""
    sets: dict[tuple, list[dict]] = {}
    for r in reports:
        sets.setdefault((r.get("metric"), r["dataset"]) + tuple(_hashable(r.get(b)) for b in by), []).append(r)
    return list(sets.values())


_COMPARISON_FIELDS = ("baseline", "length_change", "accuracy_delta", "aes", "headline")


def compare(reports: list[dict], keys: Keys, baseline: str | None = None,
            aes_weights: tuple[float, float, float] | None = None,
            not_compared: list[str] | None = None) -> list[dict]:
    """Add `baseline`, `length_change`, `accuracy_delta`, `aes`, `headline` to each report.

    Reports are compared within the same (dataset, --by fields); the baseline of each such set is the
    report whose `run` or `model` equals `--baseline` (a file path matches its run name), else the
    first report of the set. `aes_weights` = (α, β, γ) of AES (default O1-Pruner's 1, 3, 5).
    A set with nothing to compare (one run alone on its dataset, or no report of the --baseline in
    it) gets null comparison fields, never a run against itself; `not_compared` collects a line for each.
    """
    alpha, beta, gamma = aes_weights or (M.AES_ALPHA, M.AES_BETA, M.AES_GAMMA)
    wanted = None if baseline is None else {baseline, file_label(baseline)}
    matched = False
    for members in comparison_sets(reports, keys.by):
        base = members[0]
        if wanted is not None:
            hits = [r for r in members if r.get("run") in wanted or r.get("model") in wanted]
            base = hits[0] if hits else None
            matched = matched or bool(hits)
        if base is None or len(members) == 1:
            for r in members:
                r.update(dict.fromkeys(_COMPARISON_FIELDS))
            if not_compared is not None:
                where = ", ".join(f"{k} {members[0].get(k)!r}" for k in ("dataset", *keys.by))
                runs = ", ".join(str(r.get("run") or r["model"]) for r in members)
                why = "no other run on it" if base is not None else "no report of the --baseline on it"
                not_compared.append(f"{runs} on {where}: {why}")
            continue
        label = base.get("run") or base["model"]
        for r in members:
            length, base_length = r.get("mean_tokens"), base.get("mean_tokens")
            acc, base_acc = r.get("accuracy"), base.get("accuracy")
            r["baseline"] = label
            r["length_change"] = M.relative_change(length, base_length)
            r["accuracy_delta"] = None if acc is None or base_acc is None else acc - base_acc
            r["aes"] = M.aes(length, acc, base_length, base_acc, alpha, beta, gamma)
            r["headline"] = M.headline(r["length_change"], r["accuracy_delta"])
    if wanted is not None and not matched and reports:
        names = sorted({r.get("run") or r["model"] for r in reports})
        raise UsageError(f"--baseline {baseline!r} matches no model or run; have: {', '.join(names)}")
    return reports
