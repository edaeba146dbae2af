"""Length-control reports of `er eval --metric ...`: Ruler PM/FM, AffectGPT emotion wheel, L-Eval, LCFO.

Each report class takes rows one at a time (`add(source, record)`, raising ErError for a bad row, or
returning a reason string for a row it leaves out on purpose) and gives report records (`reports()`).
Rates and scores are fractions in [0, 1] (the papers print them ×100).

ruler (Li et al. 2024, arXiv 2409.18943, spec §6, [CODE]) — per (model, dataset[, --by]) and Ruler
  level (level0: 10/30/50/80, level1: 150/300/500, level2: 700/>800, plus "all"): PM and FM =
  #hits / #samples, micro-averaged over the level's samples; per target too (`pm_80`, `fm_gt800`).
  Target: `target_length` (er prompt records) or `TargetLength` (Ruler's TLG file); text:
  `completion` (er) or `output` (Ruler prediction file). Word count, windows: er.rewards.ruler.
  Self-generated-MLT evaluation is not implemented.
emotion (AffectGPT-R1, arXiv 2508.01318, spec §5; metric [CODE]) — the dataset-level EW score of
  er.rewards.emotion.ew_metric (per wheel F of the averaged precision and recall, averaged over
  wheels): gold = `answer` (list or comma string), pred = the completion's last <answer> block.
  The shipped wheel tables are a toy set; pass --emotion-tables DIR for the real AffectGPT tables.
leval (An et al. 2023, arXiv 2307.11088, spec §9a, [CODE]) — per task (record `task`, else `source`,
  else the dataset key), by the record's `evaluation`: `exam` -> exact match with partial credit
  (after the multiple-choice / gsm100 answer pre-processing), `f1` -> token F1, `rouge` -> ROUGE-1/2/L F
  (max over references, averaged over items) and the L-Eval score (R1·R2·RL)^(1/3) of the averages.
  Prediction: the first field whose name contains "_pred" (L-Eval's files; its prefix is the model),
  else `completion`; gold: `gt` (string or list). `LLM`/`human` rows are dropped (counted): their
  pairwise judge is not run here. Not implemented: topic_retrieval_longchat's mod-3 split, sci_fi's
  loyalty/fact split, codeU's tail extraction (those tasks get plain EM).
lcfo (Costa-jussà et al. 2024, arXiv 2412.08268, spec §9b, [RECONSTRUCTED]) — per (model, dataset,
  ratio[, --by]): length compliance W(pred) / (ρ·W(source)) (whitespace words; mean, and the share
  within ±20%, a band of our choosing), ROUGE-L F against the human summary at that ratio when given,
  repetition-4 = #4-grams / #distinct 4-grams − 1, and source n-gram overlap =
  |set(ngrams_1..4(pred)) ∩ set(ngrams_1..4(source))| / |set(ngrams_1..4(source))| over word n-grams.
  Record: `source_text`, `ratio` (5/10/20 as percent, or 0.05/0.1/0.2), pred `completion` or `output`,
  reference `reference` or `summaries[ratio]`. Summary expansion and the model-based metrics
  (fluency, SEAHORSE, QA coverage) are not implemented.
"""

from __future__ import annotations

import math
from typing import Any

from er.errors import ErError
from er.evaluation import text as T
from er.evaluation.report import Keys

LEVELS = {"level0": (10, 30, 50, 80), "level1": (150, 300, 500), "level2": (700, ">800")}


def _text(record: dict, *names: str) -> str:
    for n in names:
        v = record.get(n)
        if isinstance(v, str):
            return v
    raise ErError(f"missing field {' or '.join(repr(n) for n in names)} (the text to evaluate)")


def _target_name(t) -> str:
    return "gt800" if t == ">800" else str(t)


# ---- Ruler -------------------------------------------------------------------------------------
class RulerReport:
    def __init__(self, keys: Keys, span: str = "all"):
        self.keys, self.span = keys, span
        self.state: dict[tuple, dict] = {}

    def add(self, source: str, record: dict) -> str | None:
        from er.rewards.ruler import FM_WINDOWS, PM_WINDOWS, count_words, hit, ruler_target, text_span

        raw = record.get("target_length", record.get("TargetLength"))
        if raw is None:
            raise ErError("missing field 'target_length' (or Ruler's 'TargetLength')")
        target = ruler_target(raw)
        words = count_words(text_span(_text(record, "completion", "output"), self.span))
        per = self.state.setdefault(self.keys(source, record), {})
        cell = per.setdefault(target, [0, 0, 0])
        cell[0] += 1
        cell[1] += hit(words, PM_WINDOWS[target])
        cell[2] += hit(words, FM_WINDOWS[target])
        return None

    def reports(self) -> list[dict]:
        out = []
        for key, per in self.state.items():
            for level, targets in (*LEVELS.items(), ("all", tuple(t for ts in LEVELS.values() for t in ts))):
                cells = {t: per[t] for t in targets if t in per}
                n = sum(c[0] for c in cells.values())
                if not n:
                    continue
                rec: dict[str, Any] = {"metric": "ruler", **self.keys.fields(key), "level": level, "n": n,
                                       "pm": sum(c[1] for c in cells.values()) / n,
                                       "fm": sum(c[2] for c in cells.values()) / n}
                for t, c in cells.items():
                    rec[f"pm_{_target_name(t)}"] = c[1] / c[0]
                    rec[f"fm_{_target_name(t)}"] = c[2] / c[0]
                out.append(rec)
        return out


