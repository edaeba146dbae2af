"""Promise: `er merge` never writes a half-merged model: a tuned tensor the base lacks is one line
naming it (exit 1), and a write that fails (the disk full) is one line, exit 1, nothing under --out."""

from __future__ import annotations

import resource
import signal
import subprocess

import numpy as np
from safetensors.numpy import save_file

from tests.helpers import ER
from tests.reliability.test_one_line_errors import one_line


def model(path, tensors: dict) -> str:
    path.mkdir()
    save_file(tensors, str(path / "model.safetensors"))
    (path / "config.json").write_text("{}")
    return str(path)


def weights(n: int = 1, size: int = 64) -> dict:
    rng = np.random.default_rng(n)
    return {"a.weight": rng.standard_normal(size).astype(np.float32),
            "b.weight": rng.standard_normal(size).astype(np.float32)}


def test_a_tuned_tensor_missing_from_the_base_is_one_line_naming_it(tmp_path):
    base = {"a.weight": weights()["a.weight"]}
    proc = subprocess.run([*ER, "merge", "--base", model(tmp_path / "base", base),
                           "--tuned", model(tmp_path / "tuned", weights(2)), "--out", str(tmp_path / "out")],
                          capture_output=True)
    one_line(proc, 1, "b.weight", "not in --base")
    assert not (tmp_path / "out").exists()


def _small_file_limit() -> None:
    # a file over 64 KiB fails with EFBIG, as a full disk fails a write with ENOSPC (no mount needed)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))


def test_a_write_that_fails_midway_is_one_line_and_leaves_nothing_under_out(tmp_path):
    base, tuned = model(tmp_path / "base", weights(1, 1 << 16)), model(tmp_path / "tuned", weights(2, 1 << 16))
    (tmp_path / "runs").mkdir()
    out = tmp_path / "runs" / "merged"
    proc = subprocess.run([*ER, "merge", "--base", base, "--tuned", tuned, "--out", str(out)],
                          capture_output=True, preexec_fn=_small_file_limit)
    one_line(proc, 1, "cannot write", "File too large")
    assert list((tmp_path / "runs").iterdir()) == []
