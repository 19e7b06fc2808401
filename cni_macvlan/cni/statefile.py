"""Locked, atomically replaced state files: the one primitive for node-local bookkeeping, and the
one rule for the directories they live in.

``write_atomic`` writes a temporary file in the same directory and renames it over the target, so a
reader (or a process killed mid-write) sees the old content or the new, never a mix. ``Locked`` holds
``flock(LOCK_EX)`` on a lock file for a block. Used by the lease store (``last_reserved_ip.<n>``,
its lock) and by the macvlan plugin's record of the parents it owns.

Root writes here, so nothing is trusted that someone else could have put there: ``check_private``
refuses a directory that anyone but root could change (itself or a directory above it); every file
is opened with O_NOFOLLOW and O_NONBLOCK (a FIFO planted under a name can't stall us) and must be a
regular file. The one rule for the lease store's directories, stateDir and the zygote's socket.
"""

from __future__ import annotations

import errno
import os
import stat
from fcntl import LOCK_EX, LOCK_UN, flock

MAX_READ = 1 << 20  # a state file is a few KiB; more than this is not one of ours


def check_private(path: str, create: int = 0, follow: bool = False) -> None:
    """Refuse (OSError, its message naming the path and the fix) a directory that someone other than
    us (root) could change, and so plant, swap or remove our files in: ``path`` itself must be a
    directory, not a symlink, owned by us and writable by neither its group nor others; each
    directory above it must be ours and not writable by group or others unless sticky (as /tmp is);
    a symlink above it (as /var/run) is followed if it is ours. With ``create`` (a mode), missing
    directories are made with that mode, whatever the umask, after the ones above them passed.
    With ``follow``, ``path`` itself may be a symlink of ours too (an installer's PREFIX, such as
    /opt/cni/bin -> /usr/lib/cni): it is followed, and what it leads to must pass as ``path``."""
    me = os.geteuid()
    if not path.startswith("/"):
        raise OSError(errno.EINVAL, f"{path} is not an absolute path", path)
    pending = [p for p in path.split("/") if p]
    current, hops = "/", 0
    while pending:
        name = pending.pop(0)
        if name == ".":
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        here = os.path.join(current, name)
        last = not pending
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(here, create)
            except FileExistsError:
                pass  # made meanwhile: checked below like any other
            st = os.lstat(here)
            if st.st_uid == me and stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) != create:
                os.chmod(here, create)
                st = os.lstat(here)
        if stat.S_ISLNK(st.st_mode):
            if last and not follow:
                raise OSError(errno.EPERM, f"{here} is not a plain directory (a symlink): refusing to use it", here)
            if st.st_uid != me:
                raise OSError(errno.EPERM, f"{here} is a symlink of uid {st.st_uid}: refusing to follow it", here)
            hops += 1
            if hops > 40:
                raise OSError(errno.ELOOP, f"{here}: too many levels of symbolic links", here)
            target = os.readlink(here)
            pending = [p for p in target.split("/") if p] + pending
            if target.startswith("/"):
                current = "/"
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, f"{here} is not a directory", here)
        if st.st_uid != me:
            raise OSError(errno.EPERM, f"{here} is owned by uid {st.st_uid}: refusing to use it (chown root)", here)
        shared = not last and st.st_mode & stat.S_ISVTX  # a sticky directory: others can't touch ours in it
        if st.st_mode & 0o002 and not shared:
            raise OSError(errno.EPERM, f"{here} is writable by others: refusing to use it (chmod o-w)", here)
        if st.st_mode & 0o020 and not shared:
            raise OSError(errno.EPERM, f"{here} is writable by its group: refusing to use it (chmod g-w)", here)
        current = here


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
    fd = open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
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
