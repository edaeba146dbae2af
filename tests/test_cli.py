"""The command line as a whole: help, start-up cost, schemas, validate, errors."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import jsonl, run_er, sample_record


def test_help_lists_the_commands():
    out = run_er("--help", check=True).stdout.decode()
    for name in ("score", "advantage", "schema", "validate"):
        assert name in out


def test_light_commands_import_no_heavy_library():
    code = ("import sys; from er.cli import build_app; build_app(); "
            "print(' '.join(m for m in ('torch','transformers','vllm','math_verify','trl','datasets','matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout.decode().strip()
    assert out == ""


def test_schema_prints_valid_json_schema_for_every_kind():
    kinds = run_er("schema", check=True).stdout.decode().split()
    assert {"prompt", "sample", "scored", "advantaged", "metrics"} <= set(kinds)
    for kind in kinds:
        schema = json.loads(run_er("schema", kind, check=True).stdout)
        assert schema["$schema"].startswith("https://json-schema.org/draft/2020-12")


def test_unknown_schema_kind_is_a_usage_error():
    proc = run_er("schema", "sampel")
    assert proc.returncode == 2 and "Did you mean 'sample'" in proc.stderr.decode()


def test_validate_reports_every_bad_row_with_its_line(tmp_path):
    good = sample_record("a", 0, 1)
    bad_type = sample_record("b", 0, 1, finish_reason="eos")
    missing = sample_record("c", 0, 1)
    del missing["policy"]
    path = tmp_path / "s.jsonl"
    path.write_bytes(jsonl([good, bad_type]) + b"{nope\n" + jsonl([missing]))
    proc = run_er("validate", "--kind", "sample", str(path))
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert f"{path}:2: finish_reason: 'eos' is not one of ['stop', 'length']" in err
    assert f"{path}:3: malformed JSON" in err
    assert f"{path}:4: 'policy' is a required property" in err
    assert run_er("validate", "--kind", "sample", input=jsonl([good])).returncode == 0


def test_usage_errors_exit_2_with_one_line():
    proc = run_er("advantage", "--no-such-flag")
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("er advantage: ")


def test_debug_shows_the_traceback():
    proc = run_er("advantage", "--debug", input=b"{bad\n")
    assert proc.returncode != 0 and "Traceback" in proc.stderr.decode()


def test_a_rank_in_a_process_group_skips_finalization_but_keeps_its_output_and_exit_status():
    # A gloo worker thread may drop the last tensor of a collective while the interpreter finalizes,
    # which aborts the rank; so a process that joined a group ends without finalizing (atexit never
    # runs), after flushing everything it wrote: the same bytes and status as a plain run.
    rows = [sample_record(f"g{g}", i, 2, reward=float(i)) for g in range(2000) for i in range(2)]
    stdin = jsonl(rows) + b"{bad\n"
    code = ("import atexit, sys; import er.train.trainer as t; t.joined_process_group = {}; "
            "atexit.register(lambda: print('finalized', file=sys.stderr)); "
            "from er.cli import main; sys.exit(main(['advantage', '-e', 'grpo']))")
    plain, rank = (subprocess.run([sys.executable, "-c", code.format(joined)], input=stdin, capture_output=True)
                   for joined in (False, True))
    assert plain.stderr.decode().endswith("finalized\n") and "finalized" not in rank.stderr.decode()
    assert rank.returncode == plain.returncode == 1
    assert rank.stderr.decode().startswith("er advantage: <stdin>:4001: ")
    assert rank.stdout == plain.stdout and len(rank.stdout) > 1 << 20
