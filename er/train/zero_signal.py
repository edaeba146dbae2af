"""Zero-signal steps: an optimizer step whose every row has advantage 0 is skipped, counted and reported.

With the policy-gradient loss (`--loss grpo`, no `--kl-coef`, `--entropy-coef` or mode-switch term) the
gradient of a step is Σ A_i ∇log π(y_i): when every advantage A_i is 0 it is exactly zero, and the
forward/backward passes are wasted compute. Worse, AdamW's decoupled weight decay still moves the
weights, so the checkpoint differs from the model it came from without having learnt anything. Group
advantages are 0 when the rewards within each group are equal — most often because no row is correct
(the task is too hard within the token budget L_T), or because every row is.

Such a step is *skipped* but still *counted* (design choice): the step number advances, the learning-rate
schedule advances with it, `samples`/`tokens` are counted, checkpoints are written on the usual
`--save-every` schedule and at the end, so `DIR/step-N`, `latest`, `--resume` and the loops that watch
them (the step-wise Makefile, `er sample --watch`) see the same numbering as with a trained step. The
weights and the optimizer state are left untouched (no weight decay either). The metrics record says
`zero_signal: true` (`loss` and `grad_norm` 0, the per-token statistics null), stderr gets one warning
with the reason, and a run whose every step had zero signal ends with exit status 1 and a line saying
so when no step since the base model was trained (its checkpoints are written first; the count of
skipped steps travels in the trainer state, so a resumed run knows). Other losses (DRPO, SFT) and steps with a KL, entropy or
mode-switch term are never skipped: those terms carry gradient of their own.
"""

from __future__ import annotations

from er.errors import ErError
from er.io import log


def reason(batch, cfg, mode_prompts: bool = False) -> str | None:
    """Why `batch` has no policy-gradient signal under `cfg`, or None when it has some (or may have)."""
    if cfg.loss != "grpo" or cfg.kl_coef > 0 or cfg.entropy_coef > 0 or mode_prompts:
        return None
    exs = batch.examples
    if not exs or any(e.advantage != 0 for e in exs):
        return None
    n = len(exs)
    verdicts = [e.correct for e in exs if e.correct is not None]
    if verdicts and not any(verdicts):
        return f"no correct rows (0 of {n})"
    if verdicts and len(verdicts) == n and all(verdicts):
        return f"every row correct ({n} of {n})"
    if all(e.reward is not None for e in exs):
        by_group: dict[int, set[float]] = {}
        for e in exs:
            by_group.setdefault(e.group, set()).add(e.reward)
        if all(len(v) == 1 for v in by_group.values()):
            return f"all rewards equal within each group ({batch.n_groups} groups)"
    return f"every advantage is 0 ({n} rows)"


def skipped_step(trainer, batch, why: str, lr: float) -> dict:
    """Advance `trainer` past `batch` without a forward/backward or an optimizer update; its metrics."""
    exs = batch.examples
    from er.train.batching import loss_positions

    n_tokens = sum(max(end - start, 0) for start, end in map(loss_positions, exs))  # as a trained step counts
    trainer.step += 1
    trainer.samples_seen += len(exs)
    trainer.tokens_seen += n_tokens
    trainer.zero_signal_steps += 1
    if trainer.rank == 0:
        log(f"er update: warning: step {trainer.step} has zero signal: {why}; every advantage is 0, "
            "so the forward/backward was skipped and the weights are unchanged")
    rewards = [e.reward for e in exs if e.reward is not None]
    return {
        "step": trainer.step, "loss": 0.0, "pg_loss": 0.0, "kl": None, "entropy": None, "clip_frac": None,
        "clip_frac_low": None, "clip_frac_high": None, "dual_clip_frac": None, "is_capped_frac": None,
        "mode_switch_loss": None, "grad_norm": 0.0, "lr": lr, "samples": len(exs), "tokens": n_tokens,
        "padding_frac": None, "micro_batches": 0,
        "reward_mean": sum(rewards) / len(rewards) if rewards else None, "advantage_mean": 0.0,
        "completion_tokens_mean": sum(e.completion_len for e in exs) / len(exs), "checkpoint": None, "seconds": 0.0,
        "zero_signal": True,
    }


def check_run(steps: int, zero: int, trained_ever: int, stream=None) -> None:
    """Exit status 1 (ErError) when every one of this run's `steps` (> 0) had zero signal and no step
    since the base model was trained (`trained_ever` 0: a fresh run, or a resume of such a run).

    A resumed run whose policy has learnt before may meet a zero-signal step by chance (a step-wise
    loop runs one step per `er update`): that is warned about, not an error.
    """
    if steps and zero == steps and trained_ever == 0:
        if stream is not None:
            stream.close(ok=True)  # the metrics records say what happened: keep them (-o is committed)
        raise ErError(f"all {steps} step{'s' if steps != 1 else ''} had zero signal (every advantage 0): "
                      "the model was never trained. Check the pre-flight (base-model pass@G within L_T, "
                      "README): raise --max-tokens (L_T), use easier data, or start from a stronger model")
