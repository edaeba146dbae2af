"""Text-overlap metrics for L-Eval and LCFO: answer normalisation, exact match, token F1, ROUGE-1/2/L.

ROUGE follows Google's `rouge_score` package (used by L-Eval's Evaluation/rouge.py and the LCM
toolkit LCFO's metrics come from) without depending on it: its default tokenizer lower-cases,
replaces every run of characters outside [a-z0-9] with a space and splits on whitespace; no
stemmer (L-Eval passes use_stemmer=False).
    ROUGE-N: overlap = multiset intersection of n-grams; P = overlap / #pred n-grams,
             R = overlap / #ref n-grams, F = 2PR / (P + R) (0 when either is 0).
    ROUGE-L: LCS length of the token sequences; P = LCS / |pred|, R = LCS / |ref|, same F.
Scores are fractions (rouge_score's scale), not percentages. ROUGE-Lsum (summary-level union LCS over
sentences) is not implemented.

L-Eval answer normalisation N(s) (Evaluation/em.py, f1.py; spec §9a): remove punctuation, replace the
articles a/an/the with a space (case-sensitive, so the option letter "A" survives), collapse whitespace;
F1's normaliser lower-cases first, EM's does not.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def rouge_tokens(text: str) -> list[str]:
    return _NON_ALNUM.sub(" ", text.lower()).split()


def _f(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(pred: str, ref: str, n: int) -> float:
    p, r = ngrams(rouge_tokens(pred), n), ngrams(rouge_tokens(ref), n)
    if not p or not r:
        return 0.0
    overlap = sum((p & r).values())
    return _f(overlap / sum(p.values()), overlap / sum(r.values()))


def lcs_length(a: list[str], b: list[str]) -> int:
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(pred: str, ref: str) -> float:
    p, r = rouge_tokens(pred), rouge_tokens(ref)
    lcs = lcs_length(p, r)
    if not lcs:
        return 0.0
    return _f(lcs / len(p), lcs / len(r))


def rouge(pred: str, refs: list[str]) -> dict[str, float]:
    """rouge1/rouge2/rougeL F, each the max over references (L-Eval's rule)."""
    return {"rouge1": max(rouge_n(pred, r, 1) for r in refs), "rouge2": max(rouge_n(pred, r, 2) for r in refs),
            "rougeL": max(rouge_l(pred, r) for r in refs)}


def normalize(text: str, lower: bool = False) -> str:
    if lower:
        text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def token_f1(pred: str, gt: str) -> float:
    p, g = normalize(pred, lower=True).split(), normalize(gt, lower=True).split()
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    return _f(common / len(p), common / len(g))


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def exam_em(pred: str, gt: str) -> float:
    """L-Eval exam exact match with partial credit for multi-letter options (spec §9a)."""
    n_gt, n_pred = normalize(gt), normalize(pred)
    if n_gt and all(ch in "ABCD" for ch in n_gt):
        if n_pred == n_gt:
            return 1.0
        return 0.25 if n_pred and set(n_pred) <= set(n_gt) else 0.0
    fp, fg = _float(pred.strip()), _float(gt.strip())  # on the raw strings: N() would eat the '.'
    if fp is not None and fg is not None:
        return float(fp == fg)
    return float("".join(gt.lower().split()) in "".join(pred.lower().split()))
