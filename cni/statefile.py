"""Locked, atomically replaced state files: the one primitive for node-local bookkeeping, and the
one rule for the directories they live in.

``write_atomic`` writes a temporary file in the same directory and renames it over the target, so a
reader (or a process killed mid-write) sees the old content or the new, never a mix. ``Locked`` holds
``flock(LOCK_EX)`` on a lock file for a block. Used by the lease store (``last_reserved_ip.<n>``,
its lock) and by the macvlan plugin's record of the parents it owns.

Every lock wait is bounded (``lock_exclusive``): a holder that stops (a plugin stuck in the kernel,
one stopped by a debugger) makes a waiter fail with TimeoutError after LOCK_WAIT seconds, which the
plugins report as code 11 (try again later) naming the lock file, instead of stalling the runtime.

Root writes here, so nothing is trusted that someone else could have put there: ``check_private``
refuses a directory that anyone but root could change (itself or a directory above it); every file
is opened with O_NOFOLLOW and O_NONBLOCK (a FIFO planted under a name can't stall us) and must be a
regular file. The one rule for the lease store's directories, stateDir and the zygote's socket.
"""

from __future__ import annotations

import errno
import os
import stat
from fcntl import LOCK_EX, LOCK_NB, LOCK_UN, flock

MAX_READ = 1 << 20  # a state file is a few KiB; more than this is not one of ours
# Seconds a plugin waits for a lock: held for milliseconds by each ADD or DEL, so only a stuck holder
# makes anyone wait this long; well inside the runtime's own deadline (kubelet's is 2 min).
LOCK_WAIT = 60.0


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
        sync_dir(directory or ".")


def sync_dir(path: str) -> None:
    """Make the directory's entries (a rename, a new name) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def _expired(signum: int, frame: object) -> None:
    raise TimeoutError(errno.ETIMEDOUT, "timed out")


def _held_too_long(path: str, seconds: float) -> TimeoutError:
    return TimeoutError(
        errno.ETIMEDOUT, f"held by another process for {seconds:g} s (find it with 'fuser -v {path}')", path
    )


def lock_exclusive(fd: int, path: str, timeout: float | None = None) -> None:
    """flock(LOCK_EX) on ``fd`` (the lock file ``path``), waiting at most ``timeout`` seconds
    (LOCK_WAIT by default); then TimeoutError naming ``path``. Free, it costs one flock; held, the
    wait is the kernel's (woken when the holder lets go), cut short by a one-shot SIGALRM. The
    plugins set no other alarm and run no other thread; in a process that has an alarm running (the
    tests' per-test timeout), that alarm bounds the wait and is left alone, and off the main thread
    no alarm can be set: there, a plain wait."""
    try:
        flock(fd, LOCK_EX | LOCK_NB)
        return
    except BlockingIOError:
        pass
    import signal

    wait = max(LOCK_WAIT if timeout is None else timeout, 0.001)  # 0 would disarm the alarm
    if signal.getitimer(signal.ITIMER_REAL)[0] > 0:  # someone else's alarm
        flock(fd, LOCK_EX)
        return
    try:
        previous = signal.signal(signal.SIGALRM, _expired)
    except ValueError:  # not the main thread
        flock(fd, LOCK_EX)
        return
    try:
        signal.setitimer(signal.ITIMER_REAL, wait)
        flock(fd, LOCK_EX)
        signal.setitimer(signal.ITIMER_REAL, 0)
    except TimeoutError:
        flock(fd, LOCK_UN)  # had the alarm come just after the lock was taken
        raise _held_too_long(path, wait) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Locked:
    """``with Locked(path):`` holds an exclusive flock on ``path`` (created 0600 if missing), waiting
    at most ``timeout`` seconds for it (lock_exclusive). The lock is on the file ``path`` names when
    the lock is taken: one removed or replaced while we waited (an uninstall removes its lock file) is
    opened again, so two holders never lock two different files of one name."""

    def __init__(self, path: str, timeout: float | None = None) -> None:
        self.path = path
        self.timeout = timeout
        self.fd = -1

    def __enter__(self) -> Locked:
        import time

        wait = LOCK_WAIT if self.timeout is None else self.timeout
        deadline = time.monotonic() + wait
        while True:
            self.fd = open_regular(self.path, os.O_RDONLY | os.O_CREAT, 0o600)
            try:
                try:
                    lock_exclusive(self.fd, self.path, max(deadline - time.monotonic(), 0.001))
                except TimeoutError:
                    raise _held_too_long(self.path, wait) from None
                held = os.fstat(self.fd)
                try:
                    now = os.lstat(self.path)
                except FileNotFoundError:
                    now = None
                if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                    return self
            except BaseException:
                os.close(self.fd)
                self.fd = -1
                raise
            os.close(self.fd)  # the name now leads elsewhere (or nowhere): lock what it names now
            self.fd = -1

    def __exit__(self, *exc: object) -> None:
        flock(self.fd, LOCK_UN)
        os.close(self.fd)
        self.fd = -1
