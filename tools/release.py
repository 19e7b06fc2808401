"""The release, made from a build (build.spec's dist/): `make build` stages it, `make release` packs it.

    tools/release.py stage     dist/release/: the release as it unpacks: the single-file plugins, the
                               fast layout (cni-macvlan/), install.sh, the zygote's unit, and a
                               SHA256SUMS of them all (install.sh checks every file it installs)
    tools/release.py tarball   dist/cni-macvlan-<version>-linux-<arch>.tgz: dist/release/, flat (as
                               upstream's plugin tarballs: unpacked into /opt/cni/bin the single
                               files work as they are)
    tools/release.py image     dist/cni-macvlan-<version>-linux-<arch>.oci.tar: the OCI image (podman
                               build from deploy/Containerfile, FROM scratch, in a private storage
                               under build/ that is removed afterwards; no registry)
    tools/release.py deploy    dist/cni-macvlan-<version>-daemonset.yaml: deploy/daemonset.yaml with
                               the image's tag
    tools/release.py sums      dist/SHA256SUMS of the release's files

Rule of membership: turning a build into the files a release publishes; building is build.spec's.

Reproducible: two builds of the same commit give the same bytes. Every file is written in a fixed
order with fixed modes; archive members are dated SOURCE_DATE_EPOCH (the commit's time when unset),
owned by 0:0, sorted; gzip records no name and no date; the image is built with --timestamp.
The version comes from cni_macvlan/__init__.py, the plugin names from cni_macvlan/plugins.py.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's registry, never an installed one
from cni_macvlan.plugins import PLUGINS  # noqa: E402

TREE = "cni-macvlan"
UNIT = "cni-macvlan-zygote.service"
IMAGE = "localhost/cni-macvlan"
ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def version() -> str:
    text = (ROOT / "cni_macvlan" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    if not found:
        sys.exit("release: no __version__ in cni_macvlan/__init__.py")
    return found.group(1)


def arch() -> str:
    machine = platform.machine()
    return ARCHES.get(machine, machine)


def stem() -> str:
    return f"cni-macvlan-{version()}-linux-{arch()}"


def epoch() -> int:
    """SOURCE_DATE_EPOCH, else the time of this checkout's last commit."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    out = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True, text=True, check=False
    )
    if out.returncode != 0 or not out.stdout.strip():
        sys.exit("release: set SOURCE_DATE_EPOCH (no git history here to take the date from)")
    return int(out.stdout)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def files_under(root: Path) -> list[str]:
    """Every file under ``root`` (relative, sorted); a symlink or anything else is refused."""
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            sys.exit(f"release: {path} is not a plain file or directory")
        if path.is_file():
            out.append(path.relative_to(root).as_posix())
    return out


def _executable(path: Path) -> bool:
    return path.stat().st_mode & 0o100 != 0


def _copy(src: Path, dest: Path, executable: bool) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    dest.chmod(0o755 if executable else 0o644)


def stage(dist: Path) -> Path:
    """dist/release/, made under a temporary name and renamed into place."""
    release, tmp = dist / "release", dist / "release.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tree = dist / TREE
    for rel in files_under(tree):
        _copy(tree / rel, tmp / TREE / rel, _executable(tree / rel))
    for name in PLUGINS:
        _copy(dist / name, tmp / name, True)
    _copy(ROOT / "launcher" / "install.sh", tmp / "install.sh", True)
    _copy(ROOT / "launcher" / UNIT, tmp / UNIT, False)
    for d in [tmp, *(p for p in tmp.rglob("*") if p.is_dir())]:
        d.chmod(0o755)
    sums = "".join(f"{sha256(tmp / rel)}  {rel}\n" for rel in files_under(tmp))
    (tmp / "SHA256SUMS").write_text(sums)
    (tmp / "SHA256SUMS").chmod(0o644)
    shutil.rmtree(release, ignore_errors=True)
    tmp.rename(release)
    return release