# ---- AffectGPT emotion wheel -------------------------------------------------------------------
class EmotionReport:
    def __init__(self, keys: Keys, tables: str = "", level: str = "level1"):
        self.keys, self.tables, self.level = keys, tables, level
        self.state: dict[tuple, tuple[list, list]] = {}

    def add(self, source: str, record: dict) -> str | None:
        from er.rewards.emotion import predicted_words, split_words

        gold = record.get("answer")
        if gold is None:
            raise ErError("missing field 'answer' (the gold emotion words)")
        golds, preds = self.state.setdefault(self.keys(source, record), ([], []))
        golds.append(split_words(gold))
        preds.append(predicted_words(_text(record, "completion")))
        return None

    def reports(self) -> list[dict]:
        from er.rewards.emotion import ew_metric

        out = []
        for key, (golds, preds) in self.state.items():
            score = ew_metric(golds, preds, self.tables, self.level)
            out.append({"metric": "emotion", **self.keys.fields(key), "n": len(golds), "wheel_level": self.level,
                        "ew_f": score["F"], "ew_precision": score["P"], "ew_recall": score["R"]})
        return out


# ---- L-Eval ------------------------------------------------------------------------------------
def _first_letter(text: str) -> str:
    for ch in text:
        if ch in "ABCD":
            return ch
    return "A"  # L-Eval's default when no option letter is found


def _coursera_letters(text: str) -> str:
    head = text.split("Question")[0]
    letters = sorted({ch for ch in head if ch in "ABCD"})
    return "".join(letters) if letters else "A"


def _gsm_answer(text: str) -> str:
    """The token after "The answer is", else the last token with a digit in the first paragraph; its digits up to the first '.'."""
    if "The answer is" in text:
        tail = text.split("The answer is", 1)[1].split()
        token = tail[0] if tail else ""
    else:
        tokens = [t for t in text.split("\n\n")[0].split() if any(ch.isdigit() for ch in t)]
        token = tokens[-1] if tokens else ""
    return "".join(ch for ch in token.split(".")[0] if ch.isdigit())


def leval_prepare(task: str, pred: str, gt: str) -> tuple[str, str]:
    """L-Eval's task-specific answer pre-processing before exam EM (multiple choice, gsm100)."""
    task = task.lower()
    if task in ("quality", "tpo", "coursera"):
        head = gt.split()[0] if gt.split() else gt
        gold = "".join(ch for ch in head if ch in "ABCD")
        guess = _coursera_letters(pred) if task == "coursera" else _first_letter(pred)
        return guess or "None", gold
    if task.startswith("gsm"):
        return _gsm_answer(pred), gt.strip()
    return pred, gt


class LEvalReport:
    def __init__(self, keys: Keys):
        self.keys = keys
        self.state: dict[tuple, dict] = {}

    def add(self, source: str, record: dict) -> str | None:
        evaluation = record.get("evaluation")
        if evaluation in ("LLM", "human"):
            return f"L-Eval {evaluation}-judged row (no automatic metric)"
        if evaluation not in ("exam", "f1", "rouge"):
            raise ErError(f"field 'evaluation' should be exam, f1, rouge, LLM or human, got {evaluation!r}")
        pred_key = next((k for k in record if "_pred" in k), None)
        pred = record.get(pred_key) if pred_key else record.get("completion")
        if not isinstance(pred, str):
            raise ErError("missing the prediction: a '<model>_pred' field or 'completion'")
        gt = record.get("gt")
        refs = gt if isinstance(gt, list) else [gt]
        if not refs or not all(isinstance(r, str) for r in refs):
            raise ErError("field 'gt' should be a string or a list of strings")
        key = self.keys(source, record)
        if pred_key and key[1] == "-":
            key = (key[0], pred_key.split("_pred")[0]) + key[2:]
        task = record.get("task") or record.get("source") or key[2]
        cell = self.state.setdefault(key + (task, evaluation), {"n": 0, "em": 0.0, "f1": 0.0, "r": [0.0, 0.0, 0.0]})
        cell["n"] += 1
        if evaluation == "exam":
            cell["em"] += max(T.exam_em(*leval_prepare(task, pred, r)) for r in refs)
        elif evaluation == "f1":
            cell["f1"] += max(T.token_f1(pred, r) for r in refs)
        else:
            scores = T.rouge(pred, refs)
            for i, name in enumerate(("rouge1", "rouge2", "rougeL")):
                cell["r"][i] += scores[name]
        return None

    def reports(self) -> list[dict]:
        out = []
        for full, cell in self.state.items():
            key, task, evaluation = full[:-2], full[-2], full[-1]
            n = cell["n"]
            rec: dict[str, Any] = {"metric": "leval", **self.keys.fields(key), "task": task,
                                   "evaluation": evaluation, "n": n}
            if evaluation == "exam":
                rec["exact_match"] = cell["em"] / n
            elif evaluation == "f1":
                rec["f1"] = cell["f1"] / n
            else:
                r1, r2, rl = (x / n for x in cell["r"])
                rec.update(rouge1=r1, rouge2=r2, rougeL=rl, leval_score=(r1 * r2 * rl) ** (1 / 3))
            out.append(rec)
        return out


