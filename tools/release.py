"""The release, made from a build (build.spec's dist/): `make build` stages it.

    tools/release.py stage     dist/release/: the release as it unpacks: the single-file plugins, the
                               fast layout (cni-macvlan/), install.sh, the zygote's unit, and a
                               SHA256SUMS of them all (install.sh checks every file it installs)

Rule of membership: turning a build into the files a release publishes; building is build.spec's.
The plugin names come from cni_macvlan/plugins.py.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's registry, never an installed one
from cni_macvlan.plugins import PLUGINS  # noqa: E402

TREE = "cni-macvlan"
UNIT = "cni-macvlan-zygote.service"


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("steps", nargs="+", choices=["stage"])
    p.add_argument("--dist", type=Path, default=ROOT / "dist", help="the build's output (default: dist/)")
    args = p.parse_args()
    dist = args.dist.resolve()
    for _ in args.steps:
        out = stage(dist)
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        print(f"release: {out} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
