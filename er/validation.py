"""`er validate`: the commands' own checks, run over a stream without doing the work.

Per row: the JSON Schema of the record kind (`er.schema.errors`) and, with `--for score:SPEC`, the
row checks of an `er score` run with those rewards (`er.scoring.Scorer.check_row`). For kinds whose
records carry groups, the stream goes through `er.groups.iter_groups`, the grouping every group stage
uses. Every problem is reported with its line (not only the first); the exit status is 1 if any.
"""

from __future__ import annotations

from typing import Iterator

from er.errors import ErError, UsageError
from er.io import RecordStream, Row, log
from er.schema import errors, fields_added, load_schema

STAGES = ("score",)


def _scorer(specs: list[str]):
    rewards = []
    for spec in specs:
        stage, _, rest = spec.partition(":")
        if stage not in STAGES or not rest:
            raise UsageError(f"--for {spec}: give STAGE:SPEC with STAGE one of {', '.join(STAGES)} (e.g. score:math)")
        rewards.append(rest)
    if not rewards:
        return None
    from er.scoring import Scorer

    return Scorer(rewards, workers=0)


def validate(inputs, kind: str, for_: list[str], max_line_bytes: int) -> None:
    schema = load_schema(kind)
    scorer = _scorer(for_)
    # what `er sample` still adds to a prompt is not asked of it
    added = fields_added(kind, "sample") if scorer is not None else frozenset()
    bad = 0
    stream = RecordStream("validate", inputs, output=None, max_line_bytes=max_line_bytes, quiet=True)

    def report(source, line, error, record):
        nonlocal bad
        bad += 1
        log(f"er validate: {source}:{line}: {error}")

    stream.reject = report  # type: ignore[method-assign]  # every problem is reported, none stops the run

    def rows() -> Iterator[Row]:
        for row in stream.records():
            source, line, record = row
            for message in errors(record, kind):
                report(source, line, message, record)
            if scorer is not None:
                try:
                    scorer.check_row(dict(record), added)
                except ErError as exc:
                    report(source, line, exc.message, record)
            yield row

    if "group_id" in schema.get("properties", {}):
        from er.groups import iter_groups

        for _ in iter_groups(rows(), stream):
            pass
    else:
        for _ in rows():
            pass
    log(f"er validate: {stream.n_in} rows, {bad} problems ({kind})")
    if bad:
        raise ErError(f"{bad} problem(s) in {stream.n_in} rows")
