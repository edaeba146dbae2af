"""er eval: accuracy, pass@k, length and length-control reports over scored records."""

from __future__ import annotations

from typing import Annotated

import typer
from er.commands._common import Debug, Inputs, MaxLineBytes, Output, Quiet, Rejects, stream
from er.io import DEFAULT_MAX_LINE_BYTES


def run(
    inputs: Inputs = None,
    metric: Annotated[str, typer.Option("--metric", help="reasoning (accuracy/pass@k/length), ruler (PM/FM), lc-winrate (Length-Controlled AlpacaEval), emotion (AffectGPT wheel), leval, lcfo (reconstructed).")] = "reasoning",
    by: Annotated[list[str] | None, typer.Option("--by", help="Also group by these record fields (repeatable or comma list; dotted paths reach into objects), e.g. level, budget, difficulty; length_bin = prompt_tokens in power-of-two bins [2^k, 2^(k+1)) labelled 2^k (accuracy against input length).")] = None,
    reward: Annotated[list[str] | None, typer.Option("--reward", "-r", help="Score rows that have no `correct` inline with this reward (as `er score --reward`).")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes verifying answers with --reward (default: cores; 0 = in this process, no hard timeout).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per row for answer checking with --reward.")] = 10.0,
    k: Annotated[list[str] | None, typer.Option("--k", help="pass@k for these k (default: 1, powers of two, and n).")] = None,
    maj: Annotated[list[str] | None, typer.Option("--maj", help="maj@k (majority vote) for these k; extracts every completion's answer.")] = None,
    extract: Annotated[str | None, typer.Option("--extract", help="Answer extractor for maj@k: auto (math-verify if installed, else boxed), math-verify, boxed, letter.")] = None,
    budgets: Annotated[list[str] | None, typer.Option("--budgets", help="Token budgets b for accuracy_at_b: correct AND completion_tokens <= b (e.g. 1024,2k,4k).")] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Compare runs: each input file (or model) against the baseline: relative length change, accuracy delta, AES.")] = False,
    baseline: Annotated[str | None, typer.Option("--baseline", help="The baseline model name or file for --compare (default: the first).")] = None,
    aes_weights: Annotated[str | None, typer.Option("--aes-weights", metavar="A,B,C", help="AES weights α,β,γ (implies --compare): AES = α·ΔL + β·ΔA if ΔA >= 0 else α·ΔL − γ·|ΔA|, ΔL = relative length reduction, ΔA = relative accuracy change vs the baseline (O1-Pruner, Luo et al. 2025; default 1,3,5 as there).")] = None,
    auc_tokens: Annotated[int | None, typer.Option("--auc-tokens", metavar="T", help="Horizon T of oaa_auc (OptimalThinkingBench's AUC_OAA = mean of correct·max(0, 1 − think_tokens/T), think_tokens falling back to completion_tokens; default: the largest sampling.max_tokens, else the longest completion). Reported as auc_tokens.")] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="Benchmark preset (gsm8k, math500, aime24, amc23, gpqa): dataset name, answer format, recommended n; without --reward its verifier (math) judges rows that carry no `correct`. leval / lcfo (reconstructed fields): score samples of `er sample --dataset FILE --preset leval|lcfo` (or L-Eval's own prediction files) with that metric, one report per task / ratio; LLM-judged L-Eval items are dropped (no judge run).")] = None,
    gamed: Annotated[list[str] | None, typer.Option("--gamed", help="lc-winrate: generator_2 names of length-gamed baseline variants (regularise-to-baseline).")] = None,
    lc_lambda: Annotated[float, typer.Option("--lc-lambda", help="lc-winrate: total weight of the gamed-baseline rows.")] = 0.2,
    emotion_tables: Annotated[str, typer.Option("--emotion-tables", help="emotion: directory with emotion_{wheels,synonyms,forms}.json (default: the shipped toy tables).")] = "",
    emotion_level: Annotated[str, typer.Option("--emotion-level", help="emotion: level1 or level2 wheel clusters.")] = "level1",
    span: Annotated[str, typer.Option("--span", help="ruler: count words of the whole completion (all) or after the last </think> (answer).")] = "all",
    band: Annotated[float, typer.Option("--band", help="lcfo: the length-compliance band (±) for within_band (reconstructed choice).")] = 0.2,
    plot: Annotated[str | None, typer.Option("--plot", metavar="FILE", help="Write a figure, PNG/SVG/PDF by FILE's extension: accuracy vs mean tokens with the Pareto front, length histograms (correct vs incorrect), accuracy under a thinking budget (OAA) with its AUC; one colour per run.")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", metavar="NAME", help="Name each input's run (repeatable, one per input, in order): the report's `run` field, the table's run column and the plot's legend (default with --compare: the file name without its extensions).")] = None,
    min_pass: Annotated[float | None, typer.Option("--min-pass", metavar="RATE", help="Pre-flight of a training run: exit 1 when a report's pass@G (the largest k) is below RATE, with the figure and what to change (--max-tokens L_T, the data, the model); the reports are written first.")] = None,
    report_to: Annotated[str, typer.Option("--report-to", metavar="NAME[,NAME...]", help="Also log each report's numbers (eval/DATASET/...) at its step to trackio, wandb, tensorboard, mlflow (as er update --report-to); all; none.")] = "none",
    run_name: Annotated[str | None, typer.Option("--run-name", help="The run's name in the trackers (default: er-eval-DATE-TIME).")] = None,
    project: Annotated[str | None, typer.Option("--project", help="The trackers' project (default: er).")] = None,
    output: Output = None,
    format: Annotated[str, typer.Option("--format", metavar="jsonl|arrow|parquet|md", help="jsonl, arrow, parquet (as every command's --format), or md (a Markdown table).")] = "jsonl",
    rejects: Rejects = None,
    max_line_bytes: MaxLineBytes = DEFAULT_MAX_LINE_BYTES,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Evaluate scored records: one report record per (model, dataset[, --by fields]).

    Reasoning metrics: accuracy, pass@k (unbiased), maj@k, mean/median/p90 tokens (also by correct and
    incorrect), truncation rate, tokens per correct answer, accuracy per 1k tokens, accuracy under token
    budgets, null and timeout counts, the verifier. Rates are fractions in [0, 1]. Think vs answer tokens
    (mean_think_tokens, mean_answer_tokens: answer = completion_tokens − think_tokens), OptimalThinkingBench's
    oaa_auc (see --auc-tokens) and LLMThinkBench's overthinking_score = 2·Acc·TE/(Acc+TE), TE = 1 − (tok −
    min)/(max − min) over the mean tokens of the reports compared together. `--compare` adds the papers'
    headline ("-47.3% length, +1.48 accuracy") and O1-Pruner's AES against --baseline (see --aes-weights).
    Length-control metrics with --metric: ruler, lc-winrate, emotion, leval, lcfo (reconstructed).
    """
    from er.errors import UsageError
    from er.evaluation.metrics import parse_aes_weights
    from er.evaluation.run import EvalOptions, Evaluation, parse_ints, summary
    from er.io import log
    from er.pool import default_workers
    from er.flagcheck import check_numbers

    check_numbers(("--workers", workers, "non-negative"), ("--lc-lambda", lc_lambda, "non-negative"),
                  ("--band", band, "non-negative"), ("--min-pass", min_pass, "fraction"))

    if plot:
        from er.evaluation.plot import plot_format

        plot_format(plot)  # a bad extension is a usage error before any row is read
    if format not in ("jsonl", "arrow", "parquet", "md"):
        raise UsageError(f"--format must be jsonl, arrow, parquet or md, not {format!r}")
    options = EvalOptions(metric=metric, by=list(by or []), budgets=parse_ints(budgets, "--budgets"),
                          ks=parse_ints(k, "--k") or None, maj=parse_ints(maj, "--maj"), extract=extract,
                          compare=compare, baseline=baseline, preset=preset, rewards=list(reward or []),
                          workers=default_workers() if workers is None else workers, timeout=timeout, gamed=list(gamed or []), lc_lambda=lc_lambda,
                          emotion_tables=emotion_tables, emotion_level=emotion_level, span=span, band=band,
                          auc_tokens=auc_tokens, labels=list(label or []), aes_weights=None if aes_weights is None else parse_aes_weights(aes_weights))
    evaluation = Evaluation(options, n_inputs=len(inputs or []), inputs=inputs)
    from er.train.trackers import log_reports, open_trackers

    trackers = open_trackers(report_to, run_name, project, None, "eval")  # fails before any row is read
    md = format == "md"
    with stream("eval", inputs, None if md else output, "jsonl" if md else format, rejects, max_line_bytes,
                quiet=True, kind="report", progress=not quiet) as s:
        reports = evaluation.run(s)
        if md:
            from er.evaluation.render import markdown
            from er.io import write_text

            write_text(markdown(reports, evaluation.keys.by), output)
        else:
            s.write_many(reports)
        if plot:
            evaluation.plot(plot, reports)
        if trackers is not None:
            log_reports(trackers, reports)
            trackers.close()
    if not quiet:
        log(summary(s, evaluation.evaluated, len(reports)))
    if min_pass is not None:
        from er.evaluation.preflight import check

        check(reports, min_pass)
