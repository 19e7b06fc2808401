"""Kubernetes pods through Multus, for real: a one-node cluster of plain processes (tests/support/kube.py:
etcd, kube-apiserver with TLS and RBAC, a kubelet registered as node1 on a private containerd) whose CNI is
Multus's thin plugin, with a default network (upstream's bridge with our host-local) and
NetworkAttachmentDefinitions for our macvlan on the lab's upl0 (a veth whose peer, in the lab's upstream
namespace, plays the network and its gateway 10.77.0.1).

Each test asks the API for what a user would (pods with the networks annotation, a NAD, a DaemonSet) and
asserts on what the node shows: the pod's interfaces and addresses (in its sandbox's namespace), pings,
our lease store, the pod's network-status annotation, its events. The cluster is the module's; the
DaemonSet's test comes last (it replaces the plugins in the node's CNI bin dir with the release's).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.containerd import IMAGE
from tests.support.kube import NODE, Cluster, path_of, wait_for
from tests.support.lab import GATEWAY4, SUBNET4, Lab, sh
from tests.support.layouts import DIST, needed, plugin_dir

pytestmark = [pytest.mark.kube, pytest.mark.netns]

NAD = "lab-macvlan"
POOL = ("10.77.0.100", "10.77.0.199")
NETWORKS = "k8s.v1.cni.cncf.io/networks"
STATUS = "k8s.v1.cni.cncf.io/network-status"
LEASES_NS = "kube-system"  # where the kubernetes store keeps its IPLease objects (its default)


def macvlan_nad(name: str, ipam: dict[str, Any] | None = None, **entry: Any) -> dict[str, Any]:
    """A NetworkAttachmentDefinition for our macvlan on upl0 with our host-local on POOL (``entry`` keys
    override the macvlan entry's, ``ipam`` its IPAM section)."""
    config = {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "macvlan",
                "master": "upl0",
                "mode": "bridge",
                "capabilities": {"ips": True, "mac": True},
                "ipam": ipam
                or {
                    "type": "host-local",
                    "ranges": [[{"subnet": SUBNET4, "rangeStart": POOL[0], "rangeEnd": POOL[1], "gateway": GATEWAY4}]],
                },
                **entry,
            }
        ],
    }
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"config": json.dumps(config)},
    }


def pod_manifest(name: str, networks: str | list[dict[str, Any]] | None = None) -> dict[str, Any]:
    annotations = (
        {} if networks is None else {NETWORKS: networks if isinstance(networks, str) else json.dumps(networks)}
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {"name": "main", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "1000000"]}
            ],
        },
    }


