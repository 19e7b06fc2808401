"""A real runtime, the one Kubernetes nodes run: containerd (Debian's 1.6), driven through its CRI over gRPC
as a kubelet drives it, and through go-cni in `ctr run --cni`, with our plugins in each layout we ship.

A containerd of the test's own runs in the lab's node namespace (tests/support/containerd.py); its pods get
macvlans on the lab's upl0. What these callers do that the lab's calls don't: the CRI sends
``IgnoreUnknown=1;K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;K8S_POD_INFRA_CONTAINER_ID=..;K8S_POD_UID=..``, keeps
each result in libcni's cache for the DEL's prevResult, DELs twice (at stop with the namespace, at removal
with CNI_NETNS empty and no cache entry left) and DELs after a failed ADD; ctr ADDs with
CNI_NETNS=/proc/<pid>/ns/net (runc's namespace: nothing in /run/netns), DELs once the container is gone
with CNI_NETNS empty, and looks in CNI_PATH=/opt/cni/bin:/usr/lib/cni (Debian's go-cni), so a host-local
missing from /opt/cni/bin is Go's.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.configs import conflist, macvlan_conf
from tests.support.containerd import CTR_NAMESPACE, Containerd, needed_tools
from tests.support.cri import Cri
from tests.support.lab import GATEWAY4, SUBNET4, Lab, lease_files
from tests.support.layouts import SHIPPED, layout_env, plugin_dir, runtime_client
from tests.support.runners import PluginLog, ServedPerLog

pytestmark = [pytest.mark.runtime, pytest.mark.netns]

CRI_NET, CRI_POOL = "cmtcri", ("10.77.0.10", "10.77.0.11")  # two pods fill it
CTR_NET = "cmtctr"


def network(name: str, d: Path, log: PluginLog, first: str, last: str) -> dict:
    ipam = {
        "type": "host-local",
        "ranges": [[{"subnet": SUBNET4, "rangeStart": first, "rangeEnd": last, "gateway": GATEWAY4}]],
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    entry = macvlan_conf(name, d / "leases", d / "parents", ipam=ipam, logFile=str(log.path), logLevel="debug")
    return conflist(name, entry)


@dataclass
class Node:
    """A lab node running containerd with our plugins in ``layout``."""

    layout: str
    dir: Path
    lab: Lab
    containerd: Containerd
    cri: Cri
    log: PluginLog
    bin_dir: Path  # ours in the layout, and Go's loopback (the CRI's lo network)
    ctr_conf: Path  # what ctr's go-cni reads as /etc/cni/net.d
    env: dict[str, str] = field(default_factory=dict)

    @property
    def leases(self) -> Path:
        return self.dir / "leases"

    def cache_entry(self, network: str, container: str) -> Path:
        return self.containerd.cache / "results" / f"{network}-{container}-eth0"

    def cached(self, network: str = "") -> list[str]:
        """libcni's cache entries (of ``network``'s attachments, if given; the CRI's lo network has some too)."""
        d = self.containerd.cache / "results"
        return sorted(p.name for p in d.iterdir() if p.name.startswith(network)) if d.exists() else []


@pytest.fixture(scope="module", params=SHIPPED)
def node(request: pytest.FixtureRequest) -> Iterator[Node]:
    if os.geteuid() != 0:
        pytest.skip("containerd needs root")
    needed_tools()
    runtime_client("cri")
    layout = request.param
    zygote = request.getfixturevalue("zygote") if layout == "zygote" else None
    d = Path(tempfile.mkdtemp(prefix=f"cmt-containerd-{layout}-"))  # short: the sockets' paths are limited
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, d, ignore_errors=True)
        lab = Lab()
        cleanup.callback(lab.close)
        log = PluginLog(d / "plugins.log")
        bin_dir = plugin_dir(layout, d / "bin", go=("loopback",))
        ctr_conf = d / "ctr-net.d"
        ctr_conf.mkdir()
        (ctr_conf / f"10-{CTR_NET}.conflist").write_text(
            json.dumps(network(CTR_NET, d, log, "10.77.0.20", "10.77.0.29"))
        )
        env = layout_env(layout, zygote)
        containerd = Containerd(
            d / "containerd", f"/run/netns/{lab.node}", bin_dir, network(CRI_NET, d, log, *CRI_POOL), env
        )

        def close() -> None:
            left = containerd.close()
            assert not left, f"containerd left {left}"

        cleanup.callback(close)
        cri = Cri(containerd.socket)
        cleanup.callback(cri.close)
        cri.wait_network_ready()
        yield Node(layout, d, lab, containerd, cri, log, bin_dir, ctr_conf, env)


