"""Files as the installer reads, writes and links them. Writing is cni/statefile's (one atomic write
for the project), with the modes given exactly, whatever the umask; a link is replaced the same
way: a new one under a temporary name, renamed over the old."""

from __future__ import annotations

import os

from cni import statefile

CHUNK = 1 << 20


class Refused(Exception):
    """Nothing was changed; the message says why and what to do."""


def say(line: str) -> None:
    print(f"cni-macvlan install: {line}", flush=True)


def hexdigest(data: bytes) -> str:
    """The SHA-256 of ``data``, in hex."""
    try:
        from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]  # 3.12 and later
    except ImportError:
        from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    return str(sha256(data).hexdigest())


def read(path: str) -> bytes:
    """A regular file's content (not through a symlink; of any size, unlike a state file's)."""
    fd = statefile.open_regular(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def digest(path: str) -> str | None:
    """The SHA-256 of a regular file (not through a symlink), None when it is anything else."""
    try:
        data = read(path)
    except OSError:
        return None
    return hexdigest(data)


def write_new(path: str, data: bytes, mode: int) -> None:
    """A new file in a directory of ours, whole and synced, else none."""
    old = os.umask(0)  # the mode as given
    try:
        statefile.write_new(path, data, fsync=True, mode=mode)
    finally:
        os.umask(old)


def replace_file(path: str, data: bytes, mode: int) -> None:
    """``path`` holds ``data`` afterwards, the old content until then (statefile.write_atomic)."""
    old = os.umask(0)
    try:
        statefile.write_atomic(path, data, fsync=True, mode=mode)
    finally:
        os.umask(old)


def replace_link(path: str, target: str) -> None:
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    unlink(tmp)
    os.symlink(target, tmp)
    try:
        os.rename(tmp, path)  # a new name for the link, atomically: never a moment without one
    except BaseException:
        unlink(tmp)
        raise
    statefile.sync_dir(os.path.dirname(path))


def unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass  # not empty (someone else's files), or gone


def link_target(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def still_ours(here: str, was: dict[str, str]) -> bool:
    """Does ``here`` hold what a manifest entry says we put there (a link's target, a file's digest)?"""
    if "link" in was:
        return link_target(here) == was["link"]
    return digest(here) == was.get("sha256")


def within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")
