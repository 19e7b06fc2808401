"""The disk lease store, byte-compatible with upstream host-local in both directions.

Layout under ``<dataDir>/<network>/``:
  ``<ip>``                  one file per lease, content ``<containerID>\\r\\n<ifname>`` (no newline), 0600;
                            legacy files hold only the container ID; whitespace is tolerated on read
  ``last_reserved_ip.<n>``  the last address reserved in range set n
  ``lock``                  flock(LOCK_EX) while any operation runs (a wait of at most LOCK_WAIT s)

A lease file appears atomically with its content: it is written to a temporary file and hard-linked
to its address name, which fails with EEXIST like upstream's O_EXCL create, so no reader (nor a crash)
ever sees an empty or half-written lease. ``last_reserved_ip.<n>`` is replaced atomically
(cni.statefile.write_atomic).
"""

from __future__ import annotations

import os
import stat
from fcntl import LOCK_UN, flock

from cni import faults
from cni.ip import AddressError, format_ip, parse_ip
from cni.statefile import check_private, lock_exclusive, open_regular, write_atomic, write_new

from .store import Lease, Store, lease_content, parse_lease

LAST_RESERVED_PREFIX = "last_reserved_ip."
LOCK_NAME = "lock"
TMP_PREFIX = ".tmp-"
READ_SIZE = 65536


def _read_lease(path: str, regular: bool = False, dir_fd: int | None = None) -> bytes | None:
    """A store file's bytes; None if it is missing or not a regular file (never follows a symlink).
    ``regular``: the caller saw a regular file in the directory listing (no fstat needed; O_NOFOLLOW
    and O_NONBLOCK still hold if it was swapped meanwhile). ``dir_fd``: ``path`` is a name in it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not regular and not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        # whole: a long container ID must survive the round trip. A short read of a regular file is
        # its end, so a lease takes one read (ADD reads every lease of the network).
        chunk = os.read(fd, READ_SIZE)
        if len(chunk) < READ_SIZE:
            return chunk
        chunks = [chunk]
        while chunk := os.read(fd, READ_SIZE):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class DiskStore(Store):
    def __init__(self, data_dir: str, network: str) -> None:
        self.dir = self.where = os.path.join(data_dir, network)
        for path in (data_dir, self.dir):  # dataDir is held to the rule as a store directory, not as a parent
            check_private(path, create=0o755)
        self._lock_path = os.path.join(self.dir, LOCK_NAME)
        self._lock_fd = open_regular(self._lock_path, os.O_RDONLY | os.O_CREAT)

    def lock(self) -> None:
        lock_exclusive(self._lock_fd, self._lock_path)

    def unlock(self) -> None:
        flock(self._lock_fd, LOCK_UN)

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _write_tmp(self, content: str) -> str:
        tmp = os.path.join(self.dir, f"{TMP_PREFIX}{os.getpid()}")
        write_new(tmp, content.encode())
        return tmp

    def reserve(self, container_id: str, ifname: str, family: int, value: int, range_id: str) -> bool:
        path = os.path.join(self.dir, format_ip(family, value))
        tmp = self._write_tmp(lease_content(container_id, ifname))
        faults.step("lease-written")
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        faults.step("lease-reserved")
        try:
            self._write_last_reserved(range_id, format_ip(family, value))
        except BaseException:  # the caller can't release what it doesn't know it holds
            os.unlink(path)
            raise
        return True

    def _write_last_reserved(self, range_id: str, text: str) -> None:
        write_atomic(os.path.join(self.dir, LAST_RESERVED_PREFIX + range_id), text.encode())

    def last_reserved(self, range_id: str) -> tuple[int, int] | None:
        raw = _read_lease(os.path.join(self.dir, LAST_RESERVED_PREFIX + range_id))
        try:
            return parse_ip(raw.decode().strip()) if raw is not None else None
        except (AddressError, UnicodeDecodeError):
            return None  # unreadable: start at the beginning of the set

    def leases(self) -> list[Lease]:
        leases = []
        with os.scandir(self.dir) as entries:
            names = [e.name for e in entries if e.is_file(follow_symlinks=False)]
        dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in names:
                try:
                    family, value = parse_ip(name)
                except AddressError:
                    continue  # lock, last_reserved_ip.*, temporary files
                try:
                    raw = _read_lease(name, regular=True, dir_fd=dir_fd)
                except OSError:
                    continue  # swapped for something unreadable meanwhile
                if raw is None:
                    continue  # gone meanwhile (a symlink is never listed nor followed)
                cid, ifname = parse_lease(raw.decode("utf-8", errors="replace"))
                leases.append(Lease(family, value, cid, ifname))
        finally:
            os.close(dir_fd)
        return leases

    def release(self, family: int, value: int) -> None:
        try:
            os.unlink(os.path.join(self.dir, format_ip(family, value)))
        except FileNotFoundError:
            pass

    def probe(self) -> None:
        os.unlink(self._write_tmp("probe"))

    def tidy(self) -> None:
        """Temporary files are only ever written with the lock held: any seen now belong to a process
        killed mid-write (ours: ``.tmp-<pid>``; statefile's ``.<name>.tmp-<pid>``)."""
        for name in os.listdir(self.dir):
            if name.startswith(TMP_PREFIX) or (name.startswith(".") and ".tmp-" in name):
                try:
                    os.unlink(os.path.join(self.dir, name))
                except FileNotFoundError:
                    pass
