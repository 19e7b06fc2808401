"""Whom the zygote serves: a root peer (SO_PEERCRED) that may do all the zygote may. A child of the
zygote has the zygote's capabilities, no_new_privs, seccomp, user namespace and security label, so
a caller that may do less is declined and runs its plugin itself (_cni_zygote.py, "Trust")."""

import os
import socket
import struct


def peer_uid(conn: socket.socket) -> int:
    _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return int(uid)


def _read_proc(path: str) -> bytes:
    """A /proc file in one read: os.open and os.read, not open()'s buffered file (its fstat, ioctl and
    lseeks are a third of the per-request trust check's cost)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        return os.read(fd, 16384)
    finally:
        os.close(fd)


STATUS_KEYS = (b"CapEff", b"CapPrm", b"CapBnd", b"NoNewPrivs", b"Seccomp")


def _status(pid: int | str) -> dict[str, str]:
    """The fields of /proc/<pid>/status that say what a process may do."""
    fields = {}
    for line in _read_proc(f"/proc/{pid}/status").split(b"\n"):
        key, _, value = line.partition(b":")
        if key in STATUS_KEYS:
            fields[key.decode()] = value.strip().decode(errors="replace")
    return fields


def _label(pid: int | str) -> str:
    try:
        return _read_proc(f"/proc/{pid}/attr/current").decode(errors="replace").strip("\0\n ")
    except OSError:
        return ""


class Privilege:
    """What a process may do: its capabilities (effective, permitted, bounding), no_new_privs,
    seccomp, user namespace and security label. A child of the zygote has the zygote's."""

    def __init__(self, pid: int | str) -> None:
        status = _status(pid)
        self.caps = [int(status.get(k, "0"), 16) for k in ("CapEff", "CapPrm", "CapBnd")]
        self.no_new_privs = status.get("NoNewPrivs", "0") != "0"
        self.seccomp = status.get("Seccomp", "0") != "0"
        st = os.stat(f"/proc/{pid}/ns/user")
        self.userns = (st.st_dev, st.st_ino)
        self.label = _label(pid)

    def covers(self, other: "Privilege") -> bool:
        """May a process with this privilege do everything ``other`` may?"""
        return (
            all(mine & theirs == theirs for mine, theirs in zip(self.caps, other.caps, strict=True))
            and (other.no_new_privs or not self.no_new_privs)
            and (other.seccomp or not self.seccomp)
            and self.userns == other.userns
            and self.label == other.label
        )
