"""The node: where to install (the paths as the node sees them and as this process reaches them),
the processes that run a build, and the service manager (systemd) that runs the zygote."""

from __future__ import annotations

import errno
import os
import socket
import struct
import subprocess
import time

from cni import statefile
from cni_install.files import Refused, digest, say, unlink, within
from cni_install.release import TREE, UNIT
from cni_macvlan.plugins import PLUGINS


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
            if within(path, self.libdir):
                raise Refused(f"{name} {path} is inside --libdir {self.libdir}: keep them apart")
        if within(self.libdir, self.unitdir):
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


def systemd(node: Node) -> bool:
    """Is this a node where systemd runs, and ours to drive (no DESTDIR: a staging directory or a
    container writing the host's files has no say over the host's services)?"""
    return not node.destdir and os.geteuid() == 0 and os.path.isdir("/run/systemd/system")


SYSTEMCTL_WAIT = 90.0  # seconds for one systemctl call (a start waits for the zygote's socket)
VERSION_WAIT = 10.0  # seconds for the new build's --version through the zygote


def run(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a helper, waiting at most ``timeout`` seconds; Refused if it takes longer."""
    try:
        return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Refused(f"{' '.join(argv)} did not finish in {timeout:g} s") from None


def systemctl(*args: str) -> None:
    proc = run(["systemctl", *args], SYSTEMCTL_WAIT)
    if proc.returncode != 0:
        raise Refused(f"systemctl {' '.join(args)} failed: {proc.stderr.strip()}")


def in_use() -> tuple[set[tuple[int, int]], int]:
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


def runs(program: str, running: set[tuple[int, int]], unknown: int) -> bool:
    """Does a process run ``program`` (of in_use's ``running``), or may one (``unknown`` processes
    we may not look at)? False when there is no such file."""
    try:
        st = os.stat(program)
    except OSError:
        return False
    return unknown > 0 or (st.st_dev, st.st_ino) in running


def zygote_pid(path: str) -> int:
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


def wait_gone(pid: int, timeout: float) -> bool:
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


def drop_unit(node: Node, unit: dict[str, str] | None) -> None:
    """The zygote's unit we installed, stopped and removed (unless someone changed it since)."""
    if not unit:
        return
    here = node.here(unit["path"])
    if digest(here) != unit["sha256"]:
        say(f"left {unit['path']}: changed since we installed it")
        return
    if systemd(node):
        run(["systemctl", "disable", "--now", UNIT], SYSTEMCTL_WAIT)
    unlink(here)
    if systemd(node):
        run(["systemctl", "daemon-reload"], SYSTEMCTL_WAIT)
    say(f"removed {unit['path']}")
