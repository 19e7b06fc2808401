"""A file system to fill up or make read-only (a tmpfs the `fs` fixture mounts)."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path


def fill(mnt: Path, leave_pages: int = 0) -> None:
    """Write a file until the file system at ``mnt`` is full, then give back ``leave_pages`` pages."""
    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096) == 4096:
            pass
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)
    if leave_pages:
        os.truncate(filler, max(0, filler.stat().st_size - leave_pages * 4096))


def read_only(mnt: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
