"""`emotion-wheel`: AffectGPT-R1's emotion-wheel (EW) score of predicted vs gold emotion sets, arXiv 2508.01318.

Lian et al., "AffectGPT-R1" (2025): open-vocabulary emotion recognition trained with GRPO on the EW
metric of AffectGPT (zeroQiaoba/AffectGPT, my_affectgpt/evaluation/wheel.py, "case3" mapping; spec
length-control-and-eval.md §5). The metric is [CODE]; the per-completion reward form is
RECONSTRUCTED; the length penalty is RECONSTRUCTED.

Mapping a label w under wheel k at level l, M_{k,l}(w) (after lower-casing and stripping):
    w not in F (format2raws)        -> dropped
    C = sorted(union of S(b) for b in F(w))      (S = label2wheel synonyms)
    the first c in C that is a word of wheel k -> cluster_{k,l}(c); none -> dropped
    cluster level1: the level-1 root of c's subtree
    cluster level2: a level-3 word -> its level-2 parent; a level-2 word -> itself;
                    a level-1 root -> its alphabetically first level-2 child
Per sample and wheel: G = {M(w): w in gold}, P = {M(w): w in pred}; G empty -> the sample is skipped;
P empty -> prec = rec = 0; else prec = |G & P| / |P|, rec = |G & P| / |G|.

Reward per completion (reconstructed, as the spec and a third-party GRPO reimplementation read it):
    r = (1/K) sum_k F_k,  F_k = 2 prec rec / (prec + rec) (0 when both are 0), over the K wheels
    r -= beta * max(0, |pred_raw| - K_words)          (length penalty, reconstructed; off: beta=0)
A row whose gold maps to nothing in every wheel scores null (the metric skips it). The dataset-level
metric (`ew_metric`) averages prec and rec over samples first and takes F of the averages, per wheel,
then averages (F, P, R) over wheels, as the official code does.

Predicted words: the last `<answer>...</answer>` block of the completion (else the text after the
last `</think>`, else the whole completion; reconstructed), split on commas. Gold: the record's
`answer` (a comma-separated string or a list of strings; rename with `gold_field`).

Tables (er/rewards/data/emotion_{wheels,synonyms,forms}.json) are a TOY set built from the spec's
worked example (one wheel, 31 wheel words) -- NOT the AffectGPT release (5 wheels, ~250 wheel words,
~1.2k synonyms, ~7.4k surface forms). For real use convert the release tables to the same JSON shape
and pass `tables=DIR`. Worked example (toy): gold {happiness, worried}, pred {joyful, nervous, angry,
excited} -> prec 2/3, rec 1, r = 0.8.

Defaults: level=level1, beta=0.0, K_words=4, tables = the shipped toy set.
"""

from __future__ import annotations

import functools
import json
import os
import re
from importlib import resources

from er.errors import ErError
from er.rewards import REWARDS
from er.rewards.base import Reward

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)


@functools.cache
def load_tables(directory: str = "") -> tuple[dict, dict, dict]:
    """(wheels, synonyms, forms) from `directory`, or the shipped toy tables when it is ""."""

    def read(name: str) -> dict:
        if directory:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                return json.load(f)
        return json.loads(resources.files("er.rewards").joinpath("data", name).read_text(encoding="utf-8"))

    wheels = read("emotion_wheels.json")["wheels"]
    synonyms = {k.strip().lower(): [v.strip().lower() for v in vs]
                for k, vs in read("emotion_synonyms.json")["synonyms"].items()}
    forms = {k.strip().lower(): [v.strip().lower() for v in vs] for k, vs in read("emotion_forms.json")["forms"].items()}
    return wheels, synonyms, forms


def clusters(wheel: dict, level: str) -> dict[str, str]:
    """Every word of a wheel -> its cluster at `level` (level1 or level2)."""
    out: dict[str, str] = {}
    for root, subtree in wheel.items():
        root = root.strip().lower()
        children = sorted(c.strip().lower() for c in subtree)
        out[root] = root if level == "level1" else (children[0] if children else root)
        for child, leaves in subtree.items():
            child = child.strip().lower()
            out[child] = root if level == "level1" else child
            for leaf in leaves:
                out[leaf.strip().lower()] = root if level == "level1" else child
    return out


