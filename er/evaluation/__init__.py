"""`er eval`: metrics and reports over scored records (see DESIGN.md, the `report` record kind).

Modules:
- metrics: pass@k (Chen et al. 2021), maj@k, budget accuracy, length summaries, AES (O1-Pruner);
- answers: final-answer extraction for majority votes (math-verify, boxed, letter);
- report: the streaming accuracy/length report per (model, dataset[, --by]) and the comparison;
- lengthcontrol: Ruler PM/FM, AffectGPT emotion wheel, L-Eval, LCFO;
- lcwinrate: Length-Controlled AlpacaEval (GLM fitted with scipy.optimize);
- text: ROUGE-1/2/L, token F1, L-Eval exact match;
- render: Markdown tables; plot: the PNG (matplotlib, Agg).
Heavy libraries (numpy, scipy, matplotlib, math-verify) are imported inside the functions that use them.
"""

from __future__ import annotations

# --metric name -> (module, class) of its report
METRICS = {
    "reasoning": ("er.evaluation.report", "ReasoningReport"),
    "ruler": ("er.evaluation.lengthcontrol", "RulerReport"),
    "lc-winrate": ("er.evaluation.lcwinrate", "LCWinRateReport"),
    "emotion": ("er.evaluation.lengthcontrol", "EmotionReport"),
    "leval": ("er.evaluation.lengthcontrol", "LEvalReport"),
    "lcfo": ("er.evaluation.lengthcontrol", "LCFOReport"),
}
