"""Every numeric flag of `er update` is checked before anything loads: NaN, infinity, and negative or zero
values where they mean nothing are usage errors (exit 2, one line), and no `--out` directory is left behind.

`-m` names no model here: a check that came after loading would report that instead."""

from __future__ import annotations

import pytest

from tests.train.helpers import run_er as run_in_process

BAD = [
    ("--lr", "nan", "--lr must be a finite number, not nan"),
    ("--lr", "inf", "--lr must be a finite number, not inf"),
    ("--lr", "0", "must be positive"),
    ("--lr", "-1e-6", "must be positive"),
    ("--weight-decay", "-0.01", "--weight-decay must be >= 0, not -0.01"),
    ("--grad-clip", "nan", "--grad-clip must be a finite number, not nan"),
    ("--grad-clip", "-1", "--grad-clip must be >= 0 (0: off), not -1.0"),
    ("--warmup", "-5", "--warmup must be >= 0, not -5"),
    ("--save-every", "-1", "--save-every must be >= 0 (0: only at the end), not -1"),
    ("--temperature", "0", "--temperature must be > 0, not 0.0"),
    ("--clip-high", "nan", "--clip-high must be a finite number, not nan"),
    ("--kl-coef", "inf", "--kl-coef must be a finite number, not inf"),
    ("--is-cap", "inf", "--is-cap must be a finite number, not inf"),
    ("--drpo-tau", "0", "--drpo-tau must be > 0, not 0.0"),
    ("--drpo-beta", "-1", "--drpo-beta must be >= 0, not -1.0"),
    ("--mode-switch-margin", "-1", "--mode-switch-margin must be >= 0, not -1.0"),
    ("--mode-switch-tol", "nan", "--mode-switch-tol must be a finite number, not nan"),
]


@pytest.mark.parametrize("flag, value, message", BAD, ids=[f"{f}={v}" for f, v, _ in BAD])
def test_a_meaningless_number_is_a_usage_error_before_anything_loads(tmp_path, capsys, flag, value, message):
    out = tmp_path / "ckpt"
    (tmp_path / "rows.jsonl").write_text('{"prompt": "1 + 1 =", "completion": " 2"}\n')
    code, err = run_in_process(["update", "-m", tmp_path / "no-model", "--out", out, "--loss", "sft", flag, value,
                                tmp_path / "rows.jsonl"], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err
    assert not out.exists()


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_empty_out_directory(tmp_path, capsys):
    out = tmp_path / "ckpt"
    (tmp_path / "rows.jsonl").write_text('{"prompt": "1 + 1 =", "completion": " 2"}\n')
    code, err = run_in_process(["update", "-m", tmp_path / "no-model", "--out", out, "--loss", "sft",
                                tmp_path / "rows.jsonl"], capsys)
    assert code == 2 and "no such directory" in err, err
    assert not out.exists()