class Node:
    """The cluster and what the tests read off its node."""

    def __init__(self, cluster: Cluster, lab: Lab, d: Path) -> None:
        self.cluster = cluster
        self.api = cluster.api
        self.lab = lab
        self.dir = d

    def leases(self, network: str | None = None) -> list[str]:
        """The addresses our disk store holds for ``network`` (all networks when None) in its default dataDir,
        /var/lib/cni/networks."""
        root = self.cluster.cni_cache / "networks"
        dirs = [root / network] if network else (sorted(root.iterdir()) if root.is_dir() else [])
        return sorted(
            p.name
            for d in dirs
            if d.is_dir()
            for p in d.iterdir()
            if not p.name.startswith(("last_reserved_ip", "lock", "."))
        )

    def in_pod(self, name: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        netns = self.cluster.pod_netns(name)
        proc = subprocess.run(["nsenter", f"--net={netns}", *argv], capture_output=True, text=True, timeout=30)
        if check and proc.returncode != 0:
            raise AssertionError(f"in pod {name}: {' '.join(argv)}: {proc.returncode}\n{proc.stdout}{proc.stderr}")
        return proc

    def link(self, pod: str, ifname: str = "net1") -> dict[str, Any]:
        """``ip -j addr`` of ``ifname`` in the pod's namespace."""
        out = self.in_pod(pod, "ip", "-j", "addr", "show", "dev", ifname).stdout
        return dict(json.loads(out)[0])

    def address(self, pod: str, ifname: str = "net1") -> str:
        v4 = [a for a in self.link(pod, ifname)["addr_info"] if a["family"] == "inet"]
        assert len(v4) == 1, f"{pod} {ifname}: {v4}"
        return f"{v4[0]['local']}/{v4[0]['prefixlen']}"

    def ping(self, pod: str, target: str) -> None:
        self.in_pod(pod, "ping", "-c", "1", "-W", "2", "-I", "net1", target)

    def network_status(self, pod: str) -> list[dict[str, Any]]:
        return list(json.loads(self.cluster.pod(pod)["metadata"]["annotations"][STATUS]))

    def start_pods(self, *manifests: dict[str, Any], timeout: float = 120) -> None:
        for m in manifests:
            self.cluster.create_pod(m)
        for m in manifests:
            self.cluster.wait_running(m["metadata"]["name"], timeout=timeout)

    def node_links(self) -> list[str]:
        """The node namespace's links (besides the bridge's veths to the default network's pods)."""
        out = json.loads(sh("ip", "-n", self.lab.node, "-j", "link", "show").stdout)
        return sorted(link["ifname"] for link in out if not link["ifname"].startswith("veth"))


@contextlib.contextmanager
def running_node(multus: str) -> Iterator[Node]:
    """A cluster whose CNI is Multus (``thin``: its plugin; ``thick``: its shim and daemon), with upstream's
    bridge and loopback (the default network) and our plugins exec'd (the fast layout) in its CNI bin dir."""
    if os.geteuid() != 0:
        pytest.skip("a kubelet needs root")
    d = Path(tempfile.mkdtemp(prefix="cmt-kube-"))  # short: the sockets' paths are limited
    lab = Lab()
    cluster: Cluster | None = None
    try:
        cluster = Cluster(d, lab, multus)
        shutil.copy2(cluster.bins["multus" if multus == "thin" else "multus-shim"], cluster.cni_bin)
        plugin_dir("fast", cluster.cni_bin, go=("bridge", "loopback"))
        yield Node(cluster, lab, d)
    finally:
        left = cluster.close() if cluster is not None else []
        lab.close()
        shutil.rmtree(d, ignore_errors=True)
        assert not left, f"the cluster left {left}"


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    with running_node("thin") as n:
        yield n


@pytest.fixture
def pods(node: Node) -> Iterator[Node]:
    """The node, with every pod the test made deleted after it (through the API, as a user would) and every
    lease of ours released by the DELs that runs."""
    yield node
    for ds in node.api.get("/apis/apps/v1/namespaces/kube-system/daemonsets")["items"]:
        node.api.delete(f"/apis/apps/v1/namespaces/kube-system/daemonsets/{ds['metadata']['name']}")
    for namespace in ("default", "kube-system"):
        for pod in node.api.get(f"/api/v1/namespaces/{namespace}/pods")["items"]:
            node.cluster.delete_pod(pod["metadata"]["name"], namespace)
    for nad in node.api.get("/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions")["items"]:
        node.api.delete(path_of("NetworkAttachmentDefinition", nad["metadata"]["name"]))
    assert node.leases() == [], "a deleted pod's lease was not released"


def in_pool(address: str) -> bool:
    ip = ipaddress.ip_interface(address)
    return str(ip.network) == SUBNET4 and POOL[0] <= str(ip.ip) <= POOL[1] and len(str(ip.ip)) == len(POOL[0])


def test_two_pods_attach_and_ping(pods: Node) -> None:
    n = pods
    n.api.apply(macvlan_nad(NAD))
    n.start_pods(pod_manifest("a", NAD), pod_manifest("b", NAD))
    a, b = n.address("a"), n.address("b")
    assert in_pool(a) and in_pool(b) and a != b, (a, b)
    assert sorted(n.leases()) == sorted(x.split("/")[0] for x in (a, b))
    link = n.link("a")
    assert link.get("linkinfo", {}).get("info_kind") in (None, "macvlan")
    details = json.loads(n.in_pod("a", "ip", "-d", "-j", "link", "show", "dev", "net1").stdout)[0]
    assert details["linkinfo"]["info_kind"] == "macvlan" and details["linkinfo"]["info_data"]["mode"] == "bridge"
    n.ping("a", b.split("/")[0])
    n.ping("b", a.split("/")[0])
    n.ping("a", GATEWAY4)
    # the default network is there too (eth0 from the bridge), and Multus reports both
    status = n.network_status("a")
    ours = [s for s in status if s["name"] == f"default/{NAD}"]
    assert len(ours) == 1, status
    assert ours[0]["interface"] == "net1" and ours[0]["ips"] == [a.split("/")[0]], ours
    assert ours[0]["mac"] == link["address"], (ours, link["address"])
    assert any(s.get("default") for s in status), status


def test_json_annotation_gives_ips_and_mac(pods: Node) -> None:
    n = pods
    n.api.apply(macvlan_nad(NAD))
    want_ip, want_mac = "10.77.0.150/24", "c2:11:22:33:44:55"
    n.start_pods(pod_manifest("fixed", [{"name": NAD, "ips": [want_ip], "mac": want_mac}]))
    assert n.address("fixed") == want_ip
    assert n.link("fixed")["address"] == want_mac
    assert n.leases() == ["10.77.0.150"]
    n.ping("fixed", GATEWAY4)
    ours = [s for s in n.network_status("fixed") if s["name"] == f"default/{NAD}"]
    assert ours and ours[0]["ips"] == ["10.77.0.150"] and ours[0]["mac"] == want_mac, ours


def test_deleting_a_pod_runs_our_del(pods: Node) -> None:
    n = pods
    n.api.apply(macvlan_nad(NAD, logFile=str(n.dir / "plugins.log"), logLevel="debug"))
    n.start_pods(pod_manifest("gone", NAD), pod_manifest("stays", NAD))
    stays = n.address("stays").split("/")[0]
    assert in_pool(n.address("gone"))
    sandbox = [s["id"] for s in n.cluster.sandboxes("gone")]
    assert len(sandbox) == 1
    assert n.cluster.cached_results(sandbox[0]), "libcni's cache of the ADD (what delete_pod waits on)"
    netns = n.cluster.pod_netns("gone")
    ino = os.stat(netns).st_ino
    n.cluster.delete_pod("gone")
    assert n.leases() == [stays]
    log = (n.dir / "plugins.log").read_text()
    assert "DEL" in log and sandbox[0] in log, log[-2000:]
    # the pod's namespace, and its macvlan with it, are gone from the node
    assert not any(os.stat(f"/proc/{p}/ns/net").st_ino == ino for p in _pids()), "the pod's netns is still held"
    n.ping("stays", GATEWAY4)


def _pids() -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                os.stat(p / "ns" / "net")
                out.append(int(p.name))
            except OSError:
                pass
    return out


def test_kubelet_restart_leaves_pods_attached(pods: Node) -> None:
    n = pods
    n.api.apply(macvlan_nad(NAD))
    n.start_pods(pod_manifest("r1", NAD), pod_manifest("r2", NAD))
    before = {p: (n.address(p), n.link(p)["address"], n.cluster.sandboxes(p)[0]["id"]) for p in ("r1", "r2")}
    leases = n.leases()
    n.cluster.restart_kubelet()
    time.sleep(6)  # a few of its sync loops (syncFrequency 5 s)
    for p in ("r1", "r2"):
        n.cluster.wait_running(p)
        assert (n.address(p), n.link(p)["address"], n.cluster.sandboxes(p)[0]["id"]) == before[p]
        assert len(n.cluster.sandboxes(p)) == 1
    assert n.leases() == leases
    n.ping("r1", before["r2"][0].split("/")[0])


def test_twenty_pods_at_once_get_distinct_addresses(pods: Node) -> None:
    n = pods
    n.api.apply(macvlan_nad(NAD))
    names = [f"many{i}" for i in range(20)]
    start = time.monotonic()
    n.start_pods(*(pod_manifest(name, NAD) for name in names), timeout=240)
    took = time.monotonic() - start
    addresses = [n.address(name) for name in names]
    assert len(set(addresses)) == 20 and all(in_pool(a) for a in addresses), addresses
    assert sorted(n.leases()) == sorted(a.split("/")[0] for a in addresses)
    print(f"20 pods running in {took:.1f} s")
    for name in names:
        n.api.delete(path_of("Pod", name), grace=0)
    wait_for("the 20 pods' leases to be released", lambda: n.leases() == [], 180, 0.5)
    wait_for("the 20 sandboxes to be stopped", lambda: not n.cluster.ready(), 120, 0.5)
    wait_for("the 20 pods' DELs", lambda: not n.cluster.cached_results(""), 120, 0.5)


def events_text(n: Node, pod: str) -> str:
    return "\n".join(e.get("message", "") for e in n.cluster.events(pod))


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"master": "nosuch0"}, 'master "nosuch0"'),
        (
            {"ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET4, "rangeStart": "10.78.0.5"}]]}},
            "10.78.0.5",
        ),
    ],
    ids=["bad-master", "range-outside-subnet"],
)
def test_a_refused_nad_shows_our_error_then_a_fixed_one_starts_the_pod(
    pods: Node, bad: dict[str, Any], words: str
) -> None:
    n = pods
    ipam = bad.pop("ipam", None)
    log = n.dir / "refused.log"
    log.unlink(missing_ok=True)
    nad = macvlan_nad(NAD, ipam, logFile=str(log), logLevel="debug", **bad)
    n.api.apply(nad)
    links = n.node_links()
    n.cluster.create_pod(pod_manifest("refused", NAD))

    def refused() -> str | None:
        text = events_text(n, "refused")
        return text if words in text else None

    text = wait_for("our error in the pod's events", refused, 90, 0.5)
    pod = n.cluster.pod("refused")
    waiting = [c["state"].get("waiting", {}) for c in pod["status"].get("containerStatuses", [])]
    assert pod["status"]["phase"] == "Pending" and all(w.get("reason") == "ContainerCreating" for w in waiting), pod
    assert "FailedCreatePodSandBox" in {e.get("reason") for e in n.cluster.events("refused")}
    code = _code_of(log, words)
    assert code == 7, f"our error's code in our log: {code}"
    print(f"the pod's event: {text.splitlines()[-1]}")
    # nothing on the node: no lease, no link, no sandbox left running
    assert n.leases() == [] and n.node_links() == links
    # fixed: the kubelet's next try starts it
    n.api.patch(path_of("NetworkAttachmentDefinition", NAD), {"spec": macvlan_nad(NAD)["spec"]})
    n.cluster.wait_running("refused", timeout=120)
    assert in_pool(n.address("refused"))


