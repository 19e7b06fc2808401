"""A containerd of the test's own (Debian's 1.6), as a Kubernetes node runs it, and its ctr.

It runs in the lab's node namespace, so the parent of its pods' macvlans is the lab's upl0, and in a
private view of the file system (tests/support/mountns.py): its root, state, socket and runc root are in
the test's directory, its shims' sockets in a private /run/containerd, libcni's cache (/var/lib/cni) is
the test's ``cache`` directory. The CRI plugin takes its plugins from ``bin_dir`` and its conflist from
``conf_dir``; ``sandbox_image`` is a busybox image imported beforehand (no registry is reachable); the pod
network namespaces are mounted under its state directory, not in /run/netns. Everything it starts (shims,
sandboxes, containers) lives in cgroups under ``cgroup`` (cgroupfs), which ``close`` empties and removes.

``ctr`` runs ctr against it; ``ctr_run_cni`` is `ctr run --cni`: go-cni inside ctr then reads
/etc/cni/net.d and /opt/cni/bin (and, as Debian patches it, /usr/lib/cni), which it is shown as the
test's directories.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.support.images import busybox_layer, oci_archive
from tests.support.layouts import needed
from tests.support.mountns import private_view

IMAGE = "localhost/cmt-busybox:1"
CTR_NAMESPACE = "cmt"  # ctr's containers; the CRI's are in k8s.io
TOOLS = ("containerd", "ctr", "containerd-shim-runc-v2", "runc")


def needed_tools() -> None:
    for tool in TOOLS:
        needed(tool, "run `tools/packages.sh install test-host` (containerd, runc)")
    needed(Path("/bin/busybox"), "run `tools/packages.sh install test-host` (busybox-static)")


def config_toml(d: Path, bin_dir: Path, conf_dir: Path) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{d}/root"
state = "{d}/state"
# /opt/containerd is the opt plugin's: not this test's to make
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[{cri}]
  sandbox_image = "{IMAGE}"
  disable_apparmor = true
  # without CAP_SYS_RESOURCE (this machine's kind) the sandbox's oom_score_adj of -998 can't be set
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        Root = "{d}/runc"
  [{cri}.cni]
    bin_dir = "{bin_dir}"
    conf_dir = "{conf_dir}"
    max_conf_num = 1
"""


class Containerd:
    def __init__(self, workdir: Path, node_netns: str, bin_dir: Path, conflist: dict, env: dict[str, str]) -> None:
        self.dir = workdir
        self.node_netns = node_netns
        self.tag = uuid.uuid4().hex[:8]
        self.cgroup = f"/cmt-{self.tag}"
        self.socket = workdir / "containerd.sock"
        self.cache = workdir / "cni-cache"  # libcni's /var/lib/cni, for containerd and ctr alike
        self.log = workdir / "containerd.log"
        self.scratch = workdir / "views"
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env}
        for d in (self.cache, self.scratch, workdir / "run", workdir / "conf", workdir / "fifo"):
            d.mkdir(parents=True)
        (workdir / "conf" / f"10-{conflist['name']}.conflist").write_text(json.dumps(conflist))
        (workdir / "config.toml").write_text(config_toml(workdir, bin_dir, workdir / "conf"))
        view = private_view(
            {"/run/containerd": workdir / "run", "/var/lib/cni": self.cache}, self.scratch, netns=node_netns
        )
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*view, "containerd", "--config", str(workdir / "config.toml")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.env,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 30
            while self.ctr("version", check=False).returncode != 0:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"containerd did not start:\n{self.log_text()[-3000:]}")
                time.sleep(0.1)
            self.import_busybox()
        except BaseException:
            self.close()
            raise

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def ctr(self, *args: str, namespace: str = CTR_NAMESPACE, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["ctr", "--address", str(self.socket), "--namespace", namespace, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def import_busybox(self) -> None:
        archive = self.dir / "busybox.oci.tar"
        oci_archive(archive, IMAGE, busybox_layer())
        for namespace in ("k8s.io", CTR_NAMESPACE):
            self.ctr("images", "import", str(archive), namespace=namespace)

    def ctr_run_cni(
        self, name: str, conf_dir: Path, bin_dir: Path, script: str, env: dict[str, str]
    ) -> subprocess.Popen[str]:
        """`ctr run --rm --cni` of a busybox container ``name`` running ``script`` (sh -c), started: go-cni in ctr
        reads ``conf_dir`` as /etc/cni/net.d and ``bin_dir`` as /opt/cni/bin. Its stdin and stdout are pipes."""
        view = private_view(
            {"/etc/cni/net.d": conf_dir, "/opt/cni/bin": bin_dir, "/var/lib/cni": self.cache},
            self.scratch,
            netns=self.node_netns,
        )
        argv = ["ctr", "--address", str(self.socket), "--namespace", CTR_NAMESPACE, "run", "--rm", "--cni"]
        argv += ["--fifo-dir", str(self.dir / "fifo"), "--cgroup", f"{self.cgroup}/{name}", IMAGE, name]
        return subprocess.Popen(
            [*view, *argv, "sh", "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**self.env, **env},
        )

    # ---- the end: everything it started, gone ----

    def processes(self) -> list[int]:
        """Our processes besides the daemon: all in our cgroups, and its shims (by their -address)."""
        return processes_of(self.cgroups(), str(self.socket), self.proc.pid)

    def cgroups(self) -> list[Path]:
        """Our cgroup directories in every hierarchy, deepest first."""
        found = []
        root = Path("/sys/fs/cgroup")
        for top in (root, *root.iterdir()):  # the unified hierarchy, or each of version 1's
            base = top / self.cgroup.lstrip("/")
            if base.is_dir():
                found += [Path(root) for root, _, _ in os.walk(base, topdown=False)]
        return found

    def close(self) -> list[str]:
        """Stop the daemon, kill what outlived it, remove our cgroups; what could not be cleaned, if anything."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return reap(self.processes, self.cgroups, 10)


def processes_of(cgroups: list[Path], mark: str, *besides: int) -> list[int]:
    """The processes in ``cgroups`` and those whose command line names ``mark`` (containerd's shims and runc
    name their daemon's socket or state directory), besides ``besides`` and this one."""
    pids: set[int] = set()
    for d in cgroups:
        try:
            pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        except OSError:
            pass
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if mark.encode() in (proc / "cmdline").read_bytes():
                    pids.add(int(proc.name))
            except OSError:
                pass
    return sorted(pids - {os.getpid(), *besides})


def reap(processes: Callable[[], list[int]], cgroups: Callable[[], list[Path]], seconds: float) -> list[str]:
    """Kill what ``processes`` finds until none is left (``seconds`` at most), then remove ``cgroups`` (deepest
    first, waiting out the kernel's EBUSY while a killed process leaves); what could not be cleaned."""
    deadline = time.monotonic() + seconds
    while (pids := processes()) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    left = [f"process {pid}: {_cmdline(pid)}" for pid in processes()]
    for c in cgroups():
        for _ in range(50):
            try:
                c.rmdir()
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    left.append(f"cgroup {c}: {e.strerror}")
                    break
                time.sleep(0.1)
        else:
            left.append(f"cgroup {c}: busy")
    return left


def _cmdline(pid: int) -> str:
    try:
        return repr(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return "(gone)"
