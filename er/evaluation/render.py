"""Markdown tables of `er eval` reports (`--format md`): a GitHub-flavoured pipe table per metric family,
ready to paste into a paper draft or a PR. Rates are shown as percentages with two decimals, token counts
as integers, the comparison as the papers' headline ("-47.3% length, +1.48 accuracy")."""

from __future__ import annotations

from typing import Any

_KEYS = ("run", "model", "dataset")
_PERCENT = {"accuracy", "truncation_rate", "pm", "fm", "win_rate", "lc_win_rate", "lc_standard_error",
            "exact_match", "f1", "rouge1", "rouge2", "rougeL", "leval_score", "ew_f", "ew_precision", "ew_recall",
            "within_band", "source_overlap", "oaa_auc"}
_PERCENT_PREFIXES = ("pass@", "maj@", "accuracy_at_", "pm_", "fm_")
_COLUMNS = {
    "reasoning": ("n", "problems", "accuracy", "pass@*", "maj@*", "mean_tokens", "median_tokens", "p90_tokens",
                  "mean_tokens_correct", "mean_tokens_incorrect", "truncation_rate", "tokens_per_correct",
                  "mean_think_tokens", "mean_answer_tokens", "accuracy_at_*", "oaa_auc", "overthinking_score", "null",
                  "headline", "aes"),
    "ruler": ("level", "n", "pm", "fm"),
    "lc_winrate": ("baseline", "n", "win_rate", "lc_win_rate", "lc_standard_error", "glm", "flagged"),
    "emotion": ("n", "ew_f", "ew_precision", "ew_recall"),
    "leval": ("task", "evaluation", "n", "exact_match", "f1", "rouge1", "rouge2", "rougeL", "leval_score"),
    "lcfo": ("ratio", "n", "length_compliance", "within_band", "rougeL", "repetition_4", "source_overlap"),
}
_HEADERS = {"mean_tokens": "mean tok", "median_tokens": "median tok", "p90_tokens": "p90 tok",
            "mean_tokens_correct": "tok ✓", "mean_tokens_incorrect": "tok ✗", "truncation_rate": "truncated",
            "tokens_per_correct": "tok/correct", "mean_think_tokens": "think tok",
            "mean_answer_tokens": "answer tok", "oaa_auc": "AUC_OAA", "overthinking_score": "overthinking", "headline": "vs baseline", "aes": "AES",
            "lc_standard_error": "LC SE", "lc_win_rate": "LC win rate", "win_rate": "win rate"}


_THINK = ("mean_think_tokens", "mean_answer_tokens")


def _short_models(rows: list[dict]) -> dict[str, str]:
    """A model path -> its short name (the last component, `parent/step-N` for a checkpoint) when those
    are unique among the table's models; the report records keep the full name."""
    from er.evaluation.plot import short_name

    models = list(dict.fromkeys(r["model"] for r in rows if isinstance(r.get("model"), str)))
    short = {m: short_name(m) for m in models}
    return short if len(set(short.values())) == len(short) else {}


def _percent(name: str) -> bool:
    return name in _PERCENT or name.startswith(_PERCENT_PREFIXES)


def cell(name: str, value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if _percent(name):
            return f"{100 * value:.2f}"
        if name.endswith("_tokens") or name.startswith(("mean_tokens", "median_tokens")) or name == "tokens_per_correct":
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}" if name not in ("level",) else str(value)
    return str(value).replace("|", "\\|")


def _expand(pattern: str, reports: list[dict]) -> list[str]:
    if not pattern.endswith("*"):
        return [pattern] if any(pattern in r for r in reports) else []
    prefix = pattern[:-1]
    names: list[str] = []
    for r in reports:
        for k in r:
            if k.startswith(prefix) and k not in names:
                names.append(k)
    return sorted(names, key=lambda k: (len(k), k))


def markdown(reports: list[dict], by: list[str] = ()) -> str:
    if not reports:
        return "_no records_\n"
    blocks = []
    families: list[str] = []
    for r in reports:
        if r.get("metric") not in families:
            families.append(r.get("metric"))
    for family in families:
        rows = [r for r in reports if r.get("metric") == family]
        columns = [k for k in _KEYS if any(k in r for r in rows)] + [b for b in by if any(b in r for r in rows)]
        for pattern in _COLUMNS.get(family, ()):
            columns += [c for c in _expand(pattern, rows) if c not in columns]
        # no think block in any row: no think/answer columns (they would read "all thinking, no answer")
        columns = [c for c in columns if c not in _THINK or any(r.get(c) is not None for r in rows)]
        header = [_HEADERS.get(c, c) + (" %" if _percent(c) else "") for c in columns]
        lines = ["| " + " | ".join(header) + " |",
                 "| " + " | ".join("---:" if c not in _KEYS and c not in by and c not in ("headline", "glm", "baseline", "task", "evaluation", "level")
                                   else "---" for c in columns) + " |"]
        models = _short_models(rows)
        for r in rows:
            lines.append("| " + " | ".join(cell(c, models.get(r.get(c), r.get(c)) if c == "model" else r.get(c))
                                           for c in columns) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
