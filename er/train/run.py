"""The `er update` loop: read steps (rank 0), broadcast them, train, write metrics and checkpoints.

Every step prints one metrics record (schemas/metrics.json) on stdout; a checkpoint DIR/step-N is
written every `--save-every` steps and always at the end (when at least one step ran), `DIR/latest`
pointing at it. `--resume` continues from DIR's latest checkpoint: weights, optimizer moments, step
count (hence the learning-rate schedule) and RNG state, so a resumed run matches an uninterrupted one.
"""

from __future__ import annotations

import os
import tempfile

from er.errors import ErError, UsageError
from er.io import RecordStream, log


def check_out_dir(out_dir: str) -> None:
    """Create DIR if needed and prove it is writable (UsageError otherwise)."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".er-probe-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"--out {out_dir}: not writable ({exc.strerror or exc})") from None


def _broadcast(obj, rank: int):
    import torch.distributed as dist

    box = [obj if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def run_update(model: str, out_dir: str, cfg, stream: RecordStream | None, *, resume: bool = False,
               strict: bool = False, estimator: str | None = None, dynamic_sampling: bool = False,
               mode_tolerance: float = 0.0, trackers=None) -> int:
    """Train on `stream` (read on rank 0 only; other ranks pass None). Returns the number of steps.
    `trackers` (er.train.trackers, rank 0) get each metrics record after it is on the stream."""
    from er.train import checkpoint as ckpt
    from er.train.data import ExampleBuilder, StepReader
    from er.train.trainer import Trainer

    cfg.check()
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:
        check_out_dir(out_dir)
        ckpt.clean_temporaries(out_dir)
    trainer = Trainer(model, out_dir, cfg, resume=resume)
    distributed = trainer.distributed
    if rank == 0 and resume:
        if trainer.resumed_from:
            log(f"er update: resuming from {trainer.resumed_from} at step {trainer.step}")
            if ckpt.is_old_layout(trainer.resumed_from):
                log(f"er update: note: {ckpt.old_layout_hint(trainer.resumed_from)}")
        else:
            log(f"er update: --resume: no checkpoint in {out_dir}; starting from {model}")
    from er.progress import Progress, wanted

    bar = Progress(unit="step", desc="er update", on=rank == 0 and wanted(stream.quiet))
    steps = 0
    saved_step = None  # on every rank: save() returns the path on rank 0 only
    reader = None
    if rank == 0:
        builder = ExampleBuilder(trainer.tokenizer, cfg.loss, trainer.vocab_size, trainer.max_positions,
                                 model, out_dir, strict=strict, temperature=cfg.temperature)
        reader = iter(StepReader(stream, builder, cfg.loss, cfg.batch_size, estimator, dynamic_sampling,
                                 mode_switch=cfg.mode_switch_coef > 0, mode_tolerance=mode_tolerance))
    while True:
        message = None
        if rank == 0:
            try:
                batch = next(reader)
                message = ("batch", batch)
            except StopIteration:
                message = ("end", None)
            except ErError as exc:
                if distributed:
                    _broadcast(("error", str(exc)), rank)
                raise
        if distributed:
            message = _broadcast(message, rank)
        kind, batch = message
        if kind == "end":
            break
        if kind == "error":
            raise ErError(f"rank 0 stopped: {batch}")
        metrics = trainer.run_step(batch)
        steps += 1
        bar.update(1, tokens=metrics.get("tokens") or 0, step=trainer.step, loss=metrics.get("loss"))
        if cfg.save_every and trainer.step % cfg.save_every == 0:
            metrics["checkpoint"] = trainer.save()
            saved_step = trainer.step
        if rank == 0:
            stream.note("rows trained on", batch.rows)
            stream.write(metrics)
            stream.writer.flush()  # one record per step, seconds apart: a watcher sees each at once
            if trackers is not None:
                trackers.log(metrics)
    bar.close()
    if steps and saved_step != trainer.step:
        path = trainer.save()
        if rank == 0:
            log(f"er update: saved {path}")
    if rank == 0 and builder.mismatched:
        stream.note("rows sampled from another policy", builder.mismatched)
    if distributed:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return steps
