"""`er plot`: the curves of training runs from `er update`'s metrics stream (and held-out `er eval` reports).

One figure (PNG, SVG or PDF by the file's extension; matplotlib, Agg backend), a 3 x 3 grid:

1. (two cells wide) mean completion tokens (left axis, solid) and accuracy (right axis, dashed) over
   optimizer steps, the figure of the efficient-reasoning papers (DLER Fig. 1, ThinkPrune, HAPO): length
   should fall while accuracy holds. Held-out reports (`er eval` records with a `step`, or whose `model` is
   a `step-N` checkpoint) are drawn on the same axes with markers: `mean_tokens` and `accuracy`.
2. reward mean, 3. truncation rate (`finish_reason == length`), 4. KL to the reference, 5. entropy,
   6. clip fraction, 7. grad norm, 8. policy lag (mean).

Each metrics file is one series with one colour in every panel; a file of held-out reports right after
it is that run's held-out evaluation (same colour; a reports file first, or after another reports file,
is a series of its own). A legend name is the file name without directories and `.jsonl`/`.gz` endings, with as many parent directories as make the names unique (never an absolute
path). `smooth` (TensorBoard's convention, weight w in [0, 1)): s_t = w s_{t-1} + (1 - w) x_t, debiased by
1 - w^t as TensorBoard does; the raw values are drawn faint behind the smoothed line. Null values
(a metric a run does not have, e.g. KL without a reference) leave gaps; a panel no series has says so.

The files may still be written to: a last line without its newline that does not parse is the record
being written and is ignored; any other malformed line is an error naming its file and line.
"""

from __future__ import annotations

import math
import os
import re

import orjson

from er.errors import ErError, UsageError
from er.evaluation.plot import FORMATS

WIDTH_PX, HEIGHT_PX, DPI = 1500, 1050, 100
_STEP_DIR = re.compile(r"(?:^|/)(?:step|checkpoint)-(\d+)/?$")

# (metrics field, panel title, y label); the first panel is drawn apart
PANELS = (
    ("reward_mean", "reward", "mean reward"),
    ("truncated_frac", "truncation", "share finish_reason = length"),
    ("kl", "KL to the reference", "KL"),
    ("entropy", "entropy", "nats per token"),
    ("clip_frac", "clip fraction", "share of tokens clipped"),
    ("grad_norm", "grad norm", "norm (before clipping)"),
    ("policy_lag_mean", "policy lag", "steps behind (mean)"),
)


class Series:
    """One input file: training steps (metrics records) and held-out points (reports with a step)."""

    def __init__(self, path: str):
        self.path = path
        self.name = path
        self.train: list[dict] = []
        self.held_out: list[dict] = []


def _report_step(record: dict) -> int | None:
    step = record.get("step")
    if type(step) is int:
        return step
    m = _STEP_DIR.search(str(record.get("model") or ""))
    return int(m.group(1)) if m else None


