"""Locked, atomically replaced state files: the one primitive for node-local bookkeeping, and the
one rule for the directories they live in.

``write_atomic`` writes a temporary file in the same directory and renames it over the target, so a
reader (or a process killed mid-write) sees the old content or the new, never a mix. ``Locked`` holds
``flock(LOCK_EX)`` on a lock file for a block. Used by the lease store (``last_reserved_ip.<n>``,
its lock) and by the macvlan plugin's record of the parents it owns.

Root writes here, so nothing is trusted that someone else could have put there: ``check_private``
refuses a directory that is a symlink or writable by others; every file is opened with O_NOFOLLOW
(and O_NONBLOCK: a FIFO planted under a name can't stall us) and must be a regular file.
"""

from __future__ import annotations

import errno
import os
import stat
from fcntl import LOCK_EX, LOCK_UN, flock

MAX_READ = 1 << 20  # a state file is a few KiB; more than this is not one of ours


def check_private(path: str) -> None:
    """Refuse a store directory that is a symlink or that others may write to (OSError EPERM, its
    message naming the path and the fix): whoever can write there can plant or remove our files,
    and symlinks to files elsewhere."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise OSError(errno.EPERM, f"{path} is not a plain directory (a symlink): refusing to use it", path)
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(errno.ENOTDIR, f"{path} is not a directory", path)
    if st.st_mode & 0o002:
        raise OSError(errno.EPERM, f"{path} is writable by others: refusing to use it (chmod o-w)", path)


def open_regular(path: str, flags: int, mode: int = 0o600) -> int:
    """os.open that never follows a symlink, never blocks on a FIFO, and returns a regular file only
    (else OSError: ELOOP for a symlink, EISDIR for a directory, EINVAL for anything else)."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    st_mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(st_mode):
        os.close(fd)
        kind = errno.EISDIR if stat.S_ISDIR(st_mode) else errno.EINVAL
        raise OSError(kind, f"{path} is not a regular file", path)
    return fd


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
    """The file's content, or None when it does not exist; OSError when it is not a regular file
    (open_regular) or larger than MAX_READ (EFBIG)."""
    try:
        fd = open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 65536):
            size += len(chunk)
            if size > MAX_READ:
                raise OSError(errno.EFBIG, f"{path} is larger than a state file can be", path)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class Locked:
    """``with Locked(path):`` holds an exclusive flock on ``path`` (created 0600 if missing)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> Locked:
        self.fd = open_regular(self.path, os.O_RDONLY | os.O_CREAT, 0o600)
        try:
            flock(self.fd, LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        flock(self.fd, LOCK_UN)
        os.close(self.fd)
        self.fd = -1
