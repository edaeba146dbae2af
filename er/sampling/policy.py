"""Loading the policy for `er sample`, and following `DIR/latest` for the streaming loop (`--watch`).

`er update` writes checkpoints as `DIR/step-N/` (a Hugging Face save_pretrained directory, written
to a temp dir and renamed) and points `DIR/latest` at the newest with a relative symlink replaced
atomically. The watcher only ever follows `latest`: it resolves the link once per poll, and accepts
the target only when it is a directory named `step-N` holding `config.json` and
`model.safetensors` (or `model.safetensors.index.json`); a target that is not complete, or that
fails to load, is skipped and tried again at the next poll, and the old policy keeps sampling.
`policy.step` is N of the checkpoint directory's name (`step-N`), else null.
"""

from __future__ import annotations

import os

from er.errors import UsageError
from er.train.checkpoint import checkpoint_step


def is_complete_checkpoint(path: str) -> bool:
    from er.train.lora import is_complete_adapter

    if is_complete_adapter(path):  # `er update --lora`'s step-N: a peft adapter directory
        return True
    return os.path.isfile(os.path.join(path, "config.json")) and (
        os.path.isfile(os.path.join(path, "model.safetensors"))
        or os.path.isfile(os.path.join(path, "model.safetensors.index.json")))


class Watcher:
    """Follows DIR/latest; `poll()` returns a new complete checkpoint directory once, else None."""

    def __init__(self, directory: str):
        if not os.path.isdir(directory):
            raise UsageError(f"--watch {directory}: no such directory")
        self.directory = directory
        self.current: str | None = None  # realpath of the checkpoint in use
        self.failed: set[tuple[str, int]] = set()  # (realpath, mtime) of checkpoints that would not load

    def target(self) -> str | None:
        link = os.path.join(self.directory, "latest")
        try:
            dest = os.readlink(link)
        except OSError:
            return None
        path = os.path.normpath(os.path.join(self.directory, dest))
        return path if checkpoint_step(path) is not None else None

    def poll(self) -> str | None:
        path = self.target()
        if path is None or os.path.realpath(path) == self.current:
            return None
        if not is_complete_checkpoint(path) or self._identity(path) in self.failed:
            return None
        return path

    def accepted(self, path: str) -> None:
        self.current = os.path.realpath(path)

    def rejected(self, path: str) -> None:
        """`path` would not load: skip it until `latest` moves on or the checkpoint is rewritten.

        Retrying each chunk would reopen the engine (for vLLM, twice) on every chunk of the stream.
        """
        self.failed.add(self._identity(path))

    @staticmethod
    def _identity(path: str) -> tuple[str, int]:
        try:
            return os.path.realpath(path), os.stat(path).st_mtime_ns
        except OSError:
            return os.path.realpath(path), 0
