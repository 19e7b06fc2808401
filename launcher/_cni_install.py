"""The installer: ``cni-macvlan install [OPTIONS]``, which a release's ``install.sh`` (and ``make
install``) runs from the release's own tree. It puts the release's plugins into a CNI bin directory
so that a runtime exec'ing a plugin at any moment of an upgrade gets a whole old or a whole new
plugin, hands over to the new build's zygote, and records what it made, so that ``--uninstall``
removes exactly that and nothing else.

Rule of membership: putting a release on a node and taking it off again; nothing here runs a plugin.

What it makes (the fast layout; PREFIX and LIBDIR as given, under DESTDIR if one is given):
  LIBDIR/builds/<version>-<identity>/  one build (the launcher and lib/), copied under a temporary
                                       name, synced, then renamed into place: complete before any
                                       name leads to it, and never changed afterwards
  LIBDIR/current -> builds/<...>       the installed build, switched by renaming a new link over it
  PREFIX/<plugin> -> ../<...>/current/cni-macvlan   a relative link per plugin name (the registry,
                                       cni_macvlan/plugins.py), so a DESTDIR install (a container
                                       writing the host's directories) is right on the host too
  LIBDIR/installed.json                the manifest: every path made, and what each held
  UNITDIR/cni-macvlan-zygote.service   with --zygote yes: the zygote's unit, ExecStart through current
An exec resolves PREFIX/macvlan -> current -> builds/X/cni-macvlan at once, and the launcher takes
lib/ beside the file it runs (/proc/self/exe): a process that started on build X reads build X only,
whatever is switched meanwhile. A build is removed only when it is neither the current one nor the
one before it and no process runs it (/proc/*/exe, compared by inode, so that a zygote in a
container counts too). The single-file layout (--layout single) writes each plugin as a file under
a temporary name in PREFIX and renames it over the old one: an exec opens the old file or the new.

Root writes here, so nothing is trusted that others could change: PREFIX, LIBDIR and UNITDIR must be
directories only their owner (root) can change, with every directory above them (the plugins' rule
for their state, cni/statefile.check_private; a symlink of root's is followed), and apart from each
other; files are created O_EXCL|O_NOFOLLOW; every file installed is checked against the release's
SHA256SUMS first, and a build already in place must be exactly what we make. The manifest must be
root's alone and name only what an install of ours makes, or neither install nor --uninstall acts
on it. It is written before anything changes, listing all a run may make, so a run cut short
leaves what the next run (or --uninstall) takes from there; a failure after the switch puts the
previous build back. A plugin (or unit) of PREFIX that is not ours is replaced only with --replace,
kept in LIBDIR/replaced/ and put back by --uninstall.
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import time

from cni_macvlan import __version__
from cni_macvlan.cni import faults, jsonio, statefile
from cni_macvlan.plugins import PLUGINS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MANIFEST = "installed.json"
UNIT = "cni-macvlan-zygote.service"
TREE = "cni-macvlan"  # the fast layout's directory in a release, and its launcher's name
SUMS = "SHA256SUMS"
DEFAULT_SOCKET = "/run/cni-macvlan/zygote.sock"
CHUNK = 1 << 20


class Refused(Exception):
    """Nothing was changed; the message says why and what to do."""


def _hexdigest(data: bytes) -> str:
    """The SHA-256 of ``data``, in hex."""
    try:
        from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]  # 3.12 and later
    except ImportError:
        from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    return str(sha256(data).hexdigest())


def say(line: str) -> None:
    sys.stdout.write(f"cni-macvlan install: {line}\n")
    sys.stdout.flush()


# ---- the release ----


class Release:
    """A release directory (the tarball unpacked, or dist/release): its SHA256SUMS lists every file."""

    def __init__(self, root: str) -> None:
        self.root = root
        try:
            text = _read(os.path.join(root, SUMS)).decode()
        except (OSError, UnicodeDecodeError) as e:
            raise Refused(f"{root} is not a release ({SUMS}: {e}); run the install.sh of an unpacked release") from None
        self.sums: dict[str, str] = {}
        for line in text.splitlines():
            digest, _, path = line.partition("  ")
            parts = path.split("/")
            if len(digest) != 64 or not path or path.startswith("/") or ".." in parts or "" in parts:
                raise Refused(f"{root}/{SUMS}: malformed line {line!r}")
            self.sums[path] = digest

    def load(self, layout: str, zygote: bool) -> dict[str, tuple[bytes, int]]:
        """What a layout installs (path in the release -> content, mode), every file checked against
        SHA256SUMS before anything is written."""
        if layout == "fast":
            paths = sorted(p for p in self.sums if p.startswith(TREE + "/"))
            if f"{TREE}/{TREE}" not in paths or f"{TREE}/lib/_cni_modules.bin" not in paths:
                raise Refused(f"{self.root}/{SUMS} lists no fast layout ({TREE}/)")
            paths += [UNIT] if zygote else []
        else:
            paths = list(PLUGINS)
        files = {}
        for path in paths:
            data = self.read_checked(path)
            executable = os.stat(os.path.join(self.root, path)).st_mode & 0o100
            files[path] = (data, 0o755 if executable else 0o644)
        return files

    def read_checked(self, path: str) -> bytes:
        """The content of a listed file, after checking it against SHA256SUMS."""
        if path not in self.sums:
            raise Refused(f"{self.root}/{SUMS} does not list {path}")
        data = _read(os.path.join(self.root, path))
        self.check(path, data)
        return data

    def check(self, path: str, data: bytes) -> None:
        if _hexdigest(data) != self.sums[path]:
            raise Refused(f"{self.root}/{path} does not match {SUMS}: the release is damaged; unpack it again")


def _read(path: str) -> bytes:
    fd = statefile.open_regular(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _write_new(path: str, data: bytes, mode: int) -> None:
    """A new file (never an existing one, never through a symlink), whole and synced, else none."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)  # whatever the umask
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _unlink(path)
        raise


