"""Training: losses (PPO-clip GRPO/DAPO/Dr. GRPO, DRPO, SFT, mode switch), the micro-batched update step,
atomic checkpoints (`er.train.checkpoint`), distributed runs (DDP / FSDP2 under torchrun) and DLER's
update-selective merging (`er.train.merge`). Heavy imports (torch, transformers) live in the submodules."""
