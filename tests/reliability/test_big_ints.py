"""Promise: integers beyond 64 bits pass through every command exact (the digits, not a float), an
integer answer of 10^30 is judged right, and Arrow output of one is one line (exit 1), no file."""

from __future__ import annotations

import json

from tests.helpers import run_er, sample_record
from tests.reliability.test_one_line_errors import one_line

UID = 2**70 + 1  # 1180591620717411303425: a float would end in ...303424
ANSWER = 10**30


def rows() -> bytes:
    records = [sample_record(f"g{i}", j, 2, answer=ANSWER, uid=UID, completion=rf"so \boxed{{{ANSWER}}}",
                             nested={"ids": [UID, -UID]}) for i in range(2) for j in range(2)]
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def exact(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines()]  # the standard library keeps big ints exact


def test_a_score_advantage_eval_pipe_keeps_big_integers_and_judges_an_integer_answer_of_10_to_the_30():
    scored = run_er("score", "--reward", "math", "--workers", "0", input=rows(), check=True).stdout
    out = exact(run_er("advantage", input=scored, check=True).stdout)
    assert [r["uid"] for r in out] == [UID] * 4 and [r["answer"] for r in out] == [ANSWER] * 4
    assert all(r["nested"] == {"ids": [UID, -UID]} and r["correct"] is True for r in out)
    assert str(UID).encode() in scored and b"e+" not in scored
    report = exact(run_er("eval", "--by", "uid", input=scored, check=True).stdout)
    assert report[0]["uid"] == UID and report[0]["accuracy"] == 1.0


def test_validate_and_rejects_keep_them_too(tmp_path):
    assert run_er("validate", "--kind", "sample", input=rows()).returncode == 0
    bad = rows() + json.dumps({**sample_record("g9", 0, 1, uid=UID), "completion": 5}).encode() + b"\n"
    proc = run_er("score", "-r", "length", "--rejects", str(tmp_path / "rej.jsonl"), input=bad, check=True)
    assert [r["uid"] for r in exact(proc.stdout)] == [UID] * 4
    assert exact((tmp_path / "rej.jsonl").read_bytes())[0]["record"]["uid"] == UID


def test_arrow_output_of_a_big_integer_is_one_line_and_no_file(tmp_path):
    out = tmp_path / "out.arrow"
    one_line(run_er("score", "-r", "length", "--format", "arrow", "-o", str(out), input=rows()), 1, "beyond 64 bits")
    assert not out.exists()
