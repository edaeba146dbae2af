"""The `--out` directory of `er update`: one writer, step numbers that never reuse a name, a resume that fits.

Numbering. An existing `DIR/step-N` is never overwritten (a `--watch` sampler follows `latest` by its
resolved path, and `--keep-last` keeps the highest numbers, so a rewritten step-N would be missed by the
one and pruned by the other). The same rule holds for every loop shape:
- without `--resume` a run starts numbering after the highest `step-N` already in DIR (complete or
  not): on a DIR holding step-1..6 its checkpoints are step-7, step-8, ... and `latest` moves to the
  newest. It is a new run in every other respect (weights from `-m`, a fresh optimizer, the warm-up
  counted from its own first step), so the project card's pipe, repeated, leaves step-1..2N.
- with `--resume` a run continues from DIR's latest checkpoint (its step count included); a
  `step-N` newer than that checkpoint (latest moved back by hand, or a step left incomplete) would be
  the next name written, so the run is refused (exit 2) with the names to point `latest` at or move.

A resumed checkpoint must be of `-m`'s model (`er.model_identity`: architecture, shapes, tokenizer),
else the run is refused before anything loads: resuming would train the checkpoint's model while
the metrics and the warning about off-policy rows speak of `-m`.
"""

from __future__ import annotations

import functools
import math
import os
import re
import tempfile
from contextlib import contextmanager
from typing import Iterator

from er.errors import OutputError, UsageError
from er.io import log

_STEP = re.compile(r"^step-(\d+)$")


def check_out_dir(out_dir: str) -> None:
    """Create DIR if needed and prove it is writable (UsageError otherwise)."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".er-probe-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"--out {out_dir}: not writable ({exc.strerror or exc})") from None


@contextmanager
def writing(out_dir: str, model: str, resume: bool) -> Iterator[None]:
    """Hold DIR for one run of `er update` (rank 0): created if needed, locked, cleaned, resume checked.

    Everything that can refuse the run happens here, before a model loads. A DIR this run created
    and left empty (the run failed before its first checkpoint) is removed again.
    """
    from er.locking import WriterLock
    from er.train import checkpoint as ckpt

    created = not os.path.lexists(out_dir)
    check_out_dir(out_dir)
    lock = WriterLock(out_dir, flag="--out", what="this checkpoint directory", command="er update")
    try:
        ckpt.clean_temporaries(out_dir)
        found = ckpt.latest_checkpoint(out_dir) if resume else None
        if found is not None:
            check_resume_matches(model, found)
            first_step(out_dir, ckpt.read_step(found))
        yield
    except BaseException:
        if created:
            _remove_if_unused(out_dir, lock.path)
        raise
    finally:
        lock.release()


def _remove_if_unused(out_dir: str, lock_file: str) -> None:
    try:
        if set(os.listdir(out_dir)) <= {os.path.basename(lock_file)}:
            if os.path.exists(lock_file):
                os.unlink(lock_file)
            os.rmdir(out_dir)
    except OSError:
        pass  # left as it is: the error being reported matters more


def number_steps(trainer, out_dir: str) -> None:
    """Start a run that does not resume after DIR's highest step-N (its warm-up from its own first step)."""
    if trainer.resumed_from is not None:
        return
    start = first_step(out_dir, None)
    if start and trainer.rank == 0:
        log(f"er update: {out_dir} holds checkpoints up to step-{start}; this run's are step-{start + 1} on "
            "(a new run from -m; --resume continues the optimizer and the schedule instead)")
    trainer.step = trainer.first_step = start


def highest_step(out_dir: str) -> int:
    """The highest N of an entry named `step-N` in DIR (0 when none): complete or not, any kind of entry."""
    try:
        names = os.listdir(out_dir)
    except OSError:
        return 0
    return max((int(m.group(1)) for n in names if (m := _STEP.match(n))), default=0)


def first_step(out_dir: str, resumed_step: int | None) -> int:
    """The step count a run starts from: its first checkpoint is step-(this + 1) (see the module doc)."""
    newest = highest_step(out_dir)
    if resumed_step is None:
        return newest
    if newest > resumed_step:
        raise UsageError(
            f"--out {out_dir}: --resume continues from step-{resumed_step} (latest), but step-{newest} exists "
            f"and an existing step-N is never overwritten; point latest at the step to continue from "
            f"(ln -sfn step-{newest} {os.path.join(out_dir, 'latest')}) or move the newer steps away")
    return resumed_step


def check_resume_matches(model: str, checkpoint: str) -> None:
    """UsageError when the checkpoint `--resume` would continue from is not a checkpoint of `-m`."""
    from er.model_identity import model_difference
    from er.models import model_dir

    why = model_difference(model_dir(model), checkpoint)
    if why is not None:
        raise UsageError(f"--resume: {checkpoint} is not a checkpoint of -m {model} ({why}); "
                         "give -m the model it was trained from, or another --out for a new run")


def check_numbers(mode_tolerance: float) -> None:
    """The flags of `er update` that UpdateConfig does not hold (UsageError before anything loads)."""
    if not math.isfinite(mode_tolerance):
        raise UsageError(f"--mode-switch-tol must be a finite number, not {mode_tolerance}")


def write_failures(save):
    """Decorate `save_checkpoint(model, tokenizer, out_dir, step, ...)`: a failed write is one line, exit 1.

    A full disk, a quota, an I/O error (an OSError, or safetensors' own error for one) becomes
    `OutputError("--out DIR: cannot write step-N: REASON")`; the save has already removed what it had
    half-written, so `latest` still names the previous complete checkpoint.
    """

    @functools.wraps(save)
    def wrapper(model, tokenizer, out_dir, step, *args, **kwargs):
        try:
            return save(model, tokenizer, out_dir, step, *args, **kwargs)
        except OSError as exc:
            reason = exc.strerror or str(exc)
        except Exception as exc:
            text = str(exc)
            if type(exc).__name__ != "SafetensorError" or "I/O error" not in text:
                raise
            reason = text.split("I/O error:", 1)[1].strip()
        raise OutputError(f"--out {out_dir}: cannot write step-{step}: {reason}") from None

    return wrapper