def judge_win_rate(verdicts: list[str]) -> dict[str, float | int]:
    """L-Eval's pairwise judge win rate of system A from "[[A]]"/"[[B]]"/"[[C]]" verdicts (errors dropped).

    win rate(A) = (wins_A + 0.5 · ties) / (wins_A + wins_B + ties); every pair judged in both orders,
    verdicts already mapped back to the system (not the position).
    """
    a = sum(v == "[[A]]" for v in verdicts)
    b = sum(v == "[[B]]" for v in verdicts)
    c = sum(v == "[[C]]" for v in verdicts)
    total = a + b + c
    return {"wins": a, "losses": b, "ties": c, "errors": len(verdicts) - total,
            "win_rate": (a + 0.5 * c) / total if total else math.nan}


# ---- LCFO --------------------------------------------------------------------------------------
def word_ngrams(words: list[str], lo: int = 1, hi: int = 4) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for n in range(lo, hi + 1) for i in range(len(words) - n + 1)}


def repetition_4(words: list[str]) -> float | None:
    grams = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
    return len(grams) / len(set(grams)) - 1 if grams else None


def length_compliance(pred_words: int, source_words: int, ratio: float) -> float | None:
    target = ratio * source_words
    return pred_words / target if target > 0 else None


def _ratio(value) -> tuple[float, str]:
    if isinstance(value, str):
        value = value.strip().rstrip("%")
        try:
            value = float(value)
        except ValueError:
            raise ErError(f"field 'ratio' should be a number (5, 10, 20 or 0.05 ...), got {value!r}") from None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ErError(f"field 'ratio' should be a positive number, got {value!r}")
    fraction = value / 100 if value >= 1 else float(value)
    return fraction, f"{round(fraction * 100, 6):g}"


class LCFOReport:
    def __init__(self, keys: Keys, band: float = 0.2):
        self.keys, self.band = keys, band
        self.state: dict[tuple, dict] = {}

    def add(self, source: str, record: dict) -> str | None:
        pred = _text(record, "completion", "output")
        src = _text(record, "source_text")
        if "ratio" not in record:
            raise ErError("missing field 'ratio' (the summary length ratio: 5, 10 or 20)")
        fraction, label = _ratio(record["ratio"])
        ref = record.get("reference")
        summaries = record.get("summaries")
        if ref is None and isinstance(summaries, dict):
            ref = next((v for k, v in summaries.items() if _ratio(k)[1] == label), None)
        pw, sw = pred.split(), src.split()
        cell = self.state.setdefault(self.keys(source, record) + (label,),
                                     {"n": 0, "comp": [], "rl": [], "rep": [], "overlap": []})
        cell["n"] += 1
        comp = length_compliance(len(pw), len(sw), fraction)
        if comp is not None:
            cell["comp"].append(comp)
        if isinstance(ref, str):
            cell["rl"].append(T.rouge_l(pred, ref))
        rep = repetition_4(pw)
        if rep is not None:
            cell["rep"].append(rep)
        src_grams = word_ngrams(sw)
        if src_grams:
            cell["overlap"].append(len(word_ngrams(pw) & src_grams) / len(src_grams))
        return None

    def reports(self) -> list[dict]:
        def mean(xs):
            return sum(xs) / len(xs) if xs else None

        out = []
        for full, cell in self.state.items():
            key, ratio = full[:-1], full[-1]
            comp = cell["comp"]
            out.append({"metric": "lcfo", **self.keys.fields(key), "ratio": ratio, "n": cell["n"],
                        "length_compliance": mean(comp),
                        "within_band": (sum(abs(c - 1) <= self.band + 1e-12 for c in comp) / len(comp)) if comp else None,
                        "band": self.band, "rougeL": mean(cell["rl"]), "repetition_4": mean(cell["rep"]),
                        "source_overlap": mean(cell["overlap"])})
        return out


__all__ = ["EmotionReport", "LCFOReport", "LEvalReport", "RulerReport", "judge_win_rate"]
