"""One generic registry for rewards and estimators (and anything else with named plug-ins).

    REWARDS = Registry("reward")

    @REWARDS.register("dler")
    class Dler: ...

`get(name)` returns the class or raises UnknownNameError with did-you-mean suggestions; a name
containing ':' after a dotted module (`pkg.mod:attr`) is imported on demand, so user code is only
ever imported when the user names it explicitly.
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, TypeVar

from er.errors import UnknownNameError, UsageError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, *, builtins: tuple[str, ...] = ()):
        self.kind = kind
        self._items: dict[str, T] = {}
        # Modules holding the built-ins; imported on first lookup so that importing the registry is cheap.
        self._builtins = builtins
        self._loaded = not builtins

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def _load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._builtins:
                importlib.import_module(module)

    def get(self, name: str) -> T:
        self._load_builtins()
        if name in self._items:
            return self._items[name]
        if ":" in name:
            return self._import_dotted(name)  # only ever a name the user typed: `module:attr`
        raise UnknownNameError(self.kind, name, self.names())

    def _import_dotted(self, spec: str) -> T:
        module_name, _, attr = spec.partition(":")
        if module_name in self._items:
            raise UsageError(f"{self.kind} {spec!r}: parameters are key=value, e.g. {module_name}:key=1")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UsageError(f"cannot import {self.kind} module {module_name!r}: {exc}") from exc
        try:
            obj = getattr(module, attr)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no {self.kind} {attr!r}") from None
        return obj

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        self._load_builtins()
        return sorted(self._items.items())
