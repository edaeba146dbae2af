"""Promise: every failure the README promises as one line is one line, `er <cmd>: <src>:<line>: <msg>`,
exit 1 or 2, naming the right line: odd `group_id`s, unwritable or full report targets, a bad row
inside a group, and Arrow output whose rows do not share one type per field."""

from __future__ import annotations

import os
import stat

import pyarrow as pa
import pytest

from tests.helpers import jsonl, parse_jsonl, run_er, sample_record


def one_line(proc, code: int, *words: str) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == code and err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


def full_device(tmp_path) -> str:
    path = tmp_path / "full"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    return str(path)


SCORED = dict(reward=1.0, correct=True, rewards={"math": 1.0})


@pytest.mark.parametrize("gid", [{"a": 1}, [1, 2]])
def test_an_object_or_list_group_id_is_a_data_error_at_its_line(tmp_path, gid):
    rows = [sample_record("a", 0, 1, **SCORED), {**sample_record("b", 0, 1, **SCORED), "group_id": gid}]
    for command in (("advantage",), ("score", "-r", "length"), ("eval",), ("validate", "--kind", "scored")):
        proc = run_er(*command, input=jsonl(rows))
        if command[0] == "validate":
            assert proc.returncode == 1 and ":2: field 'group_id'" in proc.stderr.decode()
            continue
        one_line(proc, 1, "<stdin>:2:", "group_id")
        rejects = tmp_path / "rej.jsonl"
        proc = run_er(*command, "--rejects", str(rejects), input=jsonl(rows))
        assert proc.returncode == 0 and "Traceback" not in proc.stderr.decode(), proc.stderr
        assert [r["line"] for r in parse_jsonl(rejects.read_bytes())] == [2]


def test_plot_and_markdown_into_an_unwritable_place_or_a_full_disk_are_one_line(tmp_path):
    rows = jsonl([sample_record("a", 0, 1, **SCORED)])
    full = full_device(tmp_path)
    os.symlink(full, tmp_path / "full.png")  # --plot takes its format from the name's extension
    for flags, ext in ((("--plot",), ".png"), (("--format", "md", "-o"), "")):
        one_line(run_er("eval", *flags, "/proc/self/x" + ext, input=rows), 2, "cannot write here")
        one_line(run_er("eval", *flags, str(tmp_path / "no" / "x") + ext, input=rows), 2, "cannot write here")
        one_line(run_er("eval", *flags, full + ext, input=rows), 1, "No space left")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "full.png"]


def test_a_bad_row_inside_a_group_is_reported_at_its_own_line(tmp_path):
    rows = [sample_record("a", 0, 2), sample_record("a", 1, 2, completion_tokens="many")]
    one_line(run_er("score", "-r", "length", input=jsonl(rows)), 1, "<stdin>:2:", "completion_tokens")
    rejects = tmp_path / "rej.jsonl"
    proc = run_er("score", "-r", "length", "--rejects", str(rejects), input=jsonl(rows))
    assert proc.returncode == 0, proc.stderr
    assert [r["sample_idx"] for r in parse_jsonl(proc.stdout)] == [0]
    bad = parse_jsonl(rejects.read_bytes())
    assert [(b["line"], b["record"]["sample_idx"]) for b in bad] == [(2, 1)]


def test_arrow_output_types_a_nested_field_null_in_the_first_batch_from_the_schema(tmp_path):
    rows = [sample_record(f"g{i}", 0, 1, reward=1.0, policy={"model": "m", "step": None if i < 300 else i})
            for i in range(600)]
    out = tmp_path / "out.arrows"
    run_er("advantage", "--format", "arrow", "-o", str(out), input=jsonl(rows), check=True)
    table = pa.ipc.open_stream(out.read_bytes()).read_all()
    steps = [p["step"] for p in table.column("policy").to_pylist()]
    assert steps == [r["policy"]["step"] for r in rows]


@pytest.mark.parametrize("switch_at", [3, 300])  # inside the first batch, and after it
def test_arrow_output_with_mixed_field_types_is_one_line_and_leaves_no_file(tmp_path, switch_at):
    rows = [sample_record(f"g{i}", 0, 1, reward=1.0, answer=5 if i < switch_at else "five") for i in range(600)]
    out = tmp_path / "out.arrows"
    one_line(run_er("advantage", "--format", "arrow", "-o", str(out), input=jsonl(rows)), 1,
             "field 'answer'", "--format jsonl")
    assert list(tmp_path.iterdir()) == []