@pytest.fixture
def cri_node(request: pytest.FixtureRequest, node: Node) -> Iterator[Node]:
    """The node, its pods all stopped and removed after the test; the zygote served every exec of ours."""
    if node.layout == "zygote":
        ServedPerLog(request, node.log)
    yield node
    for pod in node.cri.pods():
        node.cri.stop(pod)
        node.cri.remove(pod)
    assert lease_files(node.leases, CRI_NET) == {}
    assert node.cached() == []


def test_pods_get_addresses_that_reach_the_gateway_and_each_other(cri_node: Node) -> None:
    n = cri_node
    pods = {name: n.cri.run_pod(name, n.containerd.cgroup) for name in ("p1", "p2")}
    status = {name: n.cri.status(pod) for name, pod in pods.items()}
    assert sorted(ip for s in status.values() for ip in s.ips) == list(CRI_POOL)
    assert lease_files(n.leases, CRI_NET) == {status[name].ips[0]: f"{pod}\r\neth0" for name, pod in pods.items()}
    netns = {name: n.lab.attach(pods[name][:12], s.pid) for name, s in status.items()}
    for name, pod in pods.items():
        ip = status[name].ips[0]
        assert n.lab.links(netns[name])["eth0"]["linkinfo"]["info_kind"] == "macvlan"
        assert n.lab.addresses(netns[name], "eth0") == [f"{ip}/24"]
        assert n.lab.ping(netns[name], GATEWAY4)
        other = status["p2" if name == "p1" else "p1"].ips[0]
        assert n.lab.ping(netns[name], other)
        # libcni's cache keeps the result (the DEL's prevResult) and the CRI's CNI_ARGS
        entry = json.loads(n.cache_entry(CRI_NET, pod).read_text())
        assert entry["result"]["ips"] == [{"interface": 0, "address": f"{ip}/24", "gateway": GATEWAY4}]
        sandbox = entry["result"]["interfaces"][0]["sandbox"]
        assert sandbox.startswith(f"{n.containerd.dir}/state/io.containerd.grpc.v1.cri/netns/cni-")
        assert dict(entry["cniArgs"]) == {
            "IgnoreUnknown": "1",
            "K8S_POD_NAMESPACE": "cmt",
            "K8S_POD_NAME": name,
            "K8S_POD_INFRA_CONTAINER_ID": pod,
            "K8S_POD_UID": f"uid-{name}",
        }


def test_stop_releases_the_lease_and_removes_the_link_and_remove_deletes_again(cri_node: Node) -> None:
    n = cri_node
    pod = n.cri.run_pod("p1", n.containerd.cgroup)
    status = n.cri.status(pod)
    netns = n.lab.attach(pod[:12], status.pid)  # the namespace outlives the sandbox: we look into it after
    mark = n.log.size()
    n.cri.stop(pod)
    assert "eth0" not in n.lab.links(netns), "the DEL removed the macvlan"
    assert lease_files(n.leases, CRI_NET) == {}
    assert n.cached(CRI_NET) == []
    assert n.cri.status(pod).state == "SANDBOX_NOTREADY"
    n.cri.remove(pod)
    assert pod not in n.cri.pods()
    dels = re.findall(rf"(?:INFO|ERROR) \[\d+\] macvlan DEL container={pod} ifname=eth0: (.*)", n.log.text(mark))
    assert dels == ["ok", "ok"], "a DEL at stop, another at removal: both succeed"


def test_a_failed_add_leaves_nothing_behind_and_its_error_reaches_the_caller(cri_node: Node) -> None:
    import grpc

    n = cri_node
    pods = [n.cri.run_pod(name, n.containerd.cgroup) for name in ("p1", "p2")]
    links = set(n.lab.node_links())
    netns_dir = n.containerd.dir / "state" / "io.containerd.grpc.v1.cri" / "netns"
    namespaces = set(os.listdir(netns_dir))
    leases = lease_files(n.leases, CRI_NET)
    with pytest.raises(grpc.RpcError) as failed:
        n.cri.run_pod("p3", n.containerd.cgroup)
    details = failed.value.details()
    assert 'plugin type="macvlan" failed (add)' in details
    assert f"no IP addresses available in range set: {CRI_POOL[0]}-{CRI_POOL[1]}" in details
    assert sorted(n.cri.pods()) == sorted(pods)
    assert lease_files(n.leases, CRI_NET) == leases
    assert set(n.lab.node_links()) == links
    assert set(os.listdir(netns_dir)) == namespaces
    assert n.cached(CRI_NET) == sorted(f"{CRI_NET}-{pod}-eth0" for pod in pods)