def write_tar(root: Path, out: Path, when: int, compress: bool) -> None:
    """``root``'s directories and files as a tar (gzip'd with ``compress``): sorted, dated ``when``,
    owned by 0:0, modes as on disk; written under a temporary name, then renamed."""
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as raw:
        stream: io.BufferedIOBase = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=when, compresslevel=9) if compress else raw
        )
        with tarfile.open(fileobj=stream, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(root).as_posix()
                info = tarfile.TarInfo(rel + ("/" if path.is_dir() else ""))
                info.mtime = when
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = path.stat().st_mode & 0o7777
                if path.is_dir():
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                else:
                    info.size = path.stat().st_size
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
        if compress:
            stream.close()
    tmp.rename(out)


def tarball(dist: Path) -> Path:
    out = dist / f"{stem()}.tgz"
    write_tar(dist / "release", out, epoch(), compress=True)
    return out


def shared_libraries(paths: list[Path]) -> list[str]:
    """The shared libraries (and the dynamic loader) these programs and extension modules load, as
    ldd finds them on this machine."""
    found: set[str] = set()
    for path in paths:
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            words = line.split()
            if "=>" in words and len(words) > words.index("=>") + 1 and words[words.index("=>") + 1].startswith("/"):
                found.add(words[words.index("=>") + 1])
            elif words and words[0].startswith("/"):
                found.add(words[0])
    return sorted(found)


class Podman:
    """podman with a storage and configuration of its own under ``work`` (never the machine's)."""

    # what podman makes outside its storage (the blob cache in /var/lib/containers): removed again if
    # it was not there before
    GLOBAL = (Path("/var/lib/containers"),)

    def __init__(self, work: Path) -> None:
        self.work = work
        self.made = [p for p in self.GLOBAL if not p.exists()]
        for d in ("storage", "run", "tmp"):
            (work / d).mkdir(parents=True, exist_ok=True)
        (work / "containers.conf").write_text(
            f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = "{work}/tmp"\n'
        )
        (work / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{work}/storage"\nrunroot = "{work}/run"\n'
        )
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(work / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(work / "storage.conf"),
            "TMPDIR": str(work / "tmp"),
        }

    def __call__(self, *args: str) -> str:
        proc = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"release: podman {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def close(self) -> None:
        subprocess.run(["podman", "system", "reset", "-f"], env=self.env, capture_output=True, check=False)
        shutil.rmtree(self.work, ignore_errors=True)
        for path in self.made:
            shutil.rmtree(path, ignore_errors=True)


def image(dist: Path, work: Path) -> Path:
    """The OCI image: FROM scratch, the release's fast layout and installer under /release, and the
    C library and the shared libraries the launcher and its extension modules load."""
    release = dist / "release"
    shutil.rmtree(work, ignore_errors=True)
    context = work / "context"
    rootfs = context / "rootfs"
    for rel in files_under(release):
        if rel.startswith(TREE + "/") or rel in ("SHA256SUMS", UNIT):
            _copy(release / rel, rootfs / "release" / rel, _executable(release / rel))
    tree = release / TREE
    for lib in shared_libraries([tree / TREE, *sorted((tree / "lib").glob("*.so"))]):
        _copy(Path(lib).resolve(), rootfs / lib.lstrip("/"), True)
    for d in [rootfs, *(p for p in rootfs.rglob("*") if p.is_dir())]:
        d.chmod(0o755)
    shutil.copyfile(ROOT / "deploy" / "Containerfile", context / "Containerfile")
    podman = Podman(work / "podman")
    try:
        tag = f"{IMAGE}:{version()}"
        when = str(epoch())
        podman("build", "--timestamp", when, "--build-arg", f"VERSION={version()}", "-t", tag, str(context))
        oci = work / "oci"
        podman("save", "--format", "oci-dir", "-o", str(oci), tag)
        out = dist / f"{stem()}.oci.tar"
        write_tar(oci, out, int(when), compress=False)
    finally:
        podman.close()
        shutil.rmtree(work, ignore_errors=True)
    return out


def deploy(dist: Path) -> Path:
    out = dist / f"cni-macvlan-{version()}-daemonset.yaml"
    out.write_text(render_daemonset())
    return out


def render_daemonset() -> str:
    """deploy/daemonset.yaml with this release's image."""
    return (ROOT / "deploy" / "daemonset.yaml").read_text().replace("@VERSION@", version())


def sums(dist: Path) -> Path:
    names = [f"{stem()}.tgz", f"{stem()}.oci.tar", f"cni-macvlan-{version()}-daemonset.yaml"]
    out = dist / "SHA256SUMS"
    out.write_text("".join(f"{sha256(dist / n)}  {n}\n" for n in names if (dist / n).exists()))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("steps", nargs="+", choices=["stage", "tarball", "image", "deploy", "sums"])
    p.add_argument("--dist", type=Path, default=ROOT / "dist", help="the build's output (default: dist/)")
    p.add_argument("--work", type=Path, default=ROOT / "build" / "image", help="the image's scratch directory")
    args = p.parse_args()
    dist = args.dist.resolve()
    for step in args.steps:
        if step == "stage":
            out = stage(dist)
        elif step == "tarball":
            out = tarball(dist)
        elif step == "image":
            out = image(dist, args.work.resolve())
        elif step == "deploy":
            out = deploy(dist)
        else:
            out = sums(dist)
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) if out.is_dir() else out.stat().st_size
        shown = out.relative_to(dist.parent) if out.is_relative_to(dist.parent) else out
        print(f"release: {shown} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
