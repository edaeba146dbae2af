"""The estimator catalog. `ESTIMATORS.get(name)` returns an estimator class (see `er.advantages.base`)."""

from __future__ import annotations

from er.registry import Registry

BUILTIN_MODULES = (
    "er.advantages.group",
    "er.advantages.batch",
    "er.advantages.drpo",
    "er.advantages.hbpo",
)

ESTIMATORS: Registry = Registry("estimator", builtins=BUILTIN_MODULES)
