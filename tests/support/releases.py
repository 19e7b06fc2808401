"""Releases for the tests: the one `make build` stages (dist/release), variants of it that are other
builds, running the installer, and a file tree's state to compare before and after."""

from __future__ import annotations

import hashlib
import marshal
import os
import shutil
import stat
import subprocess
from pathlib import Path

from tests.support.layouts import DIST, needed

PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def staged() -> Path:
    """dist/release: the release as its tarball unpacks."""
    return needed(DIST / "release" / "install.sh", "run `make build`").parent


def identity(release: Path) -> str:
    """A release's build identity (launcher/_cni_boot.py: the bundle's hash)."""
    return hashlib.sha256((release / "cni-macvlan" / "lib" / "_cni_modules.bin").read_bytes()).hexdigest()[:12]


def variant(release: Path, dest: Path, tag: str) -> Path:
    """A copy of ``release`` that is another build: its bundle holds one more module (never
    imported), so its identity differs and its plugins work the same. Its SHA256SUMS is remade."""
    shutil.copytree(release, dest, symlinks=True)
    bundle = dest / "cni-macvlan" / "lib" / "_cni_modules.bin"
    orders, modules, digest = marshal.loads(bundle.read_bytes())
    modules[f"_cni_test_{tag}"] = (False, marshal.dumps(compile(f"TAG = {tag!r}", tag, "exec")))
    bundle.write_bytes(marshal.dumps((orders, modules, digest)))
    sums = []
    for line in (dest / "SHA256SUMS").read_text().splitlines():
        path = line.split("  ", 1)[1]
        sums.append(f"{hashlib.sha256((dest / path).read_bytes()).hexdigest()}  {path}\n")
    (dest / "SHA256SUMS").write_text("".join(sums))
    return dest


def install(release: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The release's install.sh with ``args``; its output in the failure's message."""
    proc = subprocess.run(
        [str(release / "install.sh"), *args],
        capture_output=True,
        text=True,
        env={"PATH": PATH},
        timeout=120,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"install.sh {' '.join(args)}: {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc


def snapshot(root: Path) -> dict[str, tuple[str, int, int, str]]:
    """Every path under ``root`` (itself too): kind, mode, owner, and a link's target or a file's hash."""
    out = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            kind, what = "link", os.readlink(path)
        elif stat.S_ISDIR(st.st_mode):
            kind, what = "dir", ""
        else:
            kind, what = "file", hashlib.sha256(path.read_bytes()).hexdigest()
        out[path.relative_to(root).as_posix()] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, what)
    return out
