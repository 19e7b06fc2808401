"""The Kubernetes lease store against a real kube-apiserver + etcd (tests/support/kubeapi.py): the verbs and
every range feature of the disk store, one IPLease object per address, nodes that never share an address,
"try again later" within the deadline when the API server does not answer, GC and the sweep of leases
whose container or pod is gone, RBAC and TLS refusals that name their cause."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ipam.kube_client import Client, Refused, from_kubeconfig
from tests.support.configs import ipam_conf
from tests.support.kubeapi import NAMESPACE, KubeAPI, binaries, make_pki
from tests.support.layouts import dist_executable
from tests.support.runners import Runner, cni_env, json_bytes, run_exec

pytestmark = [pytest.mark.kubestore, pytest.mark.xdist_group("kubestore")]

LEASES = f"/apis/cni-macvlan.io/v1/namespaces/{NAMESPACE}/ipleases"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory):
    binaries()
    d = tmp_path_factory.mktemp("kubeapi")
    running = KubeAPI(d, make_pki(d / "pki"))
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def kube(api: KubeAPI):
    """The API server with no lease, before and after the test."""
    api.delete_leases()
    yield api
    if api.apiserver is not None:
        api.delete_leases()


def conf(api: KubeAPI, version: str = "1.0.0", name: str = "wide", user: str = "node", **ipam: Any) -> dict[str, Any]:
    store = {"type": "kubernetes", "kubeconfig": str(api.kubeconfigs[user]), "node": "node-a", "deadline": 5}
    store.update(ipam.pop("store", {}))
    subnet = None if "ranges" in ipam else "10.70.0.0/24"
    return ipam_conf(None, name, subnet, version, top={"type": "host-local"}, ipam={"store": store, **ipam})


def held(api: KubeAPI) -> dict[str, str]:
    """address -> container ID of every lease object."""
    return {o["spec"]["address"]: o["spec"]["containerID"] for o in api.leases()}


def address(outcome: Any, i: int = 0) -> str:
    return outcome.ok()["ips"][i]["address"]


def test_add_check_del_gc_status_through_the_api(host_local: Runner, kube: KubeAPI) -> None:
    a1 = address(host_local("ADD", conf(kube), container_id="c1"))
    a2 = address(host_local("ADD", conf(kube), container_id="c2"))
    assert (a1, a2) == ("10.70.0.2/24", "10.70.0.3/24")
    [o1] = [o for o in kube.leases() if o["spec"]["containerID"] == "c1"]
    assert o1["spec"] == {"network": "wide", "address": "10.70.0.2", "containerID": "c1", "ifname": "eth0",
                          "rangeSet": "0", "node": "node-a"}  # fmt: skip
    host_local("CHECK", conf(kube), container_id="c1").ok()
    # a repeated ADD (a runtime that lost the answer) gets the same lease, and nothing more
    assert address(host_local("ADD", conf(kube), container_id="c2")) == a2
    assert held(kube) == {"10.70.0.2": "c1", "10.70.0.3": "c2"}
    host_local("DEL", conf(kube), container_id="c1").ok()
    assert held(kube) == {"10.70.0.3": "c2"}
    assert host_local("CHECK", conf(kube), container_id="c1").error["code"] == 999
    host_local("DEL", conf(kube), container_id="c1").ok()  # twice is fine
    host_local("DEL", conf(kube), container_id="never-added").ok()  # unknown is fine
    # round robin goes on after the newest lease, not back to the freed one
    assert address(host_local("ADD", conf(kube), container_id="c3")).split("/")[0] not in ("10.70.0.2",)
    valid = [{"containerID": "c2", "ifname": "eth0"}]
    host_local("GC", {**conf(kube, "1.1.0"), "cni.dev/valid-attachments": valid}).ok()
    assert held(kube) == {"10.70.0.3": "c2"}
    host_local("STATUS", conf(kube, "1.1.0")).ok()


def test_every_range_feature_of_the_disk_store(host_local: Runner, kube: KubeAPI) -> None:
    """Several ranges in a set, dual stack, exclude, ipRange, a requested (static) address."""
    ranges = [
        [{"subnet": "10.71.0.0/29", "rangeStart": "10.71.0.5"}, {"subnet": "10.72.0.0/24", "ipRange": "10.72.0.64/30"}],
        [{"subnet": "fd70::/120"}],
    ]
    cfg = conf(kube, ranges=ranges, exclude=["10.71.0.6", "fd70::2"])
    got = host_local("ADD", cfg, container_id="c1").ok()["ips"]
    assert [ip["address"] for ip in got] == ["10.71.0.5/29", "fd70::3/120"]
    # the first range holds 5-6 (7 is broadcast), 6 excluded: the next range's ipRange (64-67 of a /24) follows
    assert address(host_local("ADD", cfg, container_id="c2")) == "10.72.0.64/24"
    static = host_local("ADD", cfg, container_id="c3", CNI_ARGS="IP=10.72.0.66").ok()["ips"]
    assert static[0]["address"] == "10.72.0.66/24"
    err = host_local("ADD", cfg, container_id="c4", CNI_ARGS="IP=10.72.0.66").error
    assert "requested IP address 10.72.0.66 is not available" in err["msg"]
    assert held(kube) == {"10.71.0.5": "c1", "fd70::3": "c1", "10.72.0.64": "c2", "fd70::4": "c2",
                          "10.72.0.66": "c3", "fd70::5": "c3"}  # fmt: skip
    for cid in ("c1", "c2", "c3", "c4"):
        host_local("DEL", cfg, container_id=cid).ok()
    assert held(kube) == {}


@pytest.mark.timeout(600)
def test_two_nodes_adding_at_once_never_share_an_address(kube: KubeAPI) -> None:
    """Two nodes (their own users: a client certificate, a service account's token) x 100 ADDs of
    the real executable, all at once: 200 distinct addresses, one lease object each; DEL of all
    leaves none."""
    exe = dist_executable("fast/host-local")
    nodes = [
        conf(kube, ranges=[[{"subnet": "10.73.0.0/22"}]], store={"node": "node-a", "deadline": 60}),
        conf(kube, user="robot", ranges=[[{"subnet": "10.73.0.0/22"}]], store={"node": "node-b", "deadline": 60}),
    ]
    jobs = [(n, f"n{n}c{i}") for n in (0, 1) for i in range(100)]
    start = threading.Barrier(len(jobs))

    def run(verb: str, job: tuple[int, str]) -> Any:
        node, cid = job
        if verb == "ADD":
            start.wait(timeout=60)
        return run_exec(exe, cni_env(verb, container_id=cid), json_bytes(nodes[node]), timeout=120)

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        outcomes = list(pool.map(lambda job: run("ADD", job), jobs))
    took = time.monotonic() - t0
    got = {cid: address(out).split("/")[0] for (_, cid), out in zip(jobs, outcomes, strict=True)}
    assert len(set(got.values())) == 200
    objects = kube.leases()
    assert {o["spec"]["address"]: o["spec"]["containerID"] for o in objects} == {a: c for c, a in got.items()}
    assert {o["spec"]["containerID"][:2]: o["spec"]["node"] for o in objects} == {"n0": "node-a", "n1": "node-b"}
    with ThreadPoolExecutor(max_workers=50) as pool:
        for out in pool.map(lambda job: run("DEL", job), jobs):
            out.ok()
    assert kube.leases() == []
    print(f"200 ADDs from two nodes at once: {took:.1f} s")


def test_gc_releases_a_dead_containers_lease_and_the_sweep_a_gone_pods(host_local: Runner, kube: KubeAPI) -> None:
    """c-dead died without DEL (not in the valid list): GC releases it. c-gone's pod was deleted
    (the runtime still lists it): the sweep releases it; c-live's pod exists: kept. Another node's
    leases are not this node's GC's to judge."""
    live, gone = kube.create_pod("live", "node-a"), kube.create_pod("gone", "node-a")

    def args(pod: dict[str, Any]) -> str:
        meta = pod["metadata"]
        return f"IgnoreUnknown=1;K8S_POD_NAMESPACE={meta['namespace']};K8S_POD_NAME={meta['name']};K8S_POD_UID={meta['uid']}"

    host_local("ADD", conf(kube), container_id="c-live", CNI_ARGS=args(live)).ok()
    host_local("ADD", conf(kube), container_id="c-gone", CNI_ARGS=args(gone)).ok()
    host_local("ADD", conf(kube), container_id="c-dead", CNI_ARGS=args(live)).ok()
    host_local("ADD", conf(kube, store={"node": "node-b"}), container_id="c-elsewhere").ok()
    kube.delete_pod("gone")
    valid = [{"containerID": c, "ifname": "eth0"} for c in ("c-live", "c-gone")]
    host_local("GC", {**conf(kube, "1.1.0"), "cni.dev/valid-attachments": valid}).ok()
    assert sorted(held(kube).values()) == ["c-elsewhere", "c-live"]
    kube.delete_pod("live")
    host_local("GC", {**conf(kube, "1.1.0", store={"sweep": False}), "cni.dev/valid-attachments": valid}).ok()
    assert sorted(held(kube).values()) == ["c-elsewhere", "c-live"], "sweep off: the valid list alone decides"


def test_the_plugins_user_may_do_only_what_the_store_needs(kube: KubeAPI, host_local: Runner) -> None:
    host_local("ADD", conf(kube), container_id="c1").ok()
    [lease] = kube.leases()
    for user in ("node", "robot"):
        client = Client(from_kubeconfig(str(kube.kubeconfigs[user])), 2, 5)
        client.request("GET", LEASES)
        refused = [
            ("PUT", f"{LEASES}/{lease['metadata']['name']}", lease),  # a lease never changes
            ("GET", "/api/v1/namespaces/kube-system/secrets", None),
            ("GET", "/apis/cni-macvlan.io/v1/namespaces/default/ipleases", None),  # only the store's namespace
            ("DELETE", "/api/v1/namespaces/default/pods/x", None),
        ]
        for method, path, body in refused:
            with pytest.raises(Refused, match="HTTP 403 Forbidden") as info:
                client.request(method, path, body)
            assert info.value.status == 403
    # the plugin in a namespace its user is not bound in: refused at once, saying what to apply
    err = host_local("ADD", conf(kube, store={"namespace": "default"}), container_id="c2").error
    assert err["code"] == 5 and "HTTP 403 Forbidden" in err["msg"] and "deploy/kubernetes-ipam.yaml" in err["msg"], err


def test_a_request_imports_no_idna_codec(kube: KubeAPI) -> None:
    """A request to an API server named by its address imports neither encodings.idna nor stringprep (about
    9 ms of every exec: getaddrinfo and wrap_socket encode a str host name with that codec)."""
    script = (
        "import sys; from ipam.kube_client import Client, from_kubeconfig; "
        f"Client(from_kubeconfig({str(kube.kubeconfigs['node'])!r}), 2, 5).request('GET', {LEASES!r}); "
        "print(sorted(m for m in sys.modules if 'idna' in m or m == 'stringprep'))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_an_api_server_we_must_not_trust_is_refused_at_once(host_local: Runner, kube: KubeAPI) -> None:
    kubeconfig = kube.write_kubeconfig(
        "wrong-ca",
        {"client-certificate": str(kube.pki["node"]), "client-key": str(kube.pki["node-key"])},
        ca="other-ca",
    )
    cfg = conf(kube, store={"kubeconfig": str(kubeconfig), "deadline": 5})
    start = time.monotonic()
    err = host_local("ADD", cfg, container_id="c1").error
    assert time.monotonic() - start < 2.5, "refused at once, not retried until the deadline"
    assert err["code"] == 5 and "certificate verify failed" in err["msg"], err
    assert held(kube) == {}


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ({"namespace": "Kube_System"}, "ipam.store.namespace must be a Kubernetes name"),
        ({"kubeconfig": "relative/config"}, "must be an absolute path"),
        ({"sweep": "yes"}, "ipam.store.sweep must be true or false"),
        ({"deadline": 0}, "ipam.store.deadline must be a number"),
    ],
)
def test_store_config_errors_name_the_key(host_local: Runner, kube: KubeAPI, store: dict, message: str) -> None:
    err = host_local("ADD", conf(kube, store=store)).error
    assert err["code"] == 7 and message in err["msg"], err


def test_a_stopped_api_server_means_try_again_later_within_the_deadline(host_local: Runner, kube: KubeAPI) -> None:
    """SIGSTOP: connections are accepted (the kernel's backlog) and never answered. The ADD fails with
    code 11 within its deadline; a request already sent may be applied when the server resumes (as
    any write that timed out), so the runtime's DEL after a failed ADD cleans it up."""
    host_local("ADD", conf(kube), container_id="c1").ok()
    assert kube.apiserver is not None
    kube.apiserver.send_signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        err = host_local("ADD", conf(kube, store={"deadline": 1, "timeout": 0.3}), container_id="c2").error
        took = time.monotonic() - start
    finally:
        kube.apiserver.send_signal(signal.SIGCONT)
    assert err["code"] == 11 and "Kubernetes API lease store is unavailable" in err["msg"], err
    assert took < 1 + 1.5, f"ADD took {took:.1f} s with a deadline of 1 s"
    host_local("DEL", conf(kube), container_id="c2").ok()
    assert held(kube) == {"10.70.0.2": "c1"}


def test_a_killed_api_server_means_try_again_later_and_nothing_changes(host_local: Runner, kube: KubeAPI) -> None:
    host_local("ADD", conf(kube), container_id="c1").ok()
    kube.stop()
    try:
        short = conf(kube, store={"deadline": 1})
        start = time.monotonic()
        err = host_local("ADD", short, container_id="c2").error
        assert err["code"] == 11 and kube.server in err["msg"], err
        assert time.monotonic() - start < 2.5
        assert host_local("DEL", short, container_id="c1").error["code"] == 11
        assert host_local("STATUS", conf(kube, "1.1.0", store={"deadline": 1})).error["code"] == 50
    finally:
        kube.start()
        kube.wait_ready()
    assert held(kube) == {"10.70.0.2": "c1"}, "the failed ADD and DEL changed nothing"
    assert address(host_local("ADD", conf(kube), container_id="c2")) == "10.70.0.3/24"
    host_local("STATUS", conf(kube, "1.1.0")).ok()