def _code_of(log: Path, words: str) -> int | None:
    """The code of our error naming ``words``, from our plugins' log (the NAD's logFile). Multus v4.3.0 folds
    a delegate's error JSON into its own message ("plugin type=... failed (add): <msg>"), so the code does not
    reach the pod's events or Multus's log; our log has it as ``code N: <msg>``."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if words in line and "code " in line:
            tail = line[line.index("code ") + 5 :]
            digits = tail.split(":", 1)[0]
            if digits.isdigit():
                return int(digits)
    return None


def test_multus_thick_daemon_attaches_through_our_plugins() -> None:
    """Multus's thick mode, on a cluster of its own: the shim is the node's CNI, the daemon (with a service
    account's token, as in its pod) calls our plugins."""
    with running_node("thick") as n:
        n.api.apply(macvlan_nad(NAD))
        n.start_pods(pod_manifest("t1", NAD), pod_manifest("t2", NAD))
        t1, t2 = n.address("t1"), n.address("t2")
        assert in_pool(t1) and in_pool(t2) and t1 != t2, (t1, t2)
        n.ping("t1", t2.split("/")[0])
        n.ping("t2", GATEWAY4)
        ours = [s for s in n.network_status("t1") if s["name"] == f"default/{NAD}"]
        assert ours and ours[0]["interface"] == "net1" and ours[0]["ips"] == [t1.split("/")[0]], ours
        assert "multus-shim" in (n.cluster.cni_conf / "00-multus.conf").read_text()
        n.cluster.delete_pod("t1")
        assert n.leases() == [t2.split("/")[0]]
        n.cluster.delete_pod("t2")
        assert n.leases() == []


# ---- leases in the cluster's API (issue 24's store) ----


def test_pods_through_a_nad_whose_ipam_is_the_kubernetes_store(pods: Node) -> None:
    n = pods
    kubeconfig = n.cluster.ipam_kubeconfig()
    store = {"type": "kubernetes", "kubeconfig": str(kubeconfig), "node": NODE}
    ipam = {
        "type": "host-local",
        "ranges": [[{"subnet": SUBNET4, "rangeStart": POOL[0], "rangeEnd": POOL[1], "gateway": GATEWAY4}]],
        "store": store,
    }
    n.api.apply(macvlan_nad(NAD, ipam))
    n.start_pods(pod_manifest("k1", NAD), pod_manifest("k2", NAD))
    k1, k2 = n.address("k1"), n.address("k2")
    assert in_pool(k1) and in_pool(k2) and k1 != k2
    leases = n.api.get(f"/apis/cni-macvlan.io/v1/namespaces/{LEASES_NS}/ipleases")["items"]
    assert sorted(lease["spec"]["address"] for lease in leases) == sorted(x.split("/")[0] for x in (k1, k2))
    assert {lease["spec"]["node"] for lease in leases} == {NODE}
    assert n.leases() == []  # nothing in the disk store
    n.ping("k1", k2.split("/")[0])
    n.cluster.delete_pod("k1")
    left = n.api.get(f"/apis/cni-macvlan.io/v1/namespaces/{LEASES_NS}/ipleases")["items"]
    assert [lease["spec"]["address"] for lease in left] == [k2.split("/")[0]]
    n.cluster.delete_pod("k2")
    assert n.api.get(f"/apis/cni-macvlan.io/v1/namespaces/{LEASES_NS}/ipleases")["items"] == []


# ---- the DaemonSet as an operator applies it (last: it replaces the node's plugins) ----


def release_files() -> tuple[Path, Path]:
    how = "run `make release` (the OCI archive and the rendered DaemonSet)"
    archives = sorted(DIST.glob("cni-macvlan-*-linux-*.oci.tar"))
    daemonsets = sorted(DIST.glob("cni-macvlan-*-daemonset.yaml"))
    if not archives or not daemonsets:
        needed(DIST / "cni-macvlan-VERSION-linux-ARCH.oci.tar", how)
    return archives[-1], daemonsets[-1]


def test_the_daemonset_installs_and_serves(pods: Node) -> None:
    n = pods
    archive, rendered = release_files()
    n.cluster.import_archive(archive)
    daemonset = yaml.safe_load(rendered.read_text())
    # as an operator checking the zygote would: --verbose logs each request it serves (" -> pid N")
    zygote = next(c for c in daemonset["spec"]["template"]["spec"]["containers"] if c["name"] == "zygote")
    zygote["args" if "args" in zygote else "command"].append("--verbose")
    n.api.apply(daemonset)
    # what the DaemonSet controller would do: its pod for node1, from the template, owned by the DaemonSet
    ds = n.api.get(f"/apis/apps/v1/namespaces/kube-system/daemonsets/{daemonset['metadata']['name']}")
    template = ds["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            **template["metadata"],
            "name": "cni-macvlan-node1",
            "namespace": "kube-system",
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "name": ds["metadata"]["name"],
                    "uid": ds["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": template["spec"],
    }
    n.cluster.create_pod(pod)
    n.cluster.wait_running("cni-macvlan-node1", "kube-system", timeout=120)
    # the init container installed into the node's CNI bin dir: our names lead into cni-macvlan.d/current
    for name in ("macvlan", "host-local"):
        target = os.readlink(n.cluster.cni_bin / name)
        assert "cni-macvlan.d/current" in target, (name, target)
    assert (n.cluster.cni_bin / "cni-macvlan.d" / "replaced").is_dir()
    sock = n.cluster.zygote_dir / "zygote.sock"
    wait_for("the zygote's socket", sock.exists, 30)
    zlog = _container_log(n, "zygote")
    served_before = zlog().count(" -> pid ")
    nad = deploy_nad()
    n.api.apply(nad)
    name = nad["metadata"]["name"]
    n.start_pods(pod_manifest("z1", name), pod_manifest("z2", name))
    z1, z2 = n.address("z1"), n.address("z2")
    assert in_pool(z1) and in_pool(z2) and z1 != z2
    n.ping("z1", z2.split("/")[0])
    served = zlog().count(" -> pid ") - served_before
    assert served >= 2, f"the zygote served {served} execs:\n{zlog()[-2000:]}"
    # the DaemonSet deleted (and its pod, as the garbage collector would): the installed plugins go on exec'd
    n.api.delete(f"/apis/apps/v1/namespaces/kube-system/daemonsets/{ds['metadata']['name']}")
    n.cluster.delete_pod("cni-macvlan-node1", "kube-system")
    n.cluster.delete_pod("z1")
    assert n.leases(name) == [z2.split("/")[0]]
    n.start_pods(pod_manifest("z3", name))
    assert in_pool(n.address("z3"))
    n.ping("z3", z2.split("/")[0])
    assert "cni-macvlan.d/current" in os.readlink(n.cluster.cni_bin / "macvlan")


def deploy_nad() -> dict[str, Any]:
    """deploy/network-attachment-definition.yaml as shipped, but on the lab's network: its master eth0.50 is
    the lab's upl0 (this kernel has no 802.1Q; the VM lane tests VLAN parents) and its range the lab's."""
    nad = yaml.safe_load(
        (Path(__file__).resolve().parent.parent / "deploy/network-attachment-definition.yaml").read_text()
    )
    config = json.loads(nad["spec"]["config"])
    entry = config["plugins"][0]
    assert entry["master"] == "eth0.50" and entry["capabilities"] == {"ips": True, "mac": True}, entry
    entry["master"] = "upl0"
    entry["ipam"]["ranges"] = [[{"subnet": SUBNET4, "rangeStart": POOL[0], "rangeEnd": POOL[1], "gateway": GATEWAY4}]]
    nad["spec"]["config"] = json.dumps(config)
    nad["metadata"]["namespace"] = "default"
    return dict(nad)


def _container_log(n: Node, container: str) -> Any:
    def read() -> str:
        logs = n.cluster.dir / "var-log-pods"
        return "".join(p.read_text(errors="replace") for p in logs.glob(f"kube-system_*/{container}/*.log"))

    return read


def test_nothing_of_ours_left_in_the_api(node: Node) -> None:
    """(runs after the others) every pod's DEL ran: no pod, running sandbox or lease left."""
    assert node.api.get("/api/v1/namespaces/default/pods")["items"] == []
    assert not node.cluster.ready()
    assert node.leases() == []
