"""Accuracy and length metrics of `er eval` (pure functions over small numeric summaries).

pass@k — the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained on
Code", arXiv 2107.03374, eq. 1): for a problem with n judged samples of which c are correct,

    pass@k = 1 - C(n - c, k) / C(n, k)          (= 1 when n - c < k)

averaged over problems. Computed exactly with integer binomials (Python's int / int division is
correctly rounded), grouped by distinct (n, c) pairs so a million rows cost a handful of binomials.
A problem with fewer than k judged samples has no unbiased estimate: pass@k is then null for the
whole report (never a silently biased number).

maj@k — majority vote over the first k samples' extracted final answers (lighteval's `maj_at_n`
shape): the most common answer wins, ties go to the answer seen first, samples without an answer
do not vote; the problem counts as solved iff the winning answer's sample was judged correct.
Averaged over problems with at least k samples; null if any problem has fewer than k.

Budget accuracy — "the accuracy if every completion were cut at b tokens": a row counts as correct
under budget b iff it is correct AND completion_tokens <= b. The denominator is the same judged
rows as `accuracy` (a row without a token count counts as over every budget), so accuracy_at_b
rises to `accuracy` as b grows. This is the optimistic reading (an answer cut exactly at its end is
still an answer); it does not re-run the model with a forced stop.

Length summaries: mean, median and the 90th percentile (numpy's default linear interpolation) of
`completion_tokens`, also split by correct / incorrect; tokens per correct answer = total tokens of
the report's rows / number of correct rows; accuracy per 1k tokens = 1000 · accuracy / mean_tokens.

Accuracy-Efficiency Score (AES) — Luo et al. 2025, "O1-Pruner: Length-Harmonizing Fine-Tuning for
O1-Like Reasoning Pruning" (arXiv 2501.12570), reused by the same group's Ada-R1 (arXiv 2504.21659):

    ΔLength = (L_base - L_model) / L_base          (relative length *reduction*)
    ΔAcc    = (Acc_model - Acc_base) / Acc_base    (relative accuracy change)
    AES = α·ΔLength + β·|ΔAcc|   if ΔAcc >= 0
    AES = α·ΔLength − γ·|ΔAcc|   if ΔAcc <  0,     α = 1, β = 3, γ = 5

α, β, γ are `er eval --aes-weights a,b,c` (default 1,3,5, O1-Pruner's; Ada-R1's public evaluation code
uses the same 3 and 5). The baseline is `--baseline` (default the first run of each comparison set).

Think and answer tokens — `think_tokens` (written by `er sample`: completion tokens through the end of
the think block) and answer tokens = completion_tokens - think_tokens; a row without `think_tokens`
counts all its tokens as think (so a model that never closes a think block is all thinking).

Area under the Overthinking-Adjusted Accuracy curve — OptimalThinkingBench (Aggarwal et al. 2025,
arXiv 2508.13141): OAA_t = (1/n) Σ_i correct_i · 1[think_i < t] and

    AUC_OAA = (1/T) ∫_0^T OAA_t dt = (1/n) Σ_i correct_i · max(0, 1 - think_i / T)

over the n judged rows, think_i = `think_tokens` falling back to `completion_tokens` (a row with
neither counts 0). T (`auc_tokens`) is `--auc-tokens`, else the largest `sampling.max_tokens` of the
input, else the longest completion, and is the same for every report of one run of `er eval`, so the
AUCs are comparable. Departure: the paper fixes T per benchmark; we default to the sampling cap.

Overthinking score — LLMThinkBench (Srivastava et al., Jul 2025; the `calculate_efficiency_score` of
its released package, v0.1.6): the harmonic mean of accuracy and token efficiency,

    TE = 1 - (tok - min) / (max - min),   score = 2·Acc·TE / (Acc + TE)   (0 when Acc + TE = 0)

with tok = the report's mean_tokens and min/max over the reports compared together (same dataset
and --by fields, every model/run). As in the released code: with fewer than two reports the score is
the accuracy itself, and when min = max, TE = 1.
The headline form of the papers ("-47.3% length, +1.48 accuracy") is `relative length change` =
(L_model - L_base) / L_base and the accuracy difference in percentage points.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

AES_ALPHA, AES_BETA, AES_GAMMA = 1.0, 3.0, 5.0


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al.'s unbiased pass@k for one problem: 1 - C(n-c, k) / C(n, k)."""
    if k < 1 or n < k:
        raise ValueError(f"pass@{k} needs k >= 1 and at least k samples (n={n})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean_pass_at_k(counts: Counter, k: int) -> float | None:
    """pass@k averaged over problems; `counts` maps (n, c) -> number of problems. None if any n < k."""
    total = sum(counts.values())
    if total == 0 or any(n < k for n, _ in counts):
        return None
    return sum(m * pass_at_k(n, c, k) for (n, c), m in counts.items()) / total


def majority_correct(votes: Sequence[tuple[object, bool]], k: int) -> bool:
    """Is the majority answer of the first k (answer, correct) votes correct? (answer None = no vote)"""
    tally: Counter = Counter()
    verdict: dict = {}
    for answer, correct in votes[:k]:
        if answer is None:
            continue
        tally[answer] += 1
        verdict.setdefault(answer, correct)  # the first sample with this answer judges it
    if not tally:
        return False
    best = max(tally.values())
    for answer in tally:  # insertion order: ties go to the answer seen first
        if tally[answer] == best:
            return bool(verdict[answer])
    return False  # pragma: no cover


def mean_maj_at_k(problems: Iterable[Sequence[tuple[object, bool]]], k: int) -> float | None:
    total = solved = 0
    for votes in problems:
        if len(votes) < k:
            return None
        total += 1
        solved += majority_correct(votes, k)
    return solved / total if total else None


def budget_accuracy(tokens, correct, budgets: Iterable[int]) -> dict[int, float | None]:
    """{b: share of judged rows that are correct with completion_tokens <= b}.

    `tokens`: numpy int array (-1 = unknown); `correct`: numpy array 1 correct, 0 wrong, 2 null.
    """
    import numpy as np

    judged = correct != 2
    n = int(judged.sum())
    ok = (correct == 1) & (tokens >= 0)
    out: dict[int, float | None] = {}
    for b in budgets:
        out[b] = float(np.count_nonzero(ok & (tokens <= b))) / n if n else None
    return out


def length_summary(tokens) -> dict[str, float | None]:
    """mean / median / p90 of a numpy array of token counts (empty -> nulls)."""
    import numpy as np

    if len(tokens) == 0:
        return {"mean": None, "median": None, "p90": None}
    t = tokens.astype(np.float64)
    return {"mean": float(t.mean()), "median": float(np.median(t)), "p90": float(np.percentile(t, 90))}


def relative_change(value: float | None, base: float | None) -> float | None:
    """(value - base) / base; None when either is missing or base is 0."""
    if value is None or base is None or base == 0:
        return None
    return (value - base) / base


def aes(length: float | None, accuracy: float | None, base_length: float | None, base_accuracy: float | None,
        alpha: float = AES_ALPHA, beta: float = AES_BETA, gamma: float = AES_GAMMA) -> float | None:
    """O1-Pruner's Accuracy-Efficiency Score of a model against a baseline (see the module docstring)."""
    d_len = relative_change(length, base_length)
    d_acc = relative_change(accuracy, base_accuracy)
    if d_len is None or d_acc is None:
        return None
    d_len = -d_len  # AES rewards a length *reduction*
    return alpha * d_len + (beta * abs(d_acc) if d_acc >= 0 else -gamma * abs(d_acc))


def oaa_auc(think, correct, tokens_cap: float) -> float | None:
    """OptimalThinkingBench's AUC_OAA: mean over judged rows of correct · max(0, 1 - think / T).

    `think`: numpy int array of think tokens (-1 = unknown: counts 0); `correct`: 1 / 0 / 2 (null, left out).
    """
    import numpy as np

    judged = correct != 2
    n = int(judged.sum())
    if not n or tokens_cap <= 0:
        return None
    ok = (correct == 1) & (think >= 0)
    credit = np.clip(1.0 - think[ok].astype(np.float64) / tokens_cap, 0.0, 1.0)
    return float(credit.sum()) / n


def overthinking_score(accuracy: float | None, tokens: float | None, all_tokens: Sequence[float]) -> float | None:
    """LLMThinkBench's overthinking (efficiency) score: 2·Acc·TE / (Acc + TE), TE = 1 - (tok - min)/(max - min)."""
    if accuracy is None:
        return None
    if tokens is None or len(all_tokens) < 2:
        return accuracy
    lo, hi = min(all_tokens), max(all_tokens)
    te = 1.0 if hi == lo else 1.0 - (tokens - lo) / (hi - lo)
    return 0.0 if accuracy + te == 0 else 2 * accuracy * te / (accuracy + te)


def parse_aes_weights(text: str | None) -> tuple[float, float, float]:
    """`--aes-weights a,b,c` -> (α, β, γ); None -> O1-Pruner's (1, 3, 5)."""
    from er.errors import UsageError

    if text is None:
        return AES_ALPHA, AES_BETA, AES_GAMMA
    try:
        a, b, c = (float(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--aes-weights must be three numbers a,b,c (α length, β accuracy gain, γ accuracy loss), "
                         f"not {text!r}") from None
    return a, b, c


def headline(length_change: float | None, accuracy_delta: float | None) -> str | None:
    """The papers' form: "-47.3% length, +1.48 accuracy" (accuracy in percentage points)."""
    if length_change is None or accuracy_delta is None:
        return None
    return f"{100 * length_change:+.1f}% length, {100 * accuracy_delta:+.2f} accuracy"


def default_ks(min_n: int) -> list[int]:
    """1, the powers of two below the smallest per-problem sample count n, and n itself."""
    ks, k = [], 1
    while k < min_n:
        ks.append(k)
        k *= 2
    if min_n >= 1:
        ks.append(min_n)
    return ks
