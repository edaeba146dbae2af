"""`er eval --plot FILE.png`: one PNG (matplotlib, Agg backend, 1500×450 px at 100 dpi) with three panels:

1. accuracy vs mean completion tokens, one point per report (model/run × dataset × --by), with the
   Pareto frontier per dataset (points no other point beats on both higher accuracy and fewer tokens);
2. completion-length histograms split by correct / incorrect (step outlines, up to 6 reports);
3. accuracy under a token budget vs the budget (see er.evaluation.metrics.budget_accuracy), at the
   `--budgets` given, else at 40 points from 0 to the largest completion.
"""

from __future__ import annotations

from collections.abc import Iterable

WIDTH_PX, HEIGHT_PX, DPI = 1500, 450, 100


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(tokens, accuracy) points on the frontier, by increasing tokens: fewer tokens AND higher accuracy win."""
    front: list[tuple[float, float]] = []
    best = -float("inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _label(fields: dict, by: Iterable[str] = ()) -> str:
    return " ".join([str(fields.get("run") or fields.get("model"))] + [f"{k}={fields.get(k)}" for k in by])


def write_plot(path: str, reports: list[dict], groups: Iterable[tuple[dict, object, object]],
               budgets: list[int] | None = None, by: Iterable[str] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from er.evaluation.metrics import budget_accuracy

    groups = list(groups)
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    datasets: dict[str, list] = {}
    for r in reports:
        if r.get("mean_tokens") is not None and r.get("accuracy") is not None:
            datasets.setdefault(r["dataset"], []).append(r)
    for i, (dataset, rows) in enumerate(datasets.items()):
        color = f"C{i % 10}"
        xs, ys = [r["mean_tokens"] for r in rows], [100 * r["accuracy"] for r in rows]
        ax1.scatter(xs, ys, color=color, label=dataset, zorder=3)
        for r, x, y in zip(rows, xs, ys):
            ax1.annotate(_label(r, by), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        front = pareto_front(list(zip(xs, ys)))
        ax1.plot([p[0] for p in front], [p[1] for p in front], color=color, linestyle="--", linewidth=1)
    ax1.set(xlabel="mean completion tokens", ylabel="accuracy (%)", title="accuracy vs length (-- Pareto front)")
    if datasets:
        ax1.legend(fontsize=7)

    top = max((int(t.max()) for _, t, _ in groups if len(t) and t.max() >= 0), default=1)
    bins = np.linspace(0, max(top, 1), 31)
    for i, (fields, tokens, verdicts) in enumerate(groups[:6]):
        color = f"C{i % 10}"
        name = f"{_label(fields, by)} {fields.get('dataset')}"
        for mask, style, tag in ((verdicts == 1, "-", "correct"), (verdicts == 0, ":", "incorrect")):
            t = tokens[mask & (tokens >= 0)]
            if len(t):
                ax2.hist(t, bins=bins, histtype="step", linestyle=style, color=color, label=f"{name} {tag}")
    ax2.set(xlabel="completion tokens", ylabel="completions", title="length: correct (—) vs incorrect (⋯)")
    if groups:
        ax2.legend(fontsize=6)

    grid = sorted(set(budgets)) if budgets else [int(x) for x in np.linspace(0, top, 40)]
    for i, (fields, tokens, verdicts) in enumerate(groups[:10]):
        acc = budget_accuracy(tokens, verdicts, grid)
        xs = [b for b in grid if acc[b] is not None]
        ax3.plot(xs, [100 * acc[b] for b in xs], color=f"C{i % 10}", marker="." if budgets else None,
                 label=f"{_label(fields, by)} {fields.get('dataset')}")
    ax3.set(xlabel="token budget", ylabel="accuracy (%)", title="accuracy under a token budget")
    if groups:
        ax3.legend(fontsize=6)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.12, top=0.9, wspace=0.22)
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