def read_series(path: str) -> Series:
    """Read a metrics or report JSONL file as it is now (see the module doc for a partial last line)."""
    series = Series(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    lines = data.split(b"\n")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            if n == len(lines):  # no newline after it: the writer is still writing this record
                break
            raise ErError("malformed JSON (expected one metrics or report record per line)", path, n) from None
        if not isinstance(record, dict):
            raise ErError("expected a JSON object", path, n)
        if "loss" in record and type(record.get("step")) is int:
            series.train.append(record)
        elif "accuracy" in record or "mean_tokens" in record:
            step = _report_step(record)
            if step is None:
                raise ErError("an er eval report without a step (add `step`, or evaluate a step-N checkpoint)",
                              path, n)
            series.held_out.append({**record, "step": step})
        else:
            raise ErError("neither an er update metrics record (step, loss) nor an er eval report", path, n)
    if not series.train and not series.held_out:
        raise ErError("no metrics records yet", path)
    series.train.sort(key=lambda r: r["step"])
    series.held_out.sort(key=lambda r: r["step"])
    return series


def short_names(paths: list[str]) -> list[str]:
    """File names without extensions, with as many parent directories as make them unique."""
    def parts(p: str) -> list[str]:
        ps = [x for x in os.path.normpath(os.path.abspath(p)).split(os.sep) if x]
        base = ps[-1] if ps else p
        for ext in (".gz", ".zst", ".jsonl", ".json", ".ndjson"):
            if base.endswith(ext) and len(base) > len(ext):
                base = base[:-len(ext)]
        return ps[:-1] + [base]

    split = [parts(p) for p in paths]
    depth = 1
    while True:
        names = ["/".join(s[-depth:]) for s in split]
        if len(set(names)) == len(names) or depth >= max(len(s) for s in split):
            return names
        depth += 1


def ema(values: list[float | None], weight: float) -> list[float | None]:
    """TensorBoard's debiased exponential moving average; None stays None and does not move the average."""
    if weight <= 0:
        return list(values)
    out: list[float | None] = []
    acc, n = 0.0, 0
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(None)
            continue
        acc = weight * acc + (1 - weight) * v
        n += 1
        out.append(acc / (1 - weight ** n))
    return out


def _values(records: list[dict], key: str) -> list[float | None]:
    out = []
    for r in records:
        v = r.get(key)
        out.append(float(v) if type(v) in (int, float) and math.isfinite(v) else None)
    return out


def _curve(ax, steps, values, color, smooth, label=None, **style):
    """Draw one series: raw (faint when smoothed) and smoothed; returns whether anything was drawn."""
    import numpy as np

    if all(v is None for v in values):
        return False
    y = np.array([np.nan if v is None else v for v in values], dtype=float)
    if smooth > 0:
        ax.plot(steps, y, color=color, alpha=0.25, linewidth=1.0, **style)
        s = ema(values, smooth)
        ax.plot(steps, [np.nan if v is None else v for v in s], color=color, linewidth=1.8, label=label, **style)
    else:
        ax.plot(steps, y, color=color, linewidth=1.6, label=label, **style)
    return True


def check_smooth(smooth: float) -> None:
    from er.flagcheck import check_numbers

    check_numbers(("--smooth", smooth, "weight"))


def write_curves(out: str, paths: list[str], smooth: float = 0.0, title: str | None = None) -> list[Series]:
    """Read `paths` and write the figure to `out` (module doc). Returns the series drawn."""
    fmt = os.path.splitext(out)[1].lower().lstrip(".")
    if fmt not in FORMATS:
        raise UsageError(f"-o {out}: the file name must end in .png, .svg or .pdf")
    check_smooth(smooth)
    if not paths:
        raise UsageError("give at least one metrics file")
    series: list[Series] = []
    for p in paths:
        s = read_series(p)
        if not s.train and series and not series[-1].held_out:  # held-out reports of the run before
            series[-1].held_out = s.held_out
        else:
            series.append(s)
    for s, name in zip(series, short_names([s.path for s in series])):
        s.name = name

    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    palette = plt.get_cmap("tab10" if len(series) <= 10 else "tab20")
    colors = [palette(i % palette.N) for i in range(len(series))]
    fig = plt.figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    grid = fig.add_gridspec(3, 3)
    main = fig.add_subplot(grid[0, 0:2])
    acc_ax = main.twinx()
    others = [fig.add_subplot(grid[i // 3, i % 3]) for i in range(2, 9)]

    # 1. length and accuracy
    for s, c in zip(series, colors):
        steps = [r["step"] for r in s.train]
        _curve(main, steps, _values(s.train, "completion_tokens_mean"), c, smooth)
        _curve(acc_ax, steps, [None if v is None else 100 * v for v in _values(s.train, "accuracy")], c, smooth,
               linestyle="--")
        if s.held_out:
            hs = [r["step"] for r in s.held_out]
            main.plot(hs, [math.nan if v is None else v for v in _values(s.held_out, "mean_tokens")], color=c,
                      marker="o", linestyle="-", linewidth=1.0, markersize=5)
            acc_ax.plot(hs, [math.nan if v is None else 100 * v for v in _values(s.held_out, "accuracy")],
                        color=c, marker="s", linestyle="--", linewidth=1.0, markersize=5, markerfacecolor="white")
    main.set(xlabel="step", ylabel="mean completion tokens (solid)", title="length and accuracy")
    acc_ax.set_ylabel("accuracy % (dashed)")
    acc_ax.set_ylim(0, 102)
    main.set_ylim(0, max(main.get_ylim()[1], 1) * 1.08)  # room above the longest point and its marker
    main.grid(alpha=0.3)
    handles = [Line2D([], [], color=c, linewidth=2, label=s.name) for s, c in zip(series, colors)]
    handles += [Line2D([], [], color="0.3", linestyle="-", label="length (training)"),
                Line2D([], [], color="0.3", linestyle="--", label="accuracy (training)")]
    if any(s.held_out for s in series):
        handles += [Line2D([], [], color="0.3", marker="o", linestyle="-", label="length (held-out)"),
                    Line2D([], [], color="0.3", marker="s", markerfacecolor="white", linestyle="--",
                           label="accuracy (held-out)")]
    # one legend for the figure, under the title: it never covers a curve
    fig.legend(handles=handles, fontsize=9, loc="upper center", bbox_to_anchor=(0.5, 0.955),
               ncol=min(len(handles), 6), frameon=False)

    # 2..8 one metric each
    for ax, (key, name, ylabel) in zip(others, PANELS):
        drawn = False
        for s, c in zip(series, colors):
            drawn |= _curve(ax, [r["step"] for r in s.train], _values(s.train, key), c, smooth)
            if key == "truncated_frac" and s.held_out:
                hs = [r["step"] for r in s.held_out]
                ax.plot(hs, [math.nan if v is None else v for v in _values(s.held_out, "truncation_rate")],
                        color=c, marker="o", linewidth=1.0, markersize=4)
        if not drawn:
            ax.text(0.5, 0.5, f"no {key} in the metrics", transform=ax.transAxes, ha="center", va="center",
                    color="0.5")
        ax.set(xlabel="step", ylabel=ylabel, title=name)
        ax.grid(alpha=0.3)

    from matplotlib.ticker import MaxNLocator

    for ax in (main, *others):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    steps_total = max((s.train[-1]["step"] for s in series if s.train), default=0)
    suffix = f", EMA {smooth:g}" if smooth > 0 else ""
    fig.suptitle(title or f"{' vs '.join(s.name for s in series)} ({steps_total} steps{suffix})", fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.92 if len(handles) <= 6 else 0.89))
    try:
        fig.savefig(out, dpi=DPI, format=fmt)
    except OSError as exc:
        raise UsageError(f"-o {out}: cannot write ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
    return series
