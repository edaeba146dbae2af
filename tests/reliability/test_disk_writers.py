"""A full disk while `er update` saves a checkpoint or `er score --reward hapo` saves its state: one line, exit 1,
nothing half-written under a final name (`latest` still loads, the previous state file is intact). HAPO's state
file gets the umask's mode like every other output.

The full disk is real: a small tmpfs mounted in a private mount namespace (`unshare`), so the writes fail
with ENOSPC as on a full device. Where namespaces are not allowed, these tests are skipped."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.helpers import ER, jsonl, sample_record


def namespace_command() -> list[str]:
    return ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]


@pytest.fixture(scope="module")
def small_disk():
    """small_disk(seed, free_kb, then, cwd): in one mount namespace, mount a tmpfs at $MNT, run bash `seed`,
    shrink the tmpfs to what `seed` used plus `free_kb` KiB, run `then` (its status goes to cwd/rc), and
    copy $MNT to cwd/after for the test to read (the tmpfs goes with the namespace)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to mount a small file system")
    probe = subprocess.run([*namespace_command(), "sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a mount namespace here: {probe.stderr.decode().strip()}")

    def run(seed: str, free_kb: int, then: str, cwd: Path) -> subprocess.CompletedProcess:
        script = f"""set -eu
            MNT=$(mktemp -d); export MNT
            mount -t tmpfs -o size=64m tmpfs "$MNT"
            {seed}
            used=$(df -k --output=used "$MNT" | tail -1)
            mount -o remount,size=$(( (used + {free_kb}) * 1024 )) "$MNT"
            set +e
            {then}
            echo $? > rc
            cp -a "$MNT" after
        """
        return subprocess.run([*namespace_command(), "bash", "-c", script], cwd=cwd, capture_output=True, timeout=600,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})

    return run


def one_error_line(cwd: Path, proc: subprocess.CompletedProcess, note: str | None = None) -> str:
    """The command's one error line (exit 1); `note`: an expected progress note before it."""
    assert (cwd / "rc").read_text().strip() == "1", proc.stderr.decode()
    err = (cwd / "err").read_text()
    assert "Traceback" not in err, err
    lines = err.splitlines()
    if note is not None:
        assert note in lines.pop(0), err
    assert len(lines) == 1, err
    return lines[0]


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_latest_still_loads(tiny_model, small_disk, tmp_path):
    from transformers import AutoModelForCausalLM

    (tmp_path / "rows.jsonl").write_bytes(b"".join(orjson.dumps({"prompt": f"{i} + 1 =", "completion": f" {i + 1}"})
                                                   + b"\n" for i in range(4)))
    er = " ".join(ER)
    # room for the new step's trainer state (about twice the weights), not for its weights as well
    proc = small_disk(f"""
        mkdir -p "$MNT/ckpt/trainer-state/step-1" && cp -a {tiny_model} "$MNT/ckpt/step-1"
        echo '{{"step": 1}}' > "$MNT/ckpt/trainer-state/step-1/er_state.json" && ln -s step-1 "$MNT/ckpt/latest"
        """, 2200, f"""{er} update -m {tiny_model} --out "$MNT/ckpt" --loss sft --batch-size 4 -q rows.jsonl \\
            > metrics.jsonl 2> err""", tmp_path)
    err = one_error_line(tmp_path, proc, note="holds checkpoints up to step-1; this run's are step-2 on")
    assert err.startswith("er update: --out ") and "cannot write step-2: No space left on device" in err, err
    ckpt = tmp_path / "after" / "ckpt"
    assert sorted(os.listdir(ckpt)) == [".er-writer.lock", "latest", "step-1", "trainer-state"]  # no step-2, no .tmp
    assert os.listdir(ckpt / "trainer-state") == ["step-1"]
    assert os.readlink(ckpt / "latest") == "step-1"
    AutoModelForCausalLM.from_pretrained(str(ckpt / "latest"))


def hapo_rows(n: int) -> bytes:
    return jsonl(sample_record(f"q{i}", 0, 1, correct=True, completion_tokens=10 + i % 40) for i in range(n))


def test_a_full_disk_while_saving_the_hapo_state_is_one_line_and_the_old_state_stays(small_disk, tmp_path):
    (tmp_path / "rows.jsonl").write_bytes(hapo_rows(3000))
    old = b"".join(orjson.dumps({"id": f"old{i}", "h": 10, "n": 1}) + b"\n" for i in range(20))
    (tmp_path / "old.json").write_bytes(old)
    er = " ".join(ER)
    proc = small_disk('cp old.json "$MNT/state.json"', 16,
                      f'{er} score -r hapo:save_every=1000 --state "$MNT/state.json" -q rows.jsonl > /dev/null 2> err',
                      tmp_path)
    err = one_error_line(tmp_path, proc)
    assert err.startswith("er score: ") and "state.json: cannot write: No space left on device" in err, err
    assert (tmp_path / "after" / "state.json").read_bytes() == old
    assert sorted(os.listdir(tmp_path / "after")) == [".state.json.er-writer.lock", "state.json"]  # no temporary


def test_the_hapo_state_file_gets_the_umask_mode(tmp_path):
    state = tmp_path / "state.json"
    proc = subprocess.run([*ER, "score", "-r", "hapo", "--state", str(state), "-q"], input=hapo_rows(2),
                          capture_output=True, preexec_fn=lambda: os.umask(0o022), timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o644