def _replace_file(path: str, data: bytes, mode: int) -> None:
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    _unlink(tmp)
    _write_new(tmp, data, mode)
    try:
        os.rename(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    _sync_dir(os.path.dirname(path))


def _replace_link(path: str, target: str) -> None:
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    _unlink(tmp)
    os.symlink(target, tmp)
    try:
        os.rename(tmp, path)  # a new name for the link, atomically: never a moment without one
    except BaseException:
        _unlink(tmp)
        raise
    _sync_dir(os.path.dirname(path))


def _sync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def _link_target(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _file_digest(path: str) -> str | None:
    """The SHA-256 of a regular file (not through a symlink), None when it is anything else."""
    try:
        data = _read(path)
    except OSError:
        return None
    return _hexdigest(data)


# ---- the node ----


class Node:
    """Where to install: the paths as the node sees them, and as this process reaches them (under
    DESTDIR: a package's staging directory, or the host's directories mounted in a container)."""

    def __init__(self, prefix: str, libdir: str, unitdir: str, destdir: str) -> None:
        for name, path in (("--prefix", prefix), ("--libdir", libdir), ("--unitdir", unitdir)):
            if not path.startswith("/"):
                raise Refused(f"{name} {path}: give an absolute path")
        if destdir and not destdir.startswith("/"):
            raise Refused(f"--destdir {destdir}: give an absolute path")
        self.prefix, self.libdir, self.unitdir = (os.path.normpath(p) for p in (prefix, libdir, unitdir))
        # LIBDIR's files are ours to remove: PREFIX and UNITDIR may not be in it (LIBDIR may be in PREFIX,
        # as the DaemonSet has it, so that a container mounting only PREFIX sees whole builds)
        for name, path in (("--prefix", self.prefix), ("--unitdir", self.unitdir)):
            if _within(path, self.libdir):
                raise Refused(f"{name} {path} is inside --libdir {self.libdir}: keep them apart")
        if _within(self.libdir, self.unitdir):
            raise Refused(f"--libdir {self.libdir} is inside --unitdir {self.unitdir}: keep them apart")
        if not all(c.isalnum() or c in "._/-" for c in self.libdir):
            raise Refused(f"--libdir {self.libdir}: use letters, digits and ._/- only (it goes into the unit)")
        self.destdir = os.path.normpath(destdir) if destdir else ""

    def here(self, path: str) -> str:
        """A node path as this process reaches it."""
        return self.destdir + path if self.destdir else path

    def missing(self, path: str) -> list[str]:
        """The directories of ``path`` (a node path) that do not exist yet, outermost first."""
        out: list[str] = []
        while path != "/" and not os.path.lexists(self.here(path)):
            out.insert(0, path)
            path = os.path.dirname(path)
        return out

    def check(self, path: str, what: str, create: bool = True) -> bool:
        """``path`` (a node path) made if missing (with ``create``), and refused unless only its owner
        can change it; whether it exists."""
        try:
            statefile.check_private(self.here(path), create=0o755 if create else 0, follow=True)
        except FileNotFoundError:
            return False
        except OSError as e:
            raise Refused(f"{what} {path}: {e.strerror}") from None
        return True

    def plugin_link(self) -> str:
        """What PREFIX/<plugin> points to: LIBDIR/current/cni-macvlan, relative to PREFIX."""
        if self.destdir:  # the node's own paths: the directories here may be mounts of them
            prefix, libdir = self.prefix, self.libdir
        else:  # through root's symlinks (check_private followed them)
            prefix, libdir = os.path.realpath(self.prefix), os.path.realpath(self.libdir)
        return os.path.relpath(os.path.join(libdir, "current", TREE), prefix)


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _systemd(node: Node) -> bool:
    """Is this a node where systemd runs, and ours to drive (no DESTDIR: a staging directory or a
    container writing the host's files has no say over the host's services)?"""
    return not node.destdir and os.geteuid() == 0 and os.path.isdir("/run/systemd/system")


SYSTEMCTL_WAIT = 90.0  # seconds for one systemctl call (a start waits for the zygote's socket)
VERSION_WAIT = 10.0  # seconds for the new build's --version through the zygote


def _run(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a helper, waiting at most ``timeout`` seconds; Refused if it takes longer."""
    try:
        return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Refused(f"{' '.join(argv)} did not finish in {timeout:g} s") from None


def _systemctl(*args: str) -> None:
    proc = _run(["systemctl", *args], SYSTEMCTL_WAIT)
    if proc.returncode != 0:
        raise Refused(f"systemctl {' '.join(args)} failed: {proc.stderr.strip()}")


def _in_use() -> tuple[set[tuple[int, int]], int]:
    """The (device, inode) of every running program, and how many processes named as ours (a plugin,
    cni-macvlan) run a program we may not look at (/proc/PID/exe needs CAP_SYS_PTRACE over them)."""
    running: set[tuple[int, int]] = set()
    ours = {TREE, *(name[:15] for name in PLUGINS)}  # comm: the name exec'd, cut to 15 characters
    unknown = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{pid}/exe")
        except FileNotFoundError:
            continue  # a kernel thread, or gone
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                try:
                    with open(f"/proc/{pid}/comm", "rb") as f:
                        unknown += os.fsdecode(f.read().strip()) in ours
                except OSError:
                    pass
            continue
        running.add((st.st_dev, st.st_ino))
    return running, unknown


def _runs(program: str, running: set[tuple[int, int]], unknown: int) -> bool:
    """Does a process run ``program`` (of _in_use's ``running``), or may one (``unknown`` processes
    we may not look at)? False when there is no such file."""
    try:
        st = os.stat(program)
    except OSError:
        return False
    return unknown > 0 or (st.st_dev, st.st_ino) in running


def _zygote_pid(path: str) -> int:
    """The pid of a root process serving a zygote socket at ``path`` (as this process reaches it); 0 if none."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
        pid, uid, _ = struct.unpack("3i", probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        return pid if uid == 0 else 0
    except OSError:
        return 0
    finally:
        probe.close()


def _wait_gone(pid: int, timeout: float) -> bool:
    """Has ``pid`` ended (a zombie has) within ``timeout`` seconds?"""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rpartition(b")")[2].split()[0]
        except (OSError, IndexError):
            return True
        if state in (b"Z", b"X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


# ---- install ----


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
        self.legacy = False  # an old `make install`'s files are in LIBDIR, to remove once unused
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
                self.legacy = self.adopt()
            self.old = read_manifest(self.lib, node) or {}
            self.plan_replacements()  # refused here, before any change, unless --replace
        except BaseException:  # refused: nothing is left of this run
            for path in reversed(self.made):
                _rmdir(node.here(path))
            raise
        with statefile.Locked(os.path.join(self.lib, ".lock")):
            self.old = read_manifest(self.lib, node) or {}
            self.legacy = self.legacy or bool(self.old.get("legacy"))
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
                    self.hand_over(restarted=unit is not None and _systemd(node))
                else:
                    self.copy_plugins()
                    drop_unit(node, self.old.get("unit"))
                    if _unlink(os.path.join(self.lib, "current")):
                        _sync_dir(self.lib)
            except BaseException:
                if self.layout == "fast" and self.current() != previous:  # the build before comes back
                    if previous:
                        _replace_link(os.path.join(self.lib, "current"), f"builds/{previous}")
                    else:
                        _unlink(os.path.join(self.lib, "current"))
                    say(f"failed: {'back to build ' + previous if previous else 'no build is current'}")
                raise
            self.drop_plugins(set(plugins))
            builds = self.collect(keep={b for b in (self.current(), previous) if b})
            self.legacy = self.legacy and not self.drop_legacy()
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
        if self.legacy:
            manifest["legacy"] = True
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
        return {"path": os.path.join(self.node.unitdir, UNIT), "sha256": _hexdigest(self.unit_text())}

    def unit_text(self) -> bytes:
        return self.files[UNIT][0].decode().replace("@LIBDIR@", self.node.libdir).encode()

    # -- what others put where we install --

    def foreign(self) -> list[str]:
        """The node paths we are about to write that hold something not ours: not installed by us
        (or changed since), not already what we install, not an old `make install`'s link into LIBDIR."""
        plugins, unit = self.plugin_entries(), self.unit_entry()
        mine = {**self.old.get("plugins", {}), **({unit["path"]: unit} if unit else {})}
        if self.old.get("unit"):
            mine[self.old["unit"]["path"]] = self.old["unit"]
        out = []
        for path, want in [*plugins.items(), *([(unit["path"], unit)] if unit else [])]:
            here = self.node.here(path)
            if not os.path.lexists(here) or _still_ours(here, want):
                continue
            if path in mine and _still_ours(here, mine[path]):
                continue
            if self.legacy and _link_target(here) == os.path.join(self.node.libdir, TREE):
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
            target = _link_target(here)
            if target is not None:
                os.symlink(target, backup)
                self.replaced[path] = {"backup": name, "link": target}
            else:
                data = _read(here)
                _write_new(backup, data, os.lstat(here).st_mode & 0o7777)
                self.replaced[path] = {"backup": name, "sha256": _hexdigest(data)}
            _sync_dir(store)
            say(f"replacing {path} (not ours): kept in {os.path.join(self.node.libdir, 'replaced', name)}")
        return len(self.replaced) > kept

    # -- the build --

    def current(self) -> str:
        target = _link_target(os.path.join(self.lib, "current")) or ""
        return target.partition("/")[2] if target.startswith("builds/") else ""

    def build_name(self) -> str:
        import _cni_boot  # the launcher's module (the bundle we run from)

        return f"{__version__}-{_cni_boot.identity(self.files[f'{TREE}/lib/_cni_modules.bin'][0])}"

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
            damaged = [rel for rel in files if _file_digest(os.path.join(final, rel)) != sums[f"{TREE}/{rel}"]]
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
                os.chmod(os.path.join(tmp, d), 0o755)
            for rel in files:
                data, mode = self.files[f"{TREE}/{rel}"]
                _write_new(os.path.join(tmp, rel), data, mode)
            for d in [*reversed(dirs), ""]:
                _sync_dir(os.path.join(tmp, d))
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _sync_dir(builds)
        say(f"build {name} written to {builds}")
        return name

    def switch(self, build: str) -> str:
        """LIBDIR/current -> builds/<build>, atomically; the build it led to before."""
        previous = self.current()
        if previous != build:
            _replace_link(os.path.join(self.lib, "current"), f"builds/{build}")
            say(f"current build: {build}" + (f" (was {previous})" if previous else ""))
        return previous

    def link_plugins(self) -> None:
        target = self.node.plugin_link()
        for name in PLUGINS:
            here = self.node.here(os.path.join(self.node.prefix, name))
            if _link_target(here) != target:
                _replace_link(here, target)

    def copy_plugins(self) -> None:
        for name in PLUGINS:
            here = self.node.here(os.path.join(self.node.prefix, name))
            if _file_digest(here) != self.release.sums[name]:
                _replace_file(here, self.files[name][0], 0o755)

    def drop_plugins(self, keep: set[str]) -> None:
        """Plugin names we installed before and install no more (another PREFIX, a plugin dropped)."""
        for path, was in self.old.get("plugins", {}).items():
            if path not in keep and _still_ours(self.node.here(path), was):
                _unlink(self.node.here(path))
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
        fresh = _file_digest(here) != unit["sha256"]
        if fresh:
            _replace_file(here, self.unit_text(), 0o644)
        if _systemd(node):
            if fresh:
                _systemctl("daemon-reload")
            _systemctl("enable", UNIT)
            if changed or fresh:
                _systemctl("restart", UNIT)  # the old zygote finishes its running children, then leaves
                say(f"restarted {UNIT} on the new build")
            else:
                _systemctl("start", UNIT)
        elif not node.destdir:
            say(f"no systemd here: run '{node.libdir}/current/{TREE} zygote' under your service manager (unit: {path})")

    def hand_over(self, restarted: bool) -> None:
        """A zygote not restarted by systemd (another supervisor's, or a container's) serving the
        socket: one exec of the new build makes it decline and, its start path now leading to the new
        build, leave for its supervisor to start the new one (launcher/_cni_zygote.py)."""
        if restarted:
            return
        sock = self.node.here(self.socket)
        pid = _zygote_pid(sock)
        if not pid:
            return
        plugin = self.node.here(os.path.join(self.node.prefix, next(iter(PLUGINS))))
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_MACVLAN_ZYGOTE": sock, "CNI_MACVLAN_DEBUG": "1"}
        out = _run([plugin, "--version"], VERSION_WAIT, env)
        if out.returncode != 0:
            raise Refused(f"the new build does not run: {plugin} --version: {out.stderr.strip()}")
        if f"run by the zygote {pid}" in out.stderr:
            return  # it is of this very build: nothing to hand over
        if _wait_gone(pid, 5.0):
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
        running, unknown = _in_use()
        left = []
        for name in sorted(os.listdir(builds)):
            path = os.path.join(builds, name)
            if name.startswith("."):  # an installer's temporary: removed when its installer is gone
                pid = name.rpartition(".tmp-")[2]
                if not (pid.isdigit() and os.path.exists(f"/proc/{pid}")):
                    shutil.rmtree(path, ignore_errors=True)
                continue
            if name in keep or _runs(os.path.join(path, TREE), running, unknown) or unknown:
                left.append(name)
                continue
            shutil.rmtree(path)
            say(f"removed build {name}")
        if unknown:
            say(f"kept every build: {unknown} processes named as ours could not be looked at (needs CAP_SYS_PTRACE)")
        return left

    def adopt(self) -> bool:
        """No manifest: LIBDIR must be new, empty, or the layout `make install` made before the
        installer (its launcher, lib/ with the module bundle, and its unit), which we take over:
        whether it is that."""
        if not os.path.isdir(self.lib):
            return False
        entries = set(os.listdir(self.lib)) - {".lock"}
        if not entries:
            return False
        launcher, bundle = os.path.join(self.lib, TREE), os.path.join(self.lib, "lib", "_cni_modules.bin")
        legacy = (
            entries <= LEGACY
            and _regular(launcher)
            and _regular(bundle)
            and not os.path.islink(os.path.join(self.lib, "lib"))
        )
        if not legacy:
            raise Refused(
                f"{self.node.libdir} holds files not installed by install.sh ({', '.join(sorted(entries)[:3])}):"
                " give another --libdir"
            )
        return True

    def drop_legacy(self) -> bool:
        """The files of an old `make install` in LIBDIR, once no process runs them; whether they are gone."""
        if not self.legacy:
            return False
        legacy = [name for name in LEGACY if os.path.lexists(os.path.join(self.lib, name))]
        if not legacy:
            return True
        launcher = os.path.join(self.lib, TREE)
        if _runs(launcher, *_in_use()):
            say(f"left the old layout's files in {self.node.libdir}: still running; install again later to remove them")
            return False
        for name in legacy:
            path = os.path.join(self.lib, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                _unlink(path)
        say(f"removed the old layout's files from {self.node.libdir}: {', '.join(sorted(legacy))}")
        return True


LEGACY = {TREE, "lib", UNIT}  # what `make install` put in LIBDIR before there was an installer


def drop_unit(node: Node, unit: dict[str, str] | None) -> None:
    """The zygote's unit we installed, stopped and removed (unless someone changed it since)."""
    if not unit:
        return
    here = node.here(unit["path"])
    if _file_digest(here) != unit["sha256"]:
        say(f"left {unit['path']}: changed since we installed it")
        return
    if _systemd(node):
        _run(["systemctl", "disable", "--now", UNIT], SYSTEMCTL_WAIT)
    _unlink(here)
    if _systemd(node):
        _run(["systemctl", "daemon-reload"], SYSTEMCTL_WAIT)
    say(f"removed {unit['path']}")


def _regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


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


def _still_ours(here: str, was: dict[str, str]) -> bool:
    if "link" in was:
        return _link_target(here) == was["link"]
    return _file_digest(here) == was.get("sha256")


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
    if not isinstance(made, list) or not all(_clean_path(d) and any(_within(t, d) for t in tops) for d in made):
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


# ---- uninstall ----


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
            if _still_ours(here, was):
                _unlink(here)
                say(f"removed {path}")
            elif os.path.lexists(here):
                say(f"left {path}: it is no longer what we installed")
        for path, was in replaced.items():  # what --replace replaced, put back where the name is free
            backup = os.path.join(lib, "replaced", was["backup"])
            if not os.path.lexists(node.here(path)) and _still_ours(backup, was):
                os.rename(backup, node.here(path))
                say(f"put back {path}")
        if _link_target(os.path.join(lib, "current")) is not None:
            _unlink(os.path.join(lib, "current"))
        builds = os.path.join(lib, "builds")
        running, unknown = _in_use()
        for name in manifest["builds"]:
            path = os.path.join(builds, name)
            if _runs(os.path.join(path, TREE), running, unknown):
                say(f"left build {name}: a process still runs it; remove {path} once it is gone")
                continue
            shutil.rmtree(path, ignore_errors=True)
            say(f"removed build {name}")
        _unlink(os.path.join(lib, MANIFEST))
        _rmdir(os.path.join(lib, "replaced"))
        _rmdir(builds)
        _unlink(os.path.join(lib, ".lock"))
    for path in sorted(manifest["made"], key=len, reverse=True):
        _rmdir(node.here(path))
    pid = _zygote_pid(node.here(socket_path))
    if pid:
        say(f"a zygote (pid {pid}) still serves {socket_path}: stop it, its build is gone")
    say(f"uninstalled {manifest['version']}")


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass  # not empty (someone else's files), or gone


# ---- the command ----


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="install.sh",
        description="Install this release's CNI plugins atomically (a runtime exec'ing one meanwhile gets a whole "
        "old or a whole new plugin), or --uninstall what was installed.",
    )
    p.add_argument("--prefix", default="/opt/cni/bin", help="the CNI bin directory (default %(default)s)")
    p.add_argument("--libdir", default="/opt/cni-macvlan", help="the builds and the manifest (default %(default)s)")
    p.add_argument("--layout", choices=("fast", "single"), default="fast", help="default %(default)s")
    p.add_argument(
        "--zygote", choices=("yes", "no"), default="yes", help="install the zygote's systemd unit (fast layout)"
    )
    p.add_argument("--unitdir", default="/etc/systemd/system", help="default %(default)s")
    p.add_argument("--destdir", default="", help="install under DIR as if it were / (packages; a container)")
    p.add_argument("--socket", default=DEFAULT_SOCKET, help="the zygote's socket to hand over (default %(default)s)")
    p.add_argument("--uninstall", action="store_true", help="remove what the manifest in LIBDIR lists")
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace plugins (or a unit) of PREFIX that are not ours; each is kept in LIBDIR/replaced/ and"
        " --uninstall puts it back",
    )
    return p.parse_args(argv)


def main(argv: list[str], lib: str) -> int:
    """``lib``: the lib/ of the launcher running us; the release is the directory above its tree."""
    args = parse(argv)
    try:
        node = Node(args.prefix, args.libdir, args.unitdir, args.destdir)
        if args.uninstall:
            uninstall(node, args.socket)
            return 0
        if lib == sys.executable:
            raise Refused("run the installer of a release's tree (install.sh), not a single-file plugin")
        release = Release(os.path.dirname(os.path.dirname(lib)))
        Installer(release, node, args.layout, args.zygote == "yes", args.socket, args.replace).run()
    except Refused as e:
        sys.stderr.write(f"cni-macvlan install: {e}\n")
        return 1
    except OSError as e:
        sys.stderr.write(f"cni-macvlan install: {e.filename or ''}: {e.strerror}\n")
        return 1
    return 0
