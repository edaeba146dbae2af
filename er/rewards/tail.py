"""`tail`: exact answer check for TAIL tasks (Hua et al. 2025, arXiv:2507.13332), optionally state by state.

R = 1 when the completion's final `\\boxed{...}` equals the record's gold `answer` exactly (after
stripping surrounding whitespace), else 0; with `check_trace=true` the trace must also replay
(`er.data.tail.check`: every memory fetch, operation, write and transition of every atomic state
re-executed independently), else 0. A completion without `\\boxed{}` scores 0. Reads `task`,
`answer` and `completion` (and `prompt`, to check that the trace's Input line quotes the problem).
Departs from the paper, whose label accuracy uses an extractor model and a 72B LLM judge: every task
here has a deterministic answer, so the check is exact.
"""

from __future__ import annotations

from er.errors import ErError
from er.rewards import REWARDS
from er.rewards.base import Reward


@REWARDS.register("tail")
class Tail(Reward):
    """1 if the boxed final answer equals the TAIL gold answer (and, with check_trace, every state replays), else 0."""

    fields = {"completion": "string", "task": "string", "answer": ("string", "number")}
    provenance = "paper"
    judges_correct = True  # an exact verifier: in a run with other rewards it sets `correct` for them

    def __init__(self, check_trace: bool = False):
        self.check_trace = check_trace

    def score_row(self, record: dict) -> float:
        from er.data.tail.check import RUNS, check, final_answer

        task = record["task"]
        if task not in RUNS:
            raise ErError(f"unknown TAIL task {task!r} in field 'task'")
        text = record["completion"]
        boxed = final_answer(text)
        if boxed is None or boxed != str(record["answer"]).strip():
            return 0.0
        if self.check_trace:
            prompt = record.get("prompt")
            verdict = check(task, text, prompt if isinstance(prompt, str) else None)
            return float(verdict.ok)
        return 1.0
