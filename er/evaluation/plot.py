"""`er eval --plot FILE`: one figure (PNG, SVG or PDF by FILE's extension; matplotlib, Agg backend) with three
panels, titled with the runs, datasets and row counts. Each series (a report: run/model × dataset × --by)
has one colour in every panel and a short name in the legend (a model path shows its last component, or
`parent/step-N` for checkpoints).

1. accuracy (%) vs mean completion tokens, one point per report with its 95% intervals (Wilson for the
   accuracy, bootstrap for the mean length: er.evaluation.intervals), with the Pareto frontier per
   dataset (points no other point beats on both higher accuracy and fewer tokens);
2. completion-length histograms, correct (solid) vs incorrect (dotted); as shares of each series' rows
   when the series differ in size, so a run with more rows does not look longer;
3. OptimalThinkingBench's accuracy under a thinking budget, OAA_t = (1/n) Σ correct_i · 1[think_i < t]
   for t in [0, T] (think_i = think_tokens, else completion_tokens; T = the report's auc_tokens), with
   the area under it (the report's oaa_auc) in the legend; without a think block in any row the axes
   say "completion tokens" (the budget is then on the whole completion).

Series also differ by marker (hollow) and line style, so that two identical runs drawn on top of each
other stay visible as two.

Accuracy axes start at 0. SVG keeps its text as text (searchable, editable in a paper's figure).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from er.errors import UsageError
from er.evaluation.intervals import mean_interval, wilson

WIDTH_PX, HEIGHT_PX, DPI = 1650, 560, 100
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES = ("-", "--", "-.", ":")
FORMATS = ("png", "svg", "pdf")
_CHECKPOINT = re.compile(r"(step-\d+|checkpoint-\d+|latest)$")


def plot_format(path: str) -> str:
    """png, svg or pdf from the file name (a usage error otherwise)."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise UsageError(f"--plot {path}: the file name must end in .png, .svg or .pdf")
    return ext


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(tokens, accuracy) points on the frontier, by increasing tokens: fewer tokens AND higher accuracy win."""
    front: list[tuple[float, float]] = []
    best = -float("inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def short_name(name: str) -> str:
    """A model path's last component (`parent/step-N` for a checkpoint); other names unchanged."""
    parts = [p for p in str(name).replace("\\", "/").split("/") if p]
    if len(parts) <= 1:
        return str(name)
    if _CHECKPOINT.match(parts[-1]):
        return "/".join(parts[-2:])
    return parts[-1]


def series_name(fields: dict, by: Iterable[str] = (), with_dataset: bool = False) -> str:
    name = short_name(fields.get("run") or fields.get("model"))
    extra = [f"{k}={fields.get(k)}" for k in by]
    if with_dataset:
        extra.insert(0, str(fields.get("dataset")))
    return " ".join([name, *extra])


def oaa_curve(think, verdicts, grid):
    """OAA_t at each t of `grid`: share of judged rows that are correct with think < t."""
    import numpy as np

    judged = int((verdicts != 2).sum())
    ok = np.sort(think[(verdicts == 1) & (think >= 0)])
    if not judged:
        return None
    return np.searchsorted(ok, grid, side="left") / judged


def _title(names: list[str], datasets: list[str], ns: list[int]) -> str:
    runs = " vs ".join(names)
    if len(runs) > 90:
        runs = f"{len(names)} runs"
    n = f"n = {ns[0]:,}" if len(set(ns)) == 1 else "n = " + " / ".join(f"{x:,}" for x in ns)
    return f"{runs} on {', '.join(datasets)} ({n} rows{' each' if len(set(ns)) == 1 and len(ns) > 1 else ''})"


