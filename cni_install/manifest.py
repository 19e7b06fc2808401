"""LIBDIR/installed.json, the manifest: every path an install made and what each held, so that the
next install and --uninstall act on exactly that. It is trusted only when it is root's alone and
names nothing but what an install of ours makes."""

from __future__ import annotations

import os

from cni import jsonio, statefile
from cni_install.files import Refused, within
from cni_install.node import Node
from cni_install.release import UNIT
from cni_macvlan.plugins import PLUGINS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MANIFEST = "installed.json"


def read_manifest(lib: str, node: Node) -> dict[str, Any] | None:
    """LIBDIR's manifest, None when there is none; Refused when it is not one we wrote: a file of
    root's that no one else can change, naming only what an install of ours makes (its plugin names
    in its PREFIX, builds by name, the unit, the directories above them)."""
    path = os.path.join(lib, MANIFEST)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Refused(f"{path}: {e.strerror}") from None
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise Refused(f"{path} is not root's alone (owner {st.st_uid}, mode {st.st_mode & 0o777:o}): refusing it")
    try:
        data = statefile.read(path)
    except OSError as e:
        raise Refused(f"{path}: {e.strerror}") from None
    try:
        manifest = jsonio.loads(data or b"")
    except jsonio.DecodeError:
        manifest = None
    problem = _manifest_problem(manifest, node)
    if problem:
        raise Refused(f"{path} is damaged ({problem}): look at it, then remove it and what it lists by hand")
    assert isinstance(manifest, dict)
    return manifest


def _manifest_problem(m: Any, node: Node) -> str:
    """What makes ``m`` other than a manifest we write, or ""."""
    if not isinstance(m, dict) or m.get("format") != 1:
        return "not a manifest of format 1"
    prefix = m.get("prefix")
    if not _clean_path(prefix) or m.get("libdir") != node.libdir:
        return "prefix or libdir"
    plugins = m.get("plugins")
    if not isinstance(plugins, dict) or not all(
        isinstance(path, str) and os.path.dirname(path) == prefix and os.path.basename(path) in PLUGINS and _entry(was)
        for path, was in plugins.items()
    ):
        return "plugins"
    builds = m.get("builds")
    if not isinstance(builds, list) or not all(isinstance(b, str) and _build_name(b) for b in builds):
        return "builds"
    unit = m.get("unit")
    if unit is not None and not (
        isinstance(unit, dict) and _clean_path(unit.get("path")) and unit["path"].endswith("/" + UNIT) and _entry(unit)
    ):
        return "unit"
    unitdir = m.get("unitdir")
    if not _clean_path(unitdir):
        return "unitdir"
    tops = [prefix, node.libdir, unitdir, *([os.path.dirname(unit["path"])] if unit else [])]
    made = m.get("made")
    if not isinstance(made, list) or not all(_clean_path(d) and any(within(t, d) for t in tops) for d in made):
        return "made"
    replaced = m.get("replaced", {})
    if not isinstance(replaced, dict) or not all(
        (path in plugins or (unit and path == unit["path"]))
        and isinstance(was, dict)
        and was.get("backup") == os.path.basename(path)
        and _entry(was)
        for path, was in replaced.items()
    ):
        return "replaced"
    return ""


def _clean_path(path: Any) -> bool:
    return isinstance(path, str) and path.startswith("/") and os.path.normpath(path) == path


def _entry(was: Any) -> bool:
    if not isinstance(was, dict):
        return False
    if "link" in was:
        return isinstance(was["link"], str)
    digest = was.get("sha256")
    return isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def _build_name(name: str) -> bool:
    """<version>-<12 hex of the identity>, and nothing a path could be made of."""
    version, _, ident = name.rpartition("-")
    return (
        len(ident) == 12
        and all(c in "0123456789abcdef" for c in ident)
        and bool(version)
        and all(c.isalnum() or c in "._+~" for c in version)
    )


def write_manifest(lib: str, manifest: dict[str, Any]) -> None:
    statefile.write_atomic(os.path.join(lib, MANIFEST), jsonio.dumps(manifest).encode() + b"\n", fsync=True, mode=0o644)