class Wheels:
    """The mapping M_{k,l} for every wheel k of a table set."""

    def __init__(self, tables: str = "", level: str = "level1"):
        wheels, self.synonyms, self.forms = load_tables(tables)
        self.clusters = [clusters(w, level) for _, w in sorted(wheels.items())]
        self._candidates: dict[str, list[str]] = {}  # per known form (a bounded set), shared by every wheel

    def candidates(self, word: str) -> list[str]:
        """The synonyms of the word's base forms, sorted (the order ties are broken in)."""
        key = word.strip().lower()
        found = self._candidates.get(key)
        if found is None:
            bases = self.forms.get(key)
            if not bases:
                return []
            found = self._candidates[key] = sorted({c for b in bases for c in self.synonyms.get(b, ())})
        return found

    def map(self, word: str, k: int) -> str | None:
        table = self.clusters[k]
        for c in self.candidates(word):
            if c in table:
                return table[c]
        return None

    def sets(self, words: list[str], k: int) -> set[str]:
        return {m for m in (self.map(w, k) for w in words) if m is not None}

    def prec_rec(self, gold: list[str], pred: list[str], k: int) -> tuple[float, float] | None:
        g = self.sets(gold, k)
        if not g:
            return None
        p = self.sets(pred, k)
        if not p:
            return 0.0, 0.0
        both = len(g & p)
        return both / len(p), both / len(g)


def f1(prec: float, rec: float) -> float:
    return 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)


def split_words(value) -> list[str]:
    items = value if isinstance(value, list) else str(value).split(",")
    return [w.strip() for w in (str(x) for x in items) if w.strip()]


def predicted_words(completion: str) -> list[str]:
    blocks = _ANSWER.findall(completion)
    text = blocks[-1] if blocks else completion.rsplit("</think>", 1)[-1]
    return split_words(text)


def ew_metric(golds: list[list[str]], preds: list[list[str]], tables: str = "", level: str = "level1") -> dict:
    """The official dataset-level EW score: per wheel F of the averaged precision and recall, averaged over wheels."""
    wheels = Wheels(tables, level)
    fs, ps, rs = [], [], []
    for k in range(len(wheels.clusters)):
        pairs = [pr for pr in (wheels.prec_rec(g, p, k) for g, p in zip(golds, preds)) if pr is not None]
        if not pairs:
            continue
        P = sum(p for p, _ in pairs) / len(pairs)
        R = sum(r for _, r in pairs) / len(pairs)
        fs.append(f1(P, R))
        ps.append(P)
        rs.append(R)
    n = len(fs)
    if not n:
        return {"F": None, "P": None, "R": None}
    return {"F": sum(fs) / n, "P": sum(ps) / n, "R": sum(rs) / n}


@REWARDS.register("emotion-wheel")
class EmotionWheel(Reward):
    """AffectGPT-R1 emotion-wheel F of predicted vs gold emotion sets (metric: code; per-row reward and penalty reconstructed)."""

    provenance = "reconstructed"

    def __init__(self, level: str = "level1", beta: float = 0.0, K_words: int = 4, tables: str = "",
                 gold_field: str = "answer"):
        if level not in ("level1", "level2"):
            raise ValueError(f"level must be level1 or level2, not {level!r}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if K_words < 0:
            raise ValueError(f"K_words must be >= 0, got {K_words}")
        if tables and not os.path.isdir(tables):
            raise ValueError(f"tables must be a directory with emotion_wheels/synonyms/forms.json, not {tables!r}")
        try:
            self.wheels = Wheels(tables, level)
        except (OSError, KeyError, json.JSONDecodeError, AttributeError) as exc:
            raise ValueError(f"cannot read the emotion tables in {tables!r}: {exc}") from None
        self.beta, self.K_words, self.gold_field = beta, K_words, gold_field
        self.fields = {"completion": "string", gold_field: ("string", "array")}

    def score_row(self, record: dict) -> float | None:
        gold = split_words(record[self.gold_field])
        if not gold:
            raise ErError(f"field {self.gold_field!r} holds no emotion words")
        pred = predicted_words(record["completion"])
        scores = [pr for pr in (self.wheels.prec_rec(gold, pred, k) for k in range(len(self.wheels.clusters)))
                  if pr is not None]
        if not scores:
            return None
        r = sum(f1(p, q) for p, q in scores) / len(scores)
        if self.beta:
            r -= self.beta * max(0, len(pred) - self.K_words)
        return r
