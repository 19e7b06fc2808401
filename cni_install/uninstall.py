"""Uninstall: remove what LIBDIR's manifest lists, where it is still what we installed, and put
back what --replace replaced."""

from __future__ import annotations

import os
import shutil

from cni import statefile
from cni_install.files import Refused, link_target, rmdir, say, still_ours, unlink
from cni_install.manifest import MANIFEST, read_manifest
from cni_install.node import Node, drop_unit, in_use, runs, zygote_pid
from cni_install.release import TREE


def uninstall(node: Node, socket_path: str) -> None:
    lib = node.here(node.libdir)
    if not node.check(node.libdir, "--libdir", create=False):
        raise Refused(f"nothing to uninstall: no {node.libdir}")
    manifest = read_manifest(lib, node)
    if manifest is None:
        raise Refused(f"nothing to uninstall: no {node.libdir}/{MANIFEST}")
    for path, what in (
        (manifest["prefix"], "the manifest's prefix"),
        *([(os.path.dirname(manifest["unit"]["path"]), "the manifest's unit directory")] if manifest["unit"] else []),
    ):
        node.check(path, what, create=False)  # nothing is removed where others could have put things
    with statefile.Locked(os.path.join(lib, ".lock")):
        drop_unit(node, manifest["unit"])
        replaced = manifest.get("replaced", {})
        for path, was in manifest["plugins"].items():
            here = node.here(path)
            if still_ours(here, was):
                unlink(here)
                say(f"removed {path}")
            elif os.path.lexists(here):
                say(f"left {path}: it is no longer what we installed")
        for path, was in replaced.items():  # what --replace replaced, put back where the name is free
            backup = os.path.join(lib, "replaced", was["backup"])
            if not os.path.lexists(node.here(path)) and still_ours(backup, was):
                os.rename(backup, node.here(path))
                say(f"put back {path}")
        if link_target(os.path.join(lib, "current")) is not None:
            unlink(os.path.join(lib, "current"))
        builds = os.path.join(lib, "builds")
        running, unknown = in_use()
        for name in manifest["builds"]:
            path = os.path.join(builds, name)
            if runs(os.path.join(path, TREE), running, unknown):
                say(f"left build {name}: a process still runs it; remove {path} once it is gone")
                continue
            shutil.rmtree(path, ignore_errors=True)
            say(f"removed build {name}")
        unlink(os.path.join(lib, MANIFEST))
        rmdir(os.path.join(lib, "replaced"))
        rmdir(builds)
        unlink(os.path.join(lib, ".lock"))
    for path in sorted(manifest["made"], key=len, reverse=True):
        rmdir(node.here(path))
    pid = zygote_pid(node.here(socket_path))
    if pid:
        say(f"a zygote (pid {pid}) still serves {socket_path}: stop it, its build is gone")
    say(f"uninstalled {manifest['version']}")
