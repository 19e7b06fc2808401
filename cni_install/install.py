"""Install: a release's build (or its single files) into a node's PREFIX and LIBDIR, switched to
atomically (cni_install/__init__.py tells the layout and the rules)."""

from __future__ import annotations

import os
import shutil
import stat

from cni import faults, statefile
from cni.statefile import sync_dir
from cni_install.files import (
    Refused,
    digest,
    hexdigest,
    link_target,
    read,
    replace_file,
    replace_link,
    rmdir,
    say,
    still_ours,
    unlink,
    write_new,
)
from cni_install.manifest import MANIFEST, read_manifest, write_manifest
from cni_install.node import VERSION_WAIT, Node, drop_unit, in_use, run, runs, systemctl, systemd, wait_gone, zygote_pid
from cni_install.release import BUNDLE, TREE, UNIT, Release
from cni_macvlan import __version__
from cni_macvlan.plugins import PLUGINS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Installer:
    def __init__(
        self, release: Release, node: Node, layout: str, zygote: bool, socket_path: str, replace: bool = False
    ) -> None:
        self.release = release
        self.replace = replace
        self.node = node
        self.layout = layout
        self.zygote = zygote and layout == "fast"
        self.socket = socket_path
        self.lib = node.here(node.libdir)
        self.old: dict[str, Any] = {}
        self.made: list[str] = []  # the directories this run made (node paths, outermost first)
        self.files: dict[str, tuple[bytes, int]] = {}
        self.replaced: dict[str, dict[str, str]] = {}  # path -> its backup in LIBDIR/replaced/

    def run(self) -> None:
        node = self.node
        self.files = self.release.load(self.layout, self.zygote)  # a damaged release changes nothing
        wanted = [node.prefix, node.libdir, *([node.unitdir] if self.zygote else [])]
        self.made = list(dict.fromkeys(d for path in wanted for d in node.missing(path)))
        try:
            node.check(node.prefix, "--prefix")
            node.check(node.libdir, "--libdir")
            if self.zygote:
                node.check(node.unitdir, "--unitdir")
            if not os.path.lexists(os.path.join(self.lib, MANIFEST)):
                self.refuse_foreign_libdir()
            self.old = read_manifest(self.lib, node) or {}
            self.plan_replacements()  # refused here, before any change, unless --replace
        except BaseException:  # refused: nothing is left of this run
            for path in reversed(self.made):
                rmdir(node.here(path))
            raise
        with statefile.Locked(os.path.join(self.lib, ".lock")):
            self.old = read_manifest(self.lib, node) or {}
            build = self.build_name() if self.layout == "fast" else ""
            plugins = self.plugin_entries()
            unit = self.unit_entry()
            # written before anything changes: a run cut short leaves a manifest that lists all it may
            # have made (install again, or --uninstall, take it from there)
            pending = [*self.old.get("builds", []), *([build] if build else [])]
            self.write(plugins, pending, unit, pending=True)
            if self.back_up_replaced():  # the backups, recorded before the files they keep are replaced
                self.write(plugins, pending, unit, pending=True)
            previous = self.current()
            try:
                if self.layout == "fast":
                    self.install_build(build)
                    self.switch(build)
                    faults.step("install-switched")
                    self.link_plugins()
                    self.install_unit(unit, changed=previous != build)
                    self.hand_over(restarted=unit is not None and systemd(node))
                else:
                    self.copy_plugins()
                    drop_unit(node, self.old.get("unit"))
                    if unlink(os.path.join(self.lib, "current")):
                        sync_dir(self.lib)
            except BaseException:
                if self.layout == "fast" and self.current() != previous:  # the build before comes back
                    if previous:
                        replace_link(os.path.join(self.lib, "current"), f"builds/{previous}")
                    else:
                        unlink(os.path.join(self.lib, "current"))
                    say(f"failed: {'back to build ' + previous if previous else 'no build is current'}")
                raise
            self.drop_plugins(set(plugins))
            builds = self.collect(keep={b for b in (self.current(), previous) if b})
            self.write(plugins, builds, unit, pending=False)
        say(f"installed {__version__} ({self.layout} layout): {', '.join(sorted(PLUGINS))}")

    def write(self, plugins: dict[str, dict[str, str]], builds: list[str], unit: Any, pending: bool) -> None:
        node = self.node
        old_plugins = {k: v for k, v in self.old.get("plugins", {}).items() if k not in plugins}
        manifest: dict[str, Any] = {
            "format": 1,
            "version": __version__,
            "layout": self.layout,
            "prefix": node.prefix,
            "libdir": node.libdir,
            "unitdir": node.unitdir,
            "plugins": {**old_plugins, **plugins} if pending else plugins,
            "builds": list(dict.fromkeys(builds)),
            "unit": unit if unit is not None or not pending else self.old.get("unit"),
            "made": list(dict.fromkeys([*self.old.get("made", []), *self.made])),  # each once
            "replaced": {**self.old.get("replaced", {}), **self.replaced},
        }
        if pending:
            manifest["pending"] = True
            if unit is None and self.old.get("unit"):
                manifest["unit"] = self.old["unit"]
        write_manifest(self.lib, manifest)

    def plugin_entries(self) -> dict[str, dict[str, str]]:
        """What each plugin name will hold: a link (fast) or a file's digest (single)."""
        target = self.node.plugin_link()
        out = {}
        for name in PLUGINS:
            path = os.path.join(self.node.prefix, name)
            out[path] = {"link": target} if self.layout == "fast" else {"sha256": self.release.sums[name]}
        return out

    def unit_entry(self) -> dict[str, str] | None:
        if not self.zygote:
            return None
        return {"path": os.path.join(self.node.unitdir, UNIT), "sha256": hexdigest(self.unit_text())}

    def unit_text(self) -> bytes:
        return self.files[UNIT][0].decode().replace("@LIBDIR@", self.node.libdir).encode()

    # -- what others put where we install --

    def refuse_foreign_libdir(self) -> None:
        """No manifest: LIBDIR must be new or empty (its files are ours to remove)."""
        entries = sorted(set(os.listdir(self.lib)) - {".lock"}) if os.path.isdir(self.lib) else []
        if entries:
            raise Refused(
                f"{self.node.libdir} holds files not installed by install.sh ({', '.join(entries[:3])}):"
                " give another --libdir"
            )

    def foreign(self) -> list[str]:
        """The node paths we are about to write that hold something not ours: not installed by us
        (or changed since), not already what we install."""
        plugins, unit = self.plugin_entries(), self.unit_entry()
        mine = {**self.old.get("plugins", {}), **({unit["path"]: unit} if unit else {})}
        if self.old.get("unit"):
            mine[self.old["unit"]["path"]] = self.old["unit"]
        out = []
        for path, want in [*plugins.items(), *([(unit["path"], unit)] if unit else [])]:
            here = self.node.here(path)
            if not os.path.lexists(here) or still_ours(here, want):
                continue
            if path in mine and still_ours(here, mine[path]):
                continue
            out.append(path)
        return out

    def plan_replacements(self) -> None:
        foreign = self.foreign()
        for path in foreign:
            if os.path.isdir(self.node.here(path)) and not os.path.islink(self.node.here(path)):
                raise Refused(f"{path} is a directory: remove it, then install again")
        if foreign and not self.replace:
            raise Refused(
                f"{foreign[0]} is not ours (another package's plugin?): give --replace to replace it"
                " (it is kept in LIBDIR/replaced/ and --uninstall puts it back)"
                + (f"; also {', '.join(foreign[1:])}" if foreign[1:] else "")
            )

    def back_up_replaced(self) -> bool:
        """With --replace: each foreign file or link copied to LIBDIR/replaced/ before it is replaced.
        Were any kept (the manifest must say so)?"""
        foreign = self.foreign()
        if not foreign:
            return False
        kept = len(self.replaced)
        store = os.path.join(self.lib, "replaced")
        if not os.path.lexists(store):
            os.mkdir(store, 0o700)
        for path in foreign:
            here = self.node.here(path)
            name = os.path.basename(path)
            backup = os.path.join(store, name)
            if os.path.lexists(backup):
                continue  # the first replaced is the one to put back
            target = link_target(here)
            if target is not None:
                os.symlink(target, backup)
                self.replaced[path] = {"backup": name, "link": target}
            else:
                data = read(here)
                write_new(backup, data, os.lstat(here).st_mode & 0o7777)
                self.replaced[path] = {"backup": name, "sha256": hexdigest(data)}
            sync_dir(store)
            say(f"replacing {path} (not ours): kept in {os.path.join(self.node.libdir, 'replaced', name)}")
        return len(self.replaced) > kept

    # -- the build --

    def current(self) -> str:
        target = link_target(os.path.join(self.lib, "current")) or ""
        return target.partition("/")[2] if target.startswith("builds/") else ""

    def build_name(self) -> str:
        return self.release.build_name(self.files[BUNDLE][0])

    def install_build(self, name: str) -> str:
        """builds/<version>-<identity>, complete and synced before its name exists; an existing one
        is used when it holds exactly the release's files, each root's and changed by no one else."""
        files = sorted(path[len(TREE) + 1 :] for path in self.files if path.startswith(TREE + "/"))
        builds = os.path.join(self.lib, "builds")
        try:
            statefile.check_private(builds, create=0o755)
        except OSError as e:
            raise Refused(f"{self.node.libdir}/builds: {e.strerror}") from None
        final = os.path.join(builds, name)
        if os.path.lexists(final):
            sums = self.release.sums
            damaged = [rel for rel in files if digest(os.path.join(final, rel)) != sums[f"{TREE}/{rel}"]]
            damaged += _not_as_made(final, files)
            if damaged:
                raise Refused(
                    f"{final} exists but differs from this release ({damaged[0]}): remove that directory"
                    f" (or run install.sh --uninstall) and install again"
                )
            say(f"build {name} is already in {builds}")
            return name
        tmp = os.path.join(builds, f".{name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        os.mkdir(tmp, 0o755)
        try:
            dirs = sorted({d for rel in files for d in _dirs_of(rel)})  # parents before children
            for d in dirs:
                os.mkdir(os.path.join(tmp, d), 0o755)
            for d in ["", *dirs]:
                os.chmod(os.path.join(tmp, d), 0o755)  # whatever the umask
            for rel in files:
                data, mode = self.files[f"{TREE}/{rel}"]
                write_new(os.path.join(tmp, rel), data, mode)
            for d in [*reversed(dirs), ""]:
                sync_dir(os.path.join(tmp, d))
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        sync_dir(builds)
        say(f"build {name} written to {builds}")
        return name

    def switch(self, build: str) -> str:
        """LIBDIR/current -> builds/<build>, atomically; the build it led to before."""
        previous = self.current()
        if previous != build:
            replace_link(os.path.join(self.lib, "current"), f"builds/{build}")
            say(f"current build: {build}" + (f" (was {previous})" if previous else ""))
        return previous

    def link_plugins(self) -> None:
        target = self.node.plugin_link()
        for name in PLUGINS:
            here = self.node.here(os.path.join(self.node.prefix, name))
            if link_target(here) != target:
                replace_link(here, target)

    def copy_plugins(self) -> None:
        for name in PLUGINS:
            here = self.node.here(os.path.join(self.node.prefix, name))
            if digest(here) != self.release.sums[name]:
                replace_file(here, self.files[name][0], 0o755)

    def drop_plugins(self, keep: set[str]) -> None:
        """Plugin names we installed before and install no more (another PREFIX, a plugin dropped)."""
        for path, was in self.old.get("plugins", {}).items():
            if path not in keep and still_ours(self.node.here(path), was):
                unlink(self.node.here(path))
                say(f"removed {path}")

    # -- the zygote --

    def install_unit(self, unit: dict[str, str] | None, changed: bool) -> None:
        """The zygote's unit (``unit``: its entry, unit_entry) with --zygote yes, enabled and restarted
        where systemd runs; without (None), a unit we installed before is removed."""
        node = self.node
        if unit is None:
            drop_unit(node, self.old.get("unit"))
            return
        path = unit["path"]
        here = node.here(path)
        fresh = digest(here) != unit["sha256"]
        if fresh:
            replace_file(here, self.unit_text(), 0o644)
        if systemd(node):
            if fresh:
                systemctl("daemon-reload")
            systemctl("enable", UNIT)
            if changed or fresh:
                systemctl("restart", UNIT)  # the old zygote finishes its running children, then leaves
                say(f"restarted {UNIT} on the new build")
            else:
                systemctl("start", UNIT)
        elif not node.destdir:
            say(f"no systemd here: run '{node.libdir}/current/{TREE} zygote' under your service manager (unit: {path})")

    def hand_over(self, restarted: bool) -> None:
        """A zygote not restarted by systemd (another supervisor's, or a container's) serving the
        socket: one exec of the new build makes it decline and, its start path now leading to the new
        build, leave for its supervisor to start the new one (launcher/_cni_zygote.py)."""
        if restarted:
            return
        sock = self.node.here(self.socket)
        pid = zygote_pid(sock)
        if not pid:
            return
        plugin = self.node.here(os.path.join(self.node.prefix, next(iter(PLUGINS))))
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_MACVLAN_ZYGOTE": sock, "CNI_MACVLAN_DEBUG": "1"}
        out = run([plugin, "--version"], VERSION_WAIT, env)
        if out.returncode != 0:
            raise Refused(f"the new build does not run: {plugin} --version: {out.stderr.strip()}")
        if f"run by the zygote {pid}" in out.stderr:
            return  # it is of this very build: nothing to hand over
        if wait_gone(pid, 5.0):
            say(f"the zygote of the previous build (pid {pid}) stopped; its supervisor starts this build's")
        else:
            say(
                f"the zygote serving {self.socket} (pid {pid}) is of another build and was not started"
                f" through {self.node.libdir}/current: restart it on {self.node.libdir}/current/{TREE}"
            )

    # -- what is no longer needed --

    def collect(self, keep: set[str]) -> list[str]:
        """Remove the builds that are not kept and that no process runs; the builds left."""
        builds = os.path.join(self.lib, "builds")
        if not os.path.isdir(builds):
            return []
        running, unknown = in_use()
        left = []
        for name in sorted(os.listdir(builds)):
            path = os.path.join(builds, name)
            if name.startswith("."):  # an installer's temporary: removed when its installer is gone
                pid = name.rpartition(".tmp-")[2]
                if not (pid.isdigit() and os.path.exists(f"/proc/{pid}")):
                    shutil.rmtree(path, ignore_errors=True)
                continue
            if name in keep or runs(os.path.join(path, TREE), running, unknown) or unknown:
                left.append(name)
                continue
            shutil.rmtree(path)
            say(f"removed build {name}")
        if unknown:
            say(f"kept every build: {unknown} processes named as ours could not be looked at (needs CAP_SYS_PTRACE)")
        return left


def _not_as_made(build: str, files: list[str]) -> list[str]:
    """What in an existing build is not as we make one: an entry not listed, not root's, writable by
    group or others, or a link (a build holds regular files and directories only)."""
    expected = set(files) | {d for rel in files for d in _dirs_of(rel)}
    out = []
    for top, dirs, names in os.walk(build):
        for entry in dirs + names:
            full = os.path.join(top, entry)
            rel = os.path.relpath(full, build)
            st = os.lstat(full)
            plain = stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
            if rel not in expected or st.st_uid != os.geteuid() or st.st_mode & 0o022 or not plain:
                out.append(rel)
    st = os.lstat(build)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        out.append(".")
    return out


def _dirs_of(rel: str) -> list[str]:
    parts = rel.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
