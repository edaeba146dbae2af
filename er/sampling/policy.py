"""Loading the policy for `er sample`, and following `DIR/latest` for the streaming loop (`--watch`).

`er update` writes checkpoints as `DIR/step-N/` (a Hugging Face save_pretrained directory, written
to a temp dir and renamed) and points `DIR/latest` at the newest with a relative symlink replaced
atomically. The watcher only ever follows `latest`: it resolves the link once per poll, and accepts
the target only when it is a directory named `step-N` holding `config.json` and
`model.safetensors` (or `model.safetensors.index.json`); a target that is not complete, or that
fails to load, is skipped and tried again at the next poll, and the old policy keeps sampling.
`policy.step` is N of the checkpoint directory's name (`step-N`), else null.

A `latest` that cannot name a checkpoint (a regular file or a directory instead of a symlink, a
symlink that dangles or loops, or one to something not named step-N, or to an incomplete step-N) is
ignored with a warning on stderr, once per state of the link: `er update` replaces it at its next
checkpoint, and a sampler that stopped on it would end a streaming run over a transient state.
A new checkpoint of another model (architecture, shapes or tokenizer: er.model_identity) stops
the command like any checkpoint that will not load: the sampler's tokenizer would garble it.
A checkpoint removed between the poll and its first load (`er update --keep-last` ran ahead) is
said to be so, and `latest` is taken again.
"""

from __future__ import annotations

import errno
import os
from typing import Any, Callable

from er.errors import ErError, UsageError
from er.io import log
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
        self._said: str | None = None  # the last warning about `latest`, said once
        self._base: tuple[str, Any] | None = None  # (directory, tokenizer) of the policy sampling first
        self._same: set[str] = set()  # realpaths already found to be of the first policy's model

    def target(self) -> str | None:
        link = os.path.join(self.directory, "latest")
        try:
            dest = os.readlink(link)
        except FileNotFoundError:
            return None  # no checkpoint yet
        except OSError:
            kind = "a directory" if os.path.isdir(link) else "a regular file" if os.path.isfile(link) else "not a symlink"
            return self._ignore(f"{link} is {kind}, not a symlink to a step-N checkpoint")
        path = os.path.normpath(os.path.join(self.directory, dest))
        try:
            os.stat(link)
        except OSError as exc:
            what = "loops" if exc.errno == errno.ELOOP else f"dangles ({dest} does not exist)"
            return self._ignore(f"{link} {what}")
        if checkpoint_step(path) is None:
            return self._ignore(f"{link} points at {dest}, not a step-N checkpoint")
        if not is_complete_checkpoint(path):
            if os.path.realpath(path) != self.current:
                self._ignore(f"{link} points at {dest}, which is not a complete checkpoint (no config.json "
                             "or safetensors weights)")
            return None
        self._said = None
        return path

    def _ignore(self, why: str) -> None:
        if why != self._said:
            self._said = why
            log(f"er sample: warning: --watch: {why}; ignored until er update points it at a new checkpoint")
        return None

    def poll(self) -> str | None:
        path = self.target()
        if path is None or os.path.realpath(path) == self.current:
            return None
        if self._identity(path) in self.failed:
            return None
        return path

    def baseline(self, path: str, tokenizer: Any) -> None:
        """The model the sampler opened first: every later checkpoint must be of the same model."""
        self._base = (path, tokenizer)

    def check_same_model(self, path: str) -> None:
        """ErError when checkpoint `path` is another model than the first (er.model_identity)."""
        from er.model_identity import model_difference

        real = os.path.realpath(path)
        if self._base is None or real in self._same:
            return
        why = model_difference(self._base[0], path, self._base[1])
        if why is not None:
            raise ErError(why)
        self._same.add(real)

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


def open_first(watcher: Watcher | None, model: str | None, open_policy: Callable[[str], Any]) -> tuple[str, Any]:
    """Open the policy to start from, `open_policy(path)`: DIR/latest's checkpoint if any, else `-m`.

    Returns (the name records carry, what `open_policy` returned). A checkpoint removed between the
    poll and its loading (`er update --keep-last` pruned it) is not reported as a bad model, nor as
    an unknown Hub name (`ckpt/step-4` is spelled like one, so it read as a network failure): the
    watcher says what happened and takes `latest` again.
    """
    while True:
        first = watcher.poll() if watcher is not None else None
        path = first or model
        if path is None:
            raise UsageError("-m/--model is required (or --watch DIR whose latest is a complete checkpoint)")
        name = os.path.join(watcher.directory, os.path.basename(first)) if first else path
        try:
            return name, open_policy(path)
        except Exception:  # whatever a loader raises for files that vanished under it
            if first is None or os.path.isdir(first):
                raise
            log(f"er sample: {name} was removed (er update --keep-last pruned it) before it could be loaded; "
                f"taking {os.path.join(watcher.directory, 'latest')} again")