def write_plot(path, reports: list[dict], groups: Iterable[tuple], horizon: int, by: Iterable[str] = (),
               fmt: str | None = None) -> None:
    """`path`: a file name (its extension picks the format) or an open binary file with `fmt`."""
    fmt = fmt or plot_format(path)
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # SVG text stays text: searchable and editable
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.lines import Line2D

    from er.evaluation.metrics import oaa_auc

    by = list(by)
    groups = [g for g in groups if len(g[3])]
    datasets = list(dict.fromkeys(str(f.get("dataset")) for f, *_ in groups))
    multi = len(datasets) > 1
    names = list(dict.fromkeys(series_name(f, by, multi) for f, *_ in groups))
    palette = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    color = {name: palette(i % palette.N) for i, name in enumerate(names)}
    # a marker and a line style per series too, so that runs on top of each other stay visible
    marker = {name: MARKERS[i % len(MARKERS)] for i, name in enumerate(names)}
    dash = {name: DASHES[i % len(DASHES)] for i, name in enumerate(names)}
    # earlier series drawn wider, so an identical later one leaves a rim of the earlier colour
    width = {name: 1.6 + 1.4 * (len(names) - 1 - i) / max(1, len(names) - 1) for i, name in enumerate(names)}
    lengths = {series_name(f, by, multi): t[t >= 0] for f, t, _, _ in groups}
    thinking = any(r.get("mean_think_tokens") is not None for r in reports)

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    fig.suptitle(_title(names, datasets, [len(g[3]) for g in groups]), fontsize=13)

    # 1. accuracy vs mean tokens, Pareto front per dataset
    points: dict[str, list[tuple[float, float]]] = {}
    for r in reports:
        if r.get("mean_tokens") is None or r.get("accuracy") is None:
            continue
        name = series_name(r, by, multi)
        x, y = r["mean_tokens"], 100 * r["accuracy"]
        c = color.get(name, "k")
        acc_ci = wilson(r.get("correct") or 0, r.get("judged") or 0)
        len_ci = mean_interval(lengths[name]) if name in lengths else None
        yerr = [[y - 100 * acc_ci[0]], [100 * acc_ci[1] - y]] if acc_ci else None
        xerr = [[x - len_ci[0]], [len_ci[1] - x]] if len_ci else None
        ax1.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="none", ecolor=c, elinewidth=1.2, capsize=3,
                     linestyle=dash.get(name, "-"), zorder=3)
        ax1.scatter([x], [y], marker=marker.get(name, "o"), facecolors="none", edgecolors=[c], linewidths=1.8,
                    s=90, zorder=4, label=name)
        points.setdefault(str(r["dataset"]), []).append((x, y))
    for dataset, pts in points.items():
        front = pareto_front(pts)
        if len(front) > 1:
            ax1.plot([p[0] for p in front], [p[1] for p in front], color="0.5", linestyle="--", linewidth=1,
                     zorder=2, label=f"Pareto front{' ' + dataset if multi else ''}")
    ax1.set(xlabel="mean completion tokens", ylabel="accuracy (%)",
            title="accuracy vs length (95% intervals: Wilson, bootstrap)")
    ax1.set_ylim(0, 102)
    ax1.set_xlim(left=0, right=max([p[0] for pts in points.values() for p in pts] + [1]) * 1.1)
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8, loc="best")

    # 2. length histograms, correct vs incorrect; shares when the series differ in size
    sizes = {len(g[3]) for g in groups}
    shares = len(sizes) > 1
    top = max((int(t.max()) for _, t, _, _ in groups if len(t) and t.max() >= 0), default=1)
    bins = np.linspace(0, max(top, 1), 31)
    for fields, tokens, _, verdicts in groups:
        name = series_name(fields, by, multi)
        for mask, style in ((verdicts == 1, "-"), (verdicts == 0, ":")):
            t = tokens[mask & (tokens >= 0)]
            if len(t):
                weights = np.full(len(t), 100.0 / len(verdicts)) if shares else None
                ax2.hist(t, bins=bins, weights=weights, histtype="step", linestyle=style, linewidth=width[name],
                         color=color[name])
    handles = [Line2D([], [], color=color[n], marker=marker[n], markerfacecolor="none", label=n) for n in names]
    handles += [Line2D([], [], color="0.3", linestyle="-", label="correct"),
                Line2D([], [], color="0.3", linestyle=":", label="incorrect")]
    ax2.set(xlabel="completion tokens", ylabel="% of the series' rows" if shares else "completions",
            title="completion length: correct vs incorrect")
    ax2.set_xlim(left=0)
    ax2.grid(alpha=0.3)
    ax2.legend(handles=handles, fontsize=8)

    # 3. OAA_t curves, AUC in the legend
    grid = np.linspace(0, horizon, 200)
    for fields, _, think, verdicts in groups:
        curve = oaa_curve(think, verdicts, grid)
        if curve is None:
            continue
        name = series_name(fields, by, multi)
        auc = oaa_auc(think, verdicts, horizon)
        ax3.plot(grid, 100 * curve, color=color[name], linewidth=width[name], linestyle=dash[name], marker=marker[name],
                 markevery=(names.index(name) * 7 % 40, 40), markerfacecolor="none", label=f"{name} (AUC {auc:.3f})")
    if thinking:
        ax3.set(xlabel="thinking-token budget t", ylabel="accuracy with think tokens < t (%)",
                title="accuracy under a thinking budget (OAA)")
    else:  # no think block: the budget is on the whole completion
        ax3.set(xlabel="completion-token budget t", ylabel="accuracy with completion tokens < t (%)",
                title="accuracy under a token budget")
    ax3.set_ylim(0, 102)
    ax3.set_xlim(0, horizon)
    ax3.grid(alpha=0.3)
    if groups:
        ax3.legend(fontsize=8, loc="best")

    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=DPI, format=fmt)
    plt.close(fig)
