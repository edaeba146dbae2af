"""The pre-flight of a training run: can the base model solve the task at all within the token budget?

RL with group advantages learns only from groups that hold both a correct and a wrong sample: a
problem the policy never solves in G tries within L_T tokens gives every sample advantage 0 (er update
then skips the step, er.train.zero_signal). Before spending a training run on a task, sample a few
prompts from the base model with the run's G and L_T, score and evaluate them:

    er sample -m MODEL prompts.jsonl -n G --max-tokens L_T --limit 16 | er score -r math | er eval --min-pass 0.05

`er eval --min-pass RATE` exits 1 when a report's pass@G (the largest k reported, G = the samples per
problem) is below RATE, with the figure and what to change. The default threshold of the Makefiles
(0.05, about one problem in twenty solved at least once in G tries) is our choice, not a paper's.
"""

from __future__ import annotations

from er.errors import ErError


def largest_pass(report: dict) -> tuple[int, float | None] | None:
    """(k, pass@k) for the largest k in a reasoning report, None when it has none."""
    ks = [int(key[5:]) for key in report if key.startswith("pass@") and key[5:].isdigit()]
    return (max(ks), report[f"pass@{max(ks)}"]) if ks else None


def check(reports: list[dict], min_pass: float) -> None:
    """ErError (exit 1) naming the first report whose pass@G is below `min_pass`."""
    for report in reports:
        found = largest_pass(report)
        if found is None:
            continue
        k, value = found
        if value is None or value < min_pass:
            figure = "null (no judged sample)" if value is None else f"{value:.3f}"
            where = " ".join(f"{name} {report[name]}" for name in ("model", "dataset") if report.get(name))
            raise ErError(f"pre-flight: pass@{k} = {figure} on {report.get('problems', 0)} problems"
                          f"{' (' + where + ')' if where else ''}, below --min-pass {min_pass}: the model "
                          f"rarely solves these within the sampled token budget, so training would see "
                          f"(almost) only zero-signal steps. Raise --max-tokens (L_T), use easier data, "
                          f"or start from a stronger model")
