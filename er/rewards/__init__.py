"""The reward catalog. `REWARDS.get(name)` returns a reward class (see `er.rewards.base`).

Built-in families are imported on first lookup, so `import er.rewards` stays cheap.
"""

from __future__ import annotations

from er.registry import Registry

# One module per reward family; each registers its classes on import.
BUILTIN_MODULES = (
    "er.rewards.correctness",
    "er.rewards.structure",
    "er.rewards.tldr",
    "er.rewards.long_short",
    "er.rewards.format_length",
    "er.rewards.longwriter",
    "er.rewards.ruler",
    "er.rewards.emotion",
    "er.rewards.dler",
    "er.rewards.grpo_lambda",
    "er.rewards.hapo",
    "er.rewards.hbpo",
    "er.rewards.crf",
    "er.rewards.baselines",
    "er.rewards.tail",
)

REWARDS: Registry = Registry("reward", builtins=BUILTIN_MODULES)


def trl_reward(name: str, **params):
    """`er` reward `name` as a TRL GRPOTrainer reward function (picklable); see `er.rewards.trl`.

    Extra keywords besides the reward's parameters: num_generations, max_completion_length,
    eos_token_id, timeout (seconds per answer check).
    """
    from er.rewards.trl import TrlReward

    return TrlReward(name, **params)
