"""One writer at a time: an exclusive lock on a checkpoint directory or a state file.

`er update --out DIR` and `er score --reward hapo --state FILE` rewrite what they own (checkpoints,
`latest`, the trainer state; the whole history file) and assume nobody else does. Two of them at once
silently overwrite each other, so each takes `WriterLock(target)` first and holds it until it ends:

    DIR/.er-writer.lock          for a directory (inside it: it travels and is removed with it)
    dirname/.NAME.er-writer.lock for a file NAME (beside it: the file itself is replaced by renames)

The lock is `flock(LOCK_EX | LOCK_NB)` on that file, which the kernel releases when the holder's
descriptor closes, so it dies with its process: a writer killed with SIGKILL (or a crashed machine,
see below) leaves no lock behind, only the file, which the next writer takes over. The file holds
one line naming the holder (`pid PID on HOST since TIME`), written after the lock is taken; a second
writer is refused with that line (`LockedError`, exit 2) instead of waiting. The file is never
deleted while in use: a writer that unlinked it could let a third process lock a fresh file while
a second one still holds the old one.

What is assumed of the file system:
- local file systems (ext4, xfs, btrfs, tmpfs, ...): flock is exact, between processes and
  between two opens in one process.
- NFS (v3 with lockd, v4): Linux clients carry flock as a whole-file POSIX lock to the server, so
  writers on different machines exclude each other; a crashed client's lock is freed by the
  server when its lease ends (NFSv4: about 90 s). Two opens in one process do not exclude each
  other there (POSIX semantics). Mounted with `local_lock=flock` or `local_lock=all`, the lock
  only excludes writers on the same machine.
- a file system that refuses locks (ENOLCK, EOPNOTSUPP: e.g. Lustre mounted without `flock`):
  the command warns once on stderr and runs without the guarantee rather than not at all.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time

from er.errors import UsageError
from er.io import log

SUFFIX = ".er-writer.lock"
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.EBADF}


class LockedError(UsageError):
    """Another process holds the writer lock (exit 2)."""


def lock_path(target: str) -> str:
    """Where the lock of `target` lives (see the module doc); symlinks resolved, so one file has one lock."""
    real = os.path.realpath(target)
    if os.path.isdir(real):
        return os.path.join(real, SUFFIX)
    return os.path.join(os.path.dirname(real), f".{os.path.basename(real)}{SUFFIX}")


def holder(path: str) -> str:
    """The holder line of lock file `path` ('' when unreadable or not yet written)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().strip()
    except OSError:
        return ""


class WriterLock:
    """An exclusive, non-blocking writer lock on `target` (a directory that exists, or a file path).

    `flag` and `what` make the refusal read like the command's own usage errors, e.g.
    `--out ckpt: another er update is writing this checkpoint directory (pid 4242 on node7 since
    2026-01-01T12:00:00Z); one writer at a time`. Use as a context manager or call `release()`.
    """

    def __init__(self, target: str, *, flag: str, what: str, command: str):
        self.path = lock_path(target)
        self.fd: int | None = None
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise UsageError(f"{flag} {target}: cannot write here ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            who = holder(self.path) or "a process that has not yet written its name"
            mine = who.startswith(f"pid {os.getpid()} on {socket.gethostname()} ")
            by = "this command already writes it" if mine else f"another {command} is writing {what} ({who})"
            raise LockedError(f"{flag} {target}: {by}; one writer at a time") from None
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                os.close(fd)
                raise UsageError(f"{flag} {target}: cannot lock {self.path} ({exc.strerror or exc})") from None
            log(f"{command}: warning: {flag} {target}: the file system refuses locks ({exc.strerror}); "
                "running without the one-writer guarantee")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode(), 0)
        except OSError:
            pass  # the name is for the message of a refused writer; the lock itself holds
        self.fd = fd

    def release(self) -> None:
        """Give the lock up (closing the descriptor releases it); the file stays (see the module doc)."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            os.close(fd)

    def __enter__(self) -> "WriterLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:  # a lock object dropped without release() still frees the lock
        try:
            self.release()
        except Exception:  # at interpreter exit; the process's end frees it anyway
            pass