# ---- go-cni's own path: ctr run --cni ----


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 30) -> str:
    """What ``proc`` printed up to ``marker``."""
    assert proc.stdout is not None
    fd, out = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in out:
        if not select.select([fd], [], [], max(0, deadline - time.monotonic()))[0]:
            raise AssertionError(f"no {marker!r} from ctr in {timeout} s: {out.decode()}")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise AssertionError(f"ctr ended (rc {proc.wait()}) before {marker!r}: {out.decode()}")
        out += chunk
    return out.decode()


# the container reports its address and whether the gateway answers, then waits for a line on stdin
SCRIPT = f"ip -o -4 addr show eth0; ping -c 1 -W 2 {GATEWAY4} >/dev/null && echo gateway-reached; echo ready; read x"


class Ctr:
    """Containers run by `ctr run --rm --cni`, each waiting for its end; all ended after the test."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.running: dict[str, subprocess.Popen[str]] = {}

    def start(self, name: str, bin_dir: Path) -> str:
        """Start container ``name`` with /opt/cni/bin showing ``bin_dir``; its address, once it reached the gateway."""
        proc = self.node.containerd.ctr_run_cni(name, self.node.ctr_conf, bin_dir, SCRIPT, self.node.env)
        self.running[name] = proc
        out = read_until(proc, "ready\n")
        assert "gateway-reached" in out, out
        match = re.search(r"inet (\S+)/24", out)
        assert match, out
        return match.group(1)

    def end(self, name: str) -> None:
        proc = self.running.pop(name)
        out, _ = proc.communicate("\n", timeout=60)
        assert proc.returncode == 0, out
        assert "network review" not in out, f"ctr's DEL failed: {out}"

    def close(self) -> None:
        for proc in self.running.values():
            try:
                proc.communicate("", timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def ctr(request: pytest.FixtureRequest, node: Node) -> Iterator[Ctr]:
    if node.layout == "zygote":
        ServedPerLog(request, node.log)
    runs = Ctr(node)
    yield runs
    runs.close()
    assert lease_files(node.leases, CTR_NET) == {}


def test_ctr_adds_in_runc_namespace_and_deletes_once_the_container_is_gone(ctr: Ctr) -> None:
    n = ctr.node
    mark = n.log.size()
    ip = ctr.start("c1", n.bin_dir)
    container = f"{CTR_NAMESPACE}-c1"  # go-cni's container id: ctr's namespace and the container's name
    assert lease_files(n.leases, CTR_NET) == {ip: f"{container}\r\neth0"}
    entry = json.loads(n.cache_entry(CTR_NET, container).read_text())
    assert re.fullmatch(r"/proc/\d+/ns/net", entry["result"]["interfaces"][0]["sandbox"]), entry["result"]
    ctr.end("c1")
    assert lease_files(n.leases, CTR_NET) == {}
    assert not n.cache_entry(CTR_NET, container).exists()
    assert set(n.lab.node_links()) == {"lo", "upl0"}
    log = n.log.text(mark)
    assert re.findall(rf"macvlan (ADD|DEL) container={container} ifname=eth0: ok", log) == ["ADD", "DEL"]
    assert "ipam ADD: host-local in-process (/opt/cni/bin/host-local is this build)" in log


def test_ctr_runs_our_macvlan_with_gos_host_local_from_usr_lib_cni_on_one_store(ctr: Ctr, tmp_path: Path) -> None:
    """/opt/cni/bin without our host-local: go-cni's CNI_PATH goes on to Debian's /usr/lib/cni, whose Go
    host-local then shares the lease store with ours."""
    n = ctr.node
    macvlan_only = tmp_path / "bin"
    macvlan_only.mkdir()
    (macvlan_only / "macvlan").symlink_to(n.bin_dir / "macvlan")
    mark = n.log.size()
    ours = ctr.start("ours", n.bin_dir)
    gos = ctr.start("gos", macvlan_only)
    assert int(gos.rsplit(".", 1)[1]) == int(ours.rsplit(".", 1)[1]) + 1, "Go's round robin goes on from ours"
    assert lease_files(n.leases, CTR_NET) == {
        ours: f"{CTR_NAMESPACE}-ours\r\neth0",
        gos: f"{CTR_NAMESPACE}-gos\r\neth0",
    }
    log = n.log.text(mark)
    assert "ipam ADD: exec /usr/lib/cni/host-local" in log
    assert "ipam ADD: host-local in-process (/opt/cni/bin/host-local is this build)" in log
    ctr.end("gos")
    assert lease_files(n.leases, CTR_NET) == {ours: f"{CTR_NAMESPACE}-ours\r\neth0"}
    ctr.end("ours")
