"""Locked, atomically replaced state files: the one primitive for node-local bookkeeping.

``write_atomic`` writes a temporary file in the same directory and renames it over the target, so a
reader (or a process killed mid-write) sees the old content or the new, never a mix. ``Locked`` holds
``flock(LOCK_EX)`` on a lock file for a block. Used by the lease store's ``last_reserved_ip.<n>`` and by
the macvlan plugin's record of the parents it owns.
"""

from __future__ import annotations

import os
from fcntl import LOCK_EX, LOCK_UN, flock


def write_new(path: str, data: bytes, fsync: bool = False, mode: int = 0o600) -> None:
    """Create (or truncate) ``path`` and write ``data`` whole; on any failure (disk full, read-only)
    the file is removed again, so none is left half-written. Never follows a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _remove(path)
        raise


def write_atomic(path: str, data: bytes, fsync: bool = False, mode: int = 0o600) -> None:
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.tmp-{os.getpid()}")
    write_new(tmp, data, fsync, mode)
    try:
        os.rename(tmp, path)
    except BaseException:  # leave no temporary behind
        _remove(tmp)
        raise
    if fsync:
        dfd = os.open(directory or ".", os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def read(path: str) -> bytes | None:
    """The file's content, or None when it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


class Locked:
    """``with Locked(path):`` holds an exclusive flock on ``path`` (created 0600 if missing)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> Locked:
        self.fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        flock(self.fd, LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        flock(self.fd, LOCK_UN)
        os.close(self.fd)
        self.fd = -1
