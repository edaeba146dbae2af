"""Prompt and decoding interventions of `er sample`: how one prompt record becomes generation requests.

Every intervention is a flag; a prompt record that already carries `budget`, `target_length` or
`level` keeps its own value (the flag is the default for records without one).

HBPO budgets (Lyu et al., arXiv 2507.15844; rl-length-methods.md §4) — `--budgets 512,1024,2048,2560`.
  The G samples of a prompt are split into k contiguous subgroups of (as near as possible) equal size,
  sample j getting budget b[j*k // G]. Each subgroup's assistant turn is prefilled with the HBPO code
  string "<think> I will answer the question with {b} tokens." (the paper's text says "within"), and
  the budget is enforced as that subgroup's max_tokens. Departure: HBPO keeps generating to L_max and
  penalises overruns in the reward; here the budget is also the cap (as the issue asks). Record: `budget`.
  A record-level `budget` applies to all G samples.

Target length — `--target-length N` (or `LO-HI`: drawn uniformly per prompt from the seed, as L1's
  n_gold ~ U[100, 4000]); record `target_length`. `--target-style`:
    l1      (default) append "Think for {N} tokens."            (L1-Exact, rl-length-methods.md §7.5)
    l1-max  append "Think for maximum {N} tokens."              (L1-Max)
    ruler   append "The response should have a word count of {N} words." (Ruler TLG prompt, §6;
            N > 800 is rendered "more than 800")
    mlt     Ruler Meta Length Tokens: prefill "[MLT:{N}]" at the start of the assistant turn
            (N in 10,30,50,80,150,300,500,700, or >800 for N > 800; other N are rejected), and every
            MLT that is a single token of the vocabulary is a stop token (Ruler stops on a new MLT).

TLDR levels (Zhang et al., arXiv 2505.07961; length-control-and-eval.md §1) — `--level short|medium|long`
  (a comma list picks one per prompt from the seed, mixing levels across a batch); record `level`.
  reconstructed: the paper's wording is unknown; we append LEVEL_TEXT[level] to the user turn.

Stop scaling (TS of the same paper) — `--stop-scale F`, reconstructed. While the thinking segment is
  open (before the completion has produced `--think-end`, default `</think>`), the next-token logit
  of the stop token s is shifted:  z'_s = z_s + ln F  (i.e. its unnormalised probability times F; the
  sign-safe form of the spec's z_s / T_s), then temperature and top-p apply as usual:
  p' = top_p(softmax(z' / T)). s is `--think-end` when it is one token of the vocabulary, else EOS
  (and then the whole completion counts as thinking). F > 1 makes stopping more likely; F = 1 is off.
  Implemented as a logits processor in both backends (er.sampling.hf, er.sampling.vllm_worker).

Adaptive mode (Wang et al., arXiv 2505.20101; length-control-and-eval.md §2) — `--mode long|short|split|auto`.
  long/short: the first tokens of the assistant turn are forced (prefilled) to the mode marker
  (`--mode-markers LONG,SHORT`, default "<think>\n" and "<think>\n\n</think>\n\n" — reconstructed, the
  paper's tokens are unknown); split: the first half of the G samples long, the second half short
  (the paper's controlled sampling); auto: nothing forced, and the record's `mode` says which marker
  the completion starts with (null for neither). Record: `mode`.

Prefilled text is part of the prompt (it counts in `prompt_tokens`, not in `completion_tokens`, and
has no behaviour log-prob); the record's `prefix` field holds it so rewards can see the whole turn.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from er.errors import ErError, UsageError

HBPO_PREFILL = "<think> I will answer the question with {b} tokens."
LEVEL_TEXT = {  # reconstructed wording
    "short": "Think briefly: keep your reasoning as short as possible.",
    "medium": "Think moderately: use a reasoning trace of medium length.",
    "long": "Think thoroughly: a long, detailed reasoning trace is fine.",
}
TARGET_TEXT = {
    "l1": "Think for {n} tokens.",
    "l1-max": "Think for maximum {n} tokens.",
    "ruler": "The response should have a word count of {n} words.",
}
MLT_TARGETS = (10, 30, 50, 80, 150, 300, 500, 700)
DEFAULT_MODE_MARKERS = ("<think>\n", "<think>\n\n</think>\n\n")


def parse_budgets(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        budgets = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--budgets must be comma-separated integers, not {text!r}") from None
    if not budgets or any(b < 1 for b in budgets):
        raise UsageError(f"--budgets must be positive integers, not {text!r}")
    return budgets


def parse_target(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        lo, _, hi = text.partition("-")
        lo_i, hi_i = int(lo), int(hi or lo)
    except ValueError:
        raise UsageError(f"--target-length must be N or LO-HI, not {text!r}") from None
    if lo_i < 1 or hi_i < lo_i:
        raise UsageError(f"--target-length must be positive with LO <= HI, not {text!r}")
    return lo_i, hi_i


def parse_levels(text: str | None) -> list[str] | None:
    if not text:
        return None
    levels = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in levels if x not in LEVEL_TEXT]
    if bad or not levels:
        raise UsageError(f"--level must be short, medium or long (comma list to mix), not {text!r}")
    return levels


def mlt_token(n: int) -> str:
    if n > 800:
        return "[MLT:>800]"
    if n not in MLT_TARGETS:
        raise ErError(f"target_length {n} has no Meta Length Token (use {', '.join(map(str, MLT_TARGETS))} or >800)")
    return f"[MLT:{n}]"


@dataclass
class Interventions:
    """What the flags ask for; `plan(record, G, rng)` applies it to one prompt."""

    budgets: list[int] | None = None
    target: tuple[int, int] | None = None
    target_style: str = "l1"
    levels: list[str] | None = None
    mode: str | None = None
    mode_markers: tuple[str, str] = DEFAULT_MODE_MARKERS
    stop_scale: float | None = None
    think_end: str = "</think>"

    def __post_init__(self):
        if self.target_style not in (*TARGET_TEXT, "mlt"):
            raise UsageError(f"--target-style must be l1, l1-max, ruler or mlt, not {self.target_style!r}")
        if self.mode not in (None, "long", "short", "split", "auto"):
            raise UsageError(f"--mode must be long, short, split or auto, not {self.mode!r}")
        if self.stop_scale is not None and not self.stop_scale > 0:
            raise UsageError(f"--stop-scale must be > 0, not {self.stop_scale}")

    def plan(self, record: dict, n: int, rng: random.Random) -> list["Subgroup"]:
        """Subgroups (contiguous samples sharing one prompt text and cap) for one prompt record."""
        fields: dict = {}
        suffixes: list[str] = []
        prefill = ""
        level = record.get("level")
        if level is None and self.levels:
            level = self.levels[0] if len(self.levels) == 1 else rng.choice(self.levels)
        if level is not None:
            if level not in LEVEL_TEXT:
                raise ErError(f"level must be short, medium or long, not {level!r}")
            fields["level"] = level
            suffixes.append(LEVEL_TEXT[level])
        target = record.get("target_length")
        if target is None and self.target:
            lo, hi = self.target
            target = lo if lo == hi else rng.randint(lo, hi)
        if target is not None:
            if type(target) is not int or target < 1:
                raise ErError(f"target_length must be a positive integer, not {target!r}")
            fields["target_length"] = target
            if self.target_style == "mlt":
                prefill += mlt_token(target)
            else:
                shown = "more than 800" if self.target_style == "ruler" and target > 800 else target
                suffixes.append(TARGET_TEXT[self.target_style].format(n=shown))
        if record.get("budget") is not None:
            budget = record["budget"]
            if type(budget) is not int or budget < 1:
                raise ErError(f"budget must be a positive integer, not {budget!r}")
            budgets = [budget]
        else:
            budgets = self.budgets
        if budgets and len(budgets) > n:
            raise UsageError(f"-n {n} is smaller than the {len(budgets)} budgets; give at least one sample per budget")
        modes: list[str | None] = [None]
        if self.mode in ("long", "short"):
            modes = [self.mode]
        elif self.mode == "split":
            if n < 2:
                raise UsageError("--mode split needs -n of at least 2")
            modes = ["long", "short"]
        # one subgroup per (mode, budget) cell; samples assigned contiguously
        cells = [(m, b) for m in modes for b in (budgets or [None])]
        k = len(cells)
        out: list[Subgroup] = []
        for j in range(n):
            cell = cells[j * k // n]
            if out and out[-1].cell == cell:
                out[-1].n += 1
                continue
            mode, budget = cell
            pre = prefill
            f = dict(fields)
            if mode is not None:
                pre += self.mode_markers[0 if mode == "long" else 1]
                f["mode"] = mode
            if budget is not None:
                text = HBPO_PREFILL.format(b=budget)
                if pre.rstrip().endswith("<think>"):
                    text = text[len("<think>"):]
                pre += text
                f["budget"] = budget
            out.append(Subgroup(cell=cell, start=j, n=1, suffix="\n".join(suffixes), prefill=pre,
                                max_tokens=budget, fields=f))
        return out

    def detect_mode(self, completion: str) -> str | None:
        long_m, short_m = self.mode_markers
        if completion.startswith(short_m.strip()) or completion.startswith(short_m):
            return "short"
        if completion.startswith(long_m.strip()):
            return "long"
        return None


@dataclass
class Subgroup:
    cell: tuple
    start: int  # index of its first sample in the group
    n: int
    suffix: str  # appended to the last user turn (or the text prompt)
    prefill: str  # appended after the rendered prompt (start of the assistant turn)
    max_tokens: int | None  # None: the global --max-tokens
    fields: dict = field(default_factory=dict)  # added to each sample record
