"""Releases for the tests: the one `make build` stages (dist/release), variants of it that are other
builds, fresh builds of this checkout (tools/release.py, as `make release` runs it), running the
installer, and a file tree's state to compare before and after."""

from __future__ import annotations

import hashlib
import marshal
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.layouts import DIST, ROOT, needed

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


def install(
    release: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The release's install.sh with ``args``; its output in the failure's message."""
    proc = subprocess.run(
        [str(release / "install.sh"), *args],
        capture_output=True,
        text=True,
        env={"PATH": PATH, **(env or {})},
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


@dataclass
class Built:
    """A release built from a copy of this checkout: its dist/ and the files `make release` makes."""

    dist: Path
    tarball: Path
    image: Path
    daemonset: Path
    sums: Path


def checkout_copy(dest: Path) -> Path:
    """The files of this checkout (tracked, and new ones not ignored), as they are now, at ``dest``."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for rel in filter(None, (os.fsdecode(p) for p in listed)):
        src = ROOT / rel
        if src.is_file():  # a file deleted but not yet committed is listed too
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def commit_time() -> int:
    out = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def build_release(source: Path, epoch: int) -> Built:
    """`make build` and `make release`'s steps in ``source`` (a copy of the checkout), with this
    virtualenv's PyInstaller and SOURCE_DATE_EPOCH=``epoch``."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "PATH": f"{Path(sys.executable).parent}:{PATH}"}
    pyinstaller = Path(sys.executable).parent / "pyinstaller"
    steps = [
        [str(pyinstaller), "--noconfirm", "--clean", "--log-level", "WARN", "build.spec"],
        [sys.executable, "tools/release.py", "stage", "tarball", "image", "deploy", "sums"],
    ]
    for argv in steps:
        proc = subprocess.run(argv, cwd=source, env=env, capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} in {source}: {proc.returncode}\n{proc.stdout}{proc.stderr}")
    dist = source / "dist"
    return Built(
        dist,
        next(dist.glob("cni-macvlan-*-linux-*.tgz")),
        next(dist.glob("cni-macvlan-*-linux-*.oci.tar")),
        next(dist.glob("cni-macvlan-*-daemonset.yaml")),
        dist / "SHA256SUMS",
    )
