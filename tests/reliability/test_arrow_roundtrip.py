"""Promise: Arrow output changes user JSON only as the README says (a nested object is a struct of
the keys its first batch shows: an absent key reads back null), never silently otherwise: a later
row with a key that struct lacks, or a field nested too deeply for Arrow, is one line, exit 1."""

from __future__ import annotations

from tests.helpers import jsonl, parse_jsonl, run_er, sample_record
from tests.reliability.test_one_line_errors import one_line


def rows(*metas) -> bytes:
    return jsonl([sample_record(f"g{i}", 0, 1, meta=m) for i, m in enumerate(metas)])


def test_an_absent_nested_key_reads_back_null_as_documented(tmp_path):
    (tmp_path / "in.jsonl").write_bytes(rows({}, {"a": 1}))  # a file: both rows in the first batch
    arrow = run_er("score", "-r", "length", "--format", "arrow", str(tmp_path / "in.jsonl"), check=True).stdout
    back = parse_jsonl(run_er("score", "-r", "length", input=arrow, check=True).stdout)
    assert [r["meta"] for r in back] == [{"a": None}, {"a": 1}]


def test_a_later_nested_key_the_struct_lacks_is_one_line_not_dropped(tmp_path):
    out = tmp_path / "out.arrow"
    metas = [{"a": 1}] * 300 + [{"a": 1, "b": 2}]  # the first batch holds 256 rows
    one_line(run_er("score", "-r", "length", "--format", "arrow", "-o", str(out), input=rows(*metas)),
             1, "meta.b", "--format jsonl")
    assert not out.exists()
    # from a pipe each group is a batch: `{}` first types `meta` as a struct without keys
    one_line(run_er("score", "-r", "length", "--format", "arrow", input=rows({}, {"a": 1})), 1, "meta.a")


def test_a_deeply_nested_field_is_one_line():
    deep: dict = {"x": 1}
    for _ in range(200):
        deep = {"a": deep}
    one_line(run_er("score", "-r", "length", "--format", "arrow", input=rows(deep, deep)), 1, "arrow output")
