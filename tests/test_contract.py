"""Contract tests run across every command that reads records (DESIGN.md, Tests):
empty input -> empty output and exit 0; malformed line 3 -> exit 1 naming `:3:`; unknown fields pass
through; outputs validate against their schema."""

from __future__ import annotations

import pytest

from er.schema import errors
from tests.helpers import jsonl, parse_jsonl, run_er, sample_record


def scored(group: str, idx: int, size: int, **kw) -> dict:
    return sample_record(group, idx, size, rewards={"math": float(idx % 2)}, reward=float(idx % 2),
                         correct=bool(idx % 2), **kw)


def doc(i: int, **kw) -> dict:
    return {"doc_id": f"d{i}", "token_ids": list(range(1, 40 + 10 * i)), **kw}


def prompt(i: int, **kw) -> dict:
    return {"id": f"p{i}", "prompt": "1 + 2 =", "answer": "3", **kw}


# command args (besides the input), a record factory of 3 valid rows with an extra field, output kind
CASES = {
    "score": (["score", "-r", "math", "-r", "length", "--workers", "0"],
              lambda **kw: [sample_record("g", i, 3, **kw) for i in range(3)], "scored"),
    "advantage": (["advantage", "-e", "grpo"], lambda **kw: [scored("g", i, 3, **kw) for i in range(3)], "advantaged"),
    "eval": (["eval"], lambda **kw: [scored("g", i, 3, **kw) for i in range(3)], "report"),
    "decompose": (["decompose", "--min-len", "8", "--max-len", "32", "--workers", "0"],
                  lambda **kw: [doc(i, **kw) for i in range(3)], None),
    "validate": (["validate", "--kind", "sample"], lambda **kw: [sample_record("g", i, 3, **kw) for i in range(3)], None),
}
MODEL_CASES = {
    "sample": (["sample", "-n", "2", "--max-tokens", "4", "--seed", "0", "--backend", "transformers"],
               lambda **kw: [prompt(i, **kw) for i in range(3)], "sample"),
    "update": (["update", "--loss", "sft", "--batch-size", "2"],
               lambda **kw: [sample_record("g", i, 3, completion="4", **kw) for i in range(3)], "metrics"),
}


def args_for(name, tiny_model, tmp_path):
    base, make, kind = {**CASES, **MODEL_CASES}[name]
    args = list(base)
    if name == "sample":
        args += ["-m", tiny_model]
    if name == "update":
        args += ["-m", tiny_model, "--out", str(tmp_path / "ckpt")]
    return args, make, kind


@pytest.fixture(params=sorted({**CASES, **MODEL_CASES}))
def command(request, tmp_path):
    if request.param in MODEL_CASES:
        return request.param, *args_for(request.param, request.getfixturevalue("tiny_model"), tmp_path)
    return request.param, *args_for(request.param, None, tmp_path)


def test_empty_input_gives_empty_output_and_exit_0(command):
    name, args, _, _ = command
    proc = run_er(*args, input=b"")
    assert proc.returncode == 0, proc.stderr.decode()
    if name != "eval":  # eval writes an empty report: no rows
        assert proc.stdout == b""
    assert b"Traceback" not in proc.stderr


def test_malformed_line_3_exits_1_naming_the_line(command):
    name, args, make, _ = command
    rows = make()
    data = jsonl(rows[:2]) + b'{"oops": \n' + jsonl(rows[2:])
    proc = run_er(*args, input=data)
    assert proc.returncode == 1, proc.stderr.decode()
    assert "<stdin>:3:" in proc.stderr.decode()
    assert proc.stderr.decode().strip().count("\n") == 0 or name == "validate"


def test_unknown_fields_pass_through(command):
    name, args, make, kind = command
    if kind in (None, "report", "metrics"):
        pytest.skip(f"{name} does not write the records it reads")
    proc = run_er(*args, input=jsonl(make(user_meta={"run": 7, "tags": ["a"]})))
    assert proc.returncode == 0, proc.stderr.decode()
    out = parse_jsonl(proc.stdout)
    assert out and all(r["user_meta"] == {"run": 7, "tags": ["a"]} for r in out)


def test_outputs_validate_against_their_schema(command):
    name, args, make, kind = command
    if kind is None:
        pytest.skip(f"{name} writes no records of a schema kind")
    proc = run_er(*args, input=jsonl(make()))
    assert proc.returncode == 0, proc.stderr.decode()
    out = parse_jsonl(proc.stdout)
    assert out
    for record in out:
        assert errors(record, kind) == [], record
