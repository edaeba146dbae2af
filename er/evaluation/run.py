"""The whole `er eval` stage: rows of a RecordStream -> report records (and, for plots, per-group arrays).

Every input row is either evaluated, rejected (bad data; `--rejects` keeps going) or dropped on purpose
with a counted reason, so `in == evaluated + rejected + dropped` holds; the report records are the
output. With `--reward`, rows without `correct` are scored inline by er.scoring.Scorer (whole groups,
verified in a process pool); the verifier's timeouts are then counted per report.

Arguments checked against the data (usage errors, exit 2): `--by F` where no row has a value for F
(an empty column would be silent); `--preset P` on rows that are not P's: a row fits when its
`dataset` is P, or, without a `dataset`, when its `answer` has P's format (a number for gsm8k, aime24,
amc23; a letter A-D for gpqa). The preset otherwise labels the report, so a misfit is never relabelled.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from er.errors import ErError, OutputError, UsageError
from er.evaluation import METRICS
from er.evaluation.report import Keys, compare
from er.io import RecordStream, log

TIMEOUT_NOTE = "null correct (timeout)"


@dataclass
class EvalOptions:
    metric: str = "reasoning"
    by: list[str] = field(default_factory=list)
    budgets: list[int] = field(default_factory=list)
    ks: list[int] | None = None
    maj: list[int] = field(default_factory=list)
    extract: str | None = None
    compare: bool = False
    baseline: str | None = None
    preset: str | None = None
    rewards: list[str] = field(default_factory=list)
    workers: int = 0
    timeout: float = 10.0
    gamed: list[str] = field(default_factory=list)
    lc_lambda: float = 0.2
    emotion_tables: str = ""
    emotion_level: str = "level1"
    span: str = "all"
    band: float = 0.2
    auc_tokens: int | None = None
    aes_weights: tuple[float, float, float] | None = None
    labels: list[str] = field(default_factory=list)  # --label per input, in order


def input_labels(labels: list[str], inputs: list[str] | None) -> dict[str, str]:
    """{source: --label} for each input (stdin's source is <stdin>); a usage error unless one per input."""
    if not labels:
        return {}
    inputs = list(inputs or []) or ["-"]
    if len(labels) != len(inputs):
        raise UsageError(f"--label: {len(labels)} label(s) for {len(inputs)} input(s); give one per input, in order")
    if len(set(labels)) != len(labels):
        raise UsageError("--label: each input needs its own name")
    return {"<stdin>" if path == "-" else path: label for path, label in zip(inputs, labels)}


def parse_ints(values: list[str] | None, flag: str) -> list[int]:
    """`--budgets 1024,2048 --budgets 4096` -> [1024, 2048, 4096]; `4k` means 4096."""
    out = []
    for v in values or []:
        for item in filter(None, (x.strip() for x in v.split(","))):
            scale = 1024 if item.lower().endswith("k") else 1
            try:
                out.append(int(item[:-1] if scale > 1 else item) * scale)
            except ValueError:
                raise UsageError(f"{flag}: {item!r} is not an integer") from None
    return out


class Evaluation:
    def __init__(self, options: EvalOptions, n_inputs: int, inputs: list[str] | None = None):
        self.o = options
        if options.metric not in METRICS:
            raise UsageError(f"--metric must be one of {', '.join(METRICS)}, not {options.metric!r}")
        from er.params import check_timeout

        check_timeout(options.timeout)
        if (options.baseline is not None or options.aes_weights is not None) and not options.compare:
            options.compare = True
        self.preset = None
        self.long_preset = None
        if options.preset is not None:
            from er.evaluation.longbench import LONG_PRESETS

            if options.preset in LONG_PRESETS:  # L-Eval / LCFO: the preset picks the metric
                self.long_preset = LONG_PRESETS[options.preset]
                if options.metric == "reasoning":
                    options.metric = self.long_preset.metric
                elif options.metric != self.long_preset.metric:
                    raise UsageError(f"--preset {options.preset} is scored with --metric {self.long_preset.metric}, "
                                     f"not {options.metric}")
            else:
                from er.data.presets import get_preset

                self.preset = get_preset(options.preset)
        # the preset's verifier judges rows that carry no `correct`, unless --reward names one
        self.default_verifier = self.preset.verifier if self.preset is not None and not options.rewards else None
        by = []
        for b in options.by:
            by += [x.strip() for x in b.split(",") if x.strip()]
        self.keys = Keys(by, default_dataset=(self.preset or self.long_preset).name if (self.preset or self.long_preset) else None,
                         run_by_file=options.compare and n_inputs > 1, labels=input_labels(options.labels, inputs))
        self.scorer = None
        module, cls = METRICS[options.metric]
        klass = getattr(importlib.import_module(module), cls)
        if options.metric == "reasoning":
            extract = options.extract or ("letter" if self.preset and self.preset.answer_format == "choice" else "auto")
            if options.rewards:
                from er.scoring import Scorer

                self.scorer = Scorer(list(options.rewards), workers=options.workers, timeout=options.timeout)
            self.report = klass(self.keys, budgets=options.budgets, ks=options.ks, maj=options.maj, extract=extract,
                                verifier=", ".join(options.rewards) or None,
                                recommended_n=self.preset.recommended_n if self.preset else None,
                                auc_tokens=options.auc_tokens)
        else:
            if options.rewards or options.maj or options.ks or options.budgets:
                raise UsageError(f"--reward, --k, --maj and --budgets belong to --metric reasoning, not {options.metric}")
            kwargs: dict[str, Any] = {}
            if options.metric == "lc-winrate":
                kwargs = {"gamed": tuple(options.gamed), "lam": options.lc_lambda}
            elif options.metric == "emotion":
                kwargs = {"tables": options.emotion_tables, "level": options.emotion_level}
            elif options.metric == "ruler":
                kwargs = {"span": options.span}
            elif options.metric == "lcfo":
                kwargs = {"band": options.band}
            self.report = klass(self.keys, **kwargs)

    def _rows(self, stream: RecordStream):
        """The stream's rows; with a reasoning --preset, each checked to be that preset's."""
        if self.preset is None:
            return stream.records()
        return (row for row in stream.records() if fits_preset(self.preset, row))

    def _preset_verified(self, rows):
        """`rows`, with the preset's verifier set up when the first row carries no `correct`."""
        import itertools

        first = next(rows, None)
        if first is None:
            return iter(())
        if "correct" not in first[2]:
            from er.scoring import Scorer

            self.scorer = Scorer([self.default_verifier], workers=self.o.workers, timeout=self.o.timeout)
            self.report.verifier = self.default_verifier
        return itertools.chain([first], rows)

    def run(self, stream: RecordStream) -> list[dict]:
        add = self.report.add
        evaluated = 0
        rows = self._rows(stream) if self.o.metric == "reasoning" else None
        if rows is not None and self.default_verifier is not None:
            rows = self._preset_verified(iter(rows))
        if self.scorer is not None:
            from er.groups import iter_groups

            seen = stream.notes[TIMEOUT_NOTE]
            for group in self.scorer.run(iter_groups(rows, stream), stream):
                key = None
                for row in group:
                    try:
                        key = add(row[0], row[2])
                        evaluated += 1
                    except ErError as exc:
                        _reject(stream, row, exc)
                now = stream.notes[TIMEOUT_NOTE]
                if key is not None:
                    self.report.add_timeouts(key, now - seen)
                seen = now
        elif self.o.metric == "reasoning":  # the hot loop: add() returns the key, never a drop reason
            for row in rows:
                try:
                    add(row[0], row[2])
                except ErError as exc:
                    _reject(stream, row, exc)
                    continue
                evaluated += 1
        else:
            drop = stream.drop
            prepare = None
            if self.long_preset is not None:
                from er.evaluation.longbench import prepare_row

                name = self.long_preset.name

                def prepare(source, record):
                    return prepare_row(name, source, record)
            for row in stream.records():
                try:
                    reason = add(row[0], row[2] if prepare is None else prepare(row[0], row[2]))
                except ErError as exc:
                    _reject(stream, row, exc)
                    continue
                if type(reason) is str:
                    drop(reason)
                else:
                    evaluated += 1
        self.evaluated = evaluated
        reports = self.report.reports()
        for name in self.keys.by:
            if reports and all(r.get(name) is None for r in reports):
                raise UsageError(f"--by {name}: no row has a value for {name!r} (a misspelt field? dotted paths "
                                 "reach into objects)")
        if self.preset is not None:
            low = [r for r in reports if (r.get("samples_per_problem") or 0) < self.preset.recommended_n]
            if low:
                stream.note(f"report(s) below {self.preset.name}'s recommended n={self.preset.recommended_n}", len(low))
        if self.o.compare:
            skipped: list[str] = []
            reports = compare(reports, self.keys, self.o.baseline, self.o.aes_weights, skipped)
            for line in skipped:
                log(f"er eval: --compare: not compared (null comparison fields): {line}")
        if stream.n_in == 0:  # exit 0 with no report (as for any empty stream), but never silently
            log("er eval: no rows to evaluate: the input is empty, so no report is written")
        return reports

    def plot(self, path: str, reports: list[dict]) -> None:
        if self.o.metric != "reasoning":
            raise UsageError("--plot draws accuracy/length plots: it needs --metric reasoning")
        from er.evaluation.plot import plot_format, write_plot
        from er.io import OutputFile

        target = OutputFile(path, "--plot")  # written like -o: a temp file renamed on success
        try:
            write_plot(target.file, reports, self.report.arrays(), self.report.horizon(), self.keys.by,
                       fmt=plot_format(path))
        except OSError as exc:
            target.discard()
            raise OutputError(f"cannot write: {exc.strerror or exc}", path) from None
        except BaseException:
            target.discard()
            raise
        target.commit()


def _reject(stream: RecordStream, row: tuple, exc: ErError) -> None:
    """A bad row is rejected; a report of `er eval` itself stops at once: the whole input is reports."""
    record = row[2]
    if record.get("metric") in METRICS and "dataset" in record and "completion" not in record:
        raise ErError("this is a report of `er eval` (it has `metric`, `dataset`, no `completion`), not "
                      "scored rows: give er eval the rows that er score writes", row[0], row[1])
    stream.reject_error(row, exc)


_ANSWER_FORMATS = {"number": "a number", "choice": "a letter A-D"}


def fits_preset(preset: Any, row: tuple) -> bool:
    """True when the row can be one of `preset`'s; else a usage error at its line (see the module doc)."""
    source, line, record = row
    dataset = record.get("dataset")
    if isinstance(dataset, str):
        if dataset == preset.name:
            return True
        why = f"the row's dataset is {dataset!r}"
    else:
        answer = record.get("answer")
        if answer is None or preset.answer_format not in _ANSWER_FORMATS or _answer_fits(answer, preset.answer_format):
            return True
        why = f"answer {answer!r} is not {_ANSWER_FORMATS[preset.answer_format]} ({preset.name}'s answers are)"
    raise UsageError(f"--preset {preset.name}: {why}; these rows are not {preset.name}'s "
                     "(drop --preset, or give their dataset's preset)", source, line)


def _answer_fits(answer: Any, answer_format: str) -> bool:
    if type(answer) in (int, float):
        return answer_format == "number"
    if not isinstance(answer, str):
        return False
    text = answer.strip()
    if answer_format == "choice":
        return text in ("A", "B", "C", "D")
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def summary(stream: RecordStream, evaluated: int, n_reports: int) -> str:
    """The stream's summary with rows counted as evaluated (the output is report records, not rows)."""
    return stream.summary(out=f"{evaluated} evaluated") + f"; {n_reports} report record(s)"
