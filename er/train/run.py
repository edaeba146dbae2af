"""The `er update` loop: read steps (rank 0), broadcast them, train, write metrics and checkpoints.

Every step prints one metrics record (schemas/metrics.json) on stdout; a checkpoint DIR/step-N is
written every `--save-every` steps and always at the end (when at least one step ran), `DIR/latest`
pointing at it. `--resume` continues from DIR's latest checkpoint: weights, optimizer moments, step
count (hence the learning-rate schedule) and RNG state, so a resumed run matches an uninterrupted one.
"""

from __future__ import annotations

import os

from er.errors import ErError
from er.io import RecordStream, log


def _broadcast(obj, rank: int):
    import torch.distributed as dist

    box = [obj if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def run_update(model: str, out_dir: str, cfg, stream: RecordStream | None, *, resume: bool = False,
               **kwargs) -> int:
    """Train on `stream` (read on rank 0 only; other ranks pass None). Returns the number of steps.

    Rank 0 holds DIR's writer lock for the whole run (er.train.outdir, er.locking).
    """
    from er.train import outdir

    cfg.check()
    outdir.check_numbers(kwargs.get("mode_tolerance", 0.0))
    if int(os.environ.get("RANK", "0")) != 0:
        return _run_update(model, out_dir, cfg, stream, resume=resume, **kwargs)
    with outdir.writing(out_dir, model, resume):
        return _run_update(model, out_dir, cfg, stream, resume=resume, **kwargs)


def _run_update(model: str, out_dir: str, cfg, stream: RecordStream | None, *, resume: bool = False,
                strict: bool = False, estimator: str | None = None, dynamic_sampling: bool = False,
                mode_tolerance: float = 0.0, allow_zero_signal: bool = False,
                command_config: dict | None = None, trackers=None) -> int:
    from er.train import checkpoint as ckpt
    from er.train.data import ExampleBuilder, StepReader
    from er.train.outdir import number_steps
    from er.train.trainer import Trainer

    rank = int(os.environ.get("RANK", "0"))
    trainer = Trainer(model, out_dir, cfg, resume=resume)
    number_steps(trainer, out_dir)
    trainer.command_config = command_config  # recorded beside each checkpoint's trainer state (er.config)
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
    steps = zero = 0  # zero: steps with no policy-gradient signal (er.train.zero_signal)
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
        zero += bool(metrics.get("zero_signal"))
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
    from er.train.zero_signal import check_run

    if not allow_zero_signal:
        check_run(steps, zero, trainer.step - trainer.zero_signal_steps, stream)
    return steps
