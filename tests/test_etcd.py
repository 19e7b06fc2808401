"""The etcd lease store against real etcd servers (tests/support/etcd.py): the same verbs as the disk store,
reservations atomic and idempotent across nodes, and a clear "try again later" when etcd can't answer."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ipam.etcd import EtcdStore
from ipam.etcd_client import Client
from tests.support.configs import ipam_conf
from tests.support.etcd import ETCD, EtcdCluster, make_pki
from tests.support.layouts import dist_executable, needed
from tests.support.runners import Runner, cni_env, json_bytes, run_exec

pytestmark = pytest.mark.etcd


def cluster(tmp_path: Path, members: int):
    needed(ETCD, "run `tools/packages.sh install test-host` (etcd-server)")
    running = EtcdCluster(tmp_path, members)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def etcd(tmp_path: Path):
    yield from cluster(tmp_path, 1)


@pytest.fixture
def etcd3(tmp_path: Path):
    yield from cluster(tmp_path, 3)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    needed("openssl", "run `tools/packages.sh install test-host` (openssl)")
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def etcd_tls(tmp_path: Path, pki: dict[str, Path]):
    """One member serving https only to clients with a certificate of the test CA."""
    needed(ETCD, "run `tools/packages.sh install test-host` (etcd-server)")
    running = EtcdCluster(tmp_path, 1, pki)
    try:
        yield running
    finally:
        running.close()


def conf(etcd: EtcdCluster, version: str = "1.0.0", name: str = "shared", **ipam: Any) -> dict[str, Any]:
    store = {"type": "etcd", "endpoints": etcd.endpoints, "prefix": "/t", "timeout": 0.3, "deadline": 2}
    store.update(ipam.pop("store", {}))
    return ipam_conf(None, name, "10.60.0.0/24", version, top={"type": "host-local"}, ipam={"store": store, **ipam})


def leases(etcd: EtcdCluster, network: str = "shared") -> dict[str, str]:
    prefix = f"/t/{network}/ip/".encode()
    return {k[len(prefix) :].decode(): v.decode() for k, v in etcd.keys(prefix).items()}


def index(etcd: EtcdCluster, network: str = "shared") -> set[str]:
    prefix = f"/t/{network}/att/".encode()
    return {k[len(prefix) :].decode() for k in etcd.keys(prefix)}


def test_add_check_del_gc_status_on_etcd(host_local: Runner, etcd: EtcdCluster) -> None:
    a1 = host_local("ADD", conf(etcd), container_id="c1").ok()["ips"][0]["address"]
    a2 = host_local("ADD", conf(etcd), container_id="c2").ok()["ips"][0]["address"]
    assert (a1, a2) == ("10.60.0.2/24", "10.60.0.3/24")
    assert leases(etcd) == {"10.60.0.2": "c1\r\neth0", "10.60.0.3": "c2\r\neth0"}
    assert index(etcd) == {"c1/eth0/10.60.0.2", "c2/eth0/10.60.0.3"}
    assert etcd.keys(b"/t/shared/last_reserved_ip.0") == {b"/t/shared/last_reserved_ip.0": b"10.60.0.3"}

    host_local("CHECK", conf(etcd), container_id="c1").ok()
    err = host_local("ADD", conf(etcd), container_id="c2").error
    assert "10.60.0.3 has been allocated to c2, duplicate allocation is not allowed" in err["msg"]
    host_local("DEL", conf(etcd), container_id="c1").ok()
    assert leases(etcd) == {"10.60.0.3": "c2\r\neth0"} and index(etcd) == {"c2/eth0/10.60.0.3"}
    assert host_local("CHECK", conf(etcd), container_id="c1").error["code"] == 999
    host_local("DEL", conf(etcd), container_id="c1").ok()  # twice is fine

    # round robin goes on from the last reserved address, across whoever reserved it
    assert host_local("ADD", conf(etcd), container_id="c3").ok()["ips"][0]["address"] == "10.60.0.4/24"
    valid = [{"containerID": "c2", "ifname": "eth0"}]
    host_local("GC", {**conf(etcd, "1.1.0"), "cni.dev/valid-attachments": valid}).ok()
    assert leases(etcd) == {"10.60.0.3": "c2\r\neth0"} and index(etcd) == {"c2/eth0/10.60.0.3"}
    host_local("STATUS", conf(etcd, "1.1.0")).ok()


def test_requested_addresses_and_exclusions_hold_on_etcd(host_local: Runner, etcd: EtcdCluster) -> None:
    cfg = conf(etcd, exclude=["10.60.0.2/31"])
    assert host_local("ADD", cfg, container_id="c1").ok()["ips"][0]["address"] == "10.60.0.4/24"
    got = host_local("ADD", cfg, container_id="c2", CNI_ARGS="IP=10.60.0.9").ok()
    assert got["ips"][0]["address"] == "10.60.0.9/24"
    err = host_local("ADD", cfg, container_id="c3", CNI_ARGS="IP=10.60.0.9").error
    assert "requested IP address 10.60.0.9 is not available" in err["msg"]
    assert set(leases(etcd)) == {"10.60.0.4", "10.60.0.9"}


def test_a_reservation_is_idempotent_and_exclusive(etcd: EtcdCluster) -> None:
    """A retried reservation (its first try timed out, yet was applied) finds the address held by
    the same attachment: success. Anyone else: refused. A release by a late retry frees only its own."""
    store = EtcdStore(etcd.client(), "/t", "unit")
    assert store.reserve("c1", "eth0", 4, 0x0A3C0005, "0") is True
    assert store.reserve("c1", "eth0", 4, 0x0A3C0005, "0") is True
    assert store.reserve("c2", "eth0", 4, 0x0A3C0005, "0") is False
    assert store.reserve("c1", "eth1", 4, 0x0A3C0005, "0") is False
    store.release_by_attachment("c2", "eth0")  # holds nothing: frees nothing
    assert [lease.container_id for lease in store.leases()] == ["c1"]
    assert [lease.value for lease in store.get_by_attachment("c1", "eth0")] == [0x0A3C0005]
    store.release_by_attachment("c1", "eth0")
    assert store.leases() == [] and etcd.keys(b"/t/unit/att/") == {}


def test_etcd_down_means_try_again_later_and_nothing_changes(host_local: Runner, etcd: EtcdCluster) -> None:
    host_local("ADD", conf(etcd), container_id="c1").ok()
    etcd.kill(0)
    start = time.monotonic()
    err = host_local("ADD", conf(etcd, store={"deadline": 1}), container_id="c2").error
    took = time.monotonic() - start
    assert err["code"] == 11, err
    assert "etcd lease store is unavailable" in err["msg"] and etcd.endpoints[0] in err["msg"]
    assert took < 1 + 1.5, f"ADD took {took:.1f} s with a deadline of 1 s"
    assert host_local("DEL", conf(etcd, store={"deadline": 1}), container_id="c1").error["code"] == 11
    assert host_local("STATUS", conf(etcd, "1.1.0", store={"deadline": 1})).error["code"] == 50

    etcd.start(0)
    etcd.wait_ready()
    assert leases(etcd) == {"10.60.0.2": "c1\r\neth0"}, "the failed ADD and DEL changed nothing"
    assert host_local("ADD", conf(etcd), container_id="c2").ok()["ips"][0]["address"] == "10.60.0.3/24"
    host_local("STATUS", conf(etcd, "1.1.0")).ok()


@pytest.mark.parametrize(
    "store, message",
    [
        ({"type": "zookeeper"}, 'ipam.store.type "zookeeper" is unknown'),
        ({"type": "etcd"}, "ipam.store.endpoints must be a non-empty list of URLs"),
        ({"type": "etcd", "endpoints": ["127.0.0.1:2379"]}, "an endpoint is http://host:port"),
        ({"type": "etcd", "endpoints": ["http://a:1"], "prefix": "x"}, "ipam.store.prefix must be a key prefix"),
        ({"type": "etcd", "endpoints": ["http://a:1"], "deadline": 0}, "ipam.store.deadline must be a number"),
        ({"type": "etcd", "endpoints": ["http://a:1"], "tls": {"certFile": "/c"}}, "no endpoint is https://"),
        ("etcd", "ipam.store must be an object"),
    ],
)
def test_store_config_errors_name_the_key(host_local: Runner, store: Any, message: str) -> None:
    ipam: dict[str, Any] = {"type": "host-local", "subnet": "10.60.0.0/24", "store": store}
    config = {"cniVersion": "1.0.0", "name": "n", "ipam": ipam}
    err = host_local("ADD", config).error
    assert err["code"] == 7 and message in err["msg"], err


@pytest.mark.netns
def test_two_nodes_adding_at_once_never_share_an_address(lab: Any, tmp_path: Path, etcd: EtcdCluster) -> None:
    """Two nodes (two namespace topologies, each with its own plugin runs) on one etcd, 100 macvlan
    ADDs each, all at once: 200 distinct addresses; every DEL releases its lease."""
    from tests.support.lab import Lab
    from tests.support.runners import MacvlanRunner

    exe = dist_executable("fast/macvlan")
    other = Lab()
    try:
        nodes = [MacvlanRunner(lab, exe.parent, "fast"), MacvlanRunner(other, exe.parent, "fast")]
        network = {
            **conf(etcd, name="wide"),
            "type": "macvlan",
            "master": "upl0",
            "stateDir": str(tmp_path / "state"),
        }
        network["ipam"]["store"].update(deadline=10, endpoints=etcd.unix_endpoints)
        jobs = [(n, f"n{n}c{i}", (lab if n == 0 else other).container(f"w{i}")) for n in (0, 1) for i in range(100)]
        start = threading.Barrier(16)

        def add(job: tuple[int, str, str]) -> tuple[str, str]:
            node, cid, ns = job
            if int(cid.rsplit("c", 1)[1]) < 8:
                start.wait()  # the first 8 of each node leave together
            out = nodes[node]("ADD", network, ns, container_id=cid)
            return cid, out.ok()["ips"][0]["address"]

        with ThreadPoolExecutor(max_workers=16) as pool:
            got = dict(pool.map(add, jobs))
        assert len(got) == 200 and len(set(got.values())) == 200
        assert {f"{ip}/24": holder.split("\r\n")[0] for ip, holder in leases(etcd, "wide").items()} == {
            a: c for c, a in got.items()
        }
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda job: nodes[job[0]]("DEL", network, job[2], container_id=job[1]).ok(), jobs))
        assert leases(etcd, "wide") == {} and index(etcd, "wide") == set()
    finally:
        other.close()


def test_the_leader_killed_mid_stream_costs_at_most_clean_failures(etcd3: EtcdCluster, tmp_path: Path) -> None:
    """A stream of ADDs on a 3-member cluster while its leader is killed: each ADD succeeds with a
    unique address or fails with code 11; after recovery the leases are exactly the successes."""
    exe = dist_executable("fast/host-local")
    cfg = conf(etcd3, name="stream", store={"timeout": 0.3, "deadline": 5})
    outcomes: dict[str, Any] = {}
    lock = threading.Lock()

    def worker(w: int) -> None:
        for i in range(15):
            cid = f"w{w}i{i}"
            out = run_exec(exe, cni_env("ADD", container_id=cid), json_bytes(cfg), timeout=60)
            with lock:
                outcomes[cid] = out

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    while len(outcomes) < 12:
        time.sleep(0.01)
    victim = etcd3.leader()
    etcd3.kill(victim)
    for t in threads:
        t.join()
    etcd3.start(victim)
    etcd3.wait_ready()

    won = {}
    for cid, out in outcomes.items():
        if out.code == 0:
            won[cid] = out.json["ips"][0]["address"].split("/")[0]
        else:
            assert out.json["code"] == 11, out.stdout
    assert len(outcomes) == 60
    assert len(set(won.values())) == len(won), "an address handed out twice"
    assert {ip: holder.split("\r\n")[0] for ip, holder in leases(etcd3, "stream").items()} == {
        ip: cid for cid, ip in won.items()
    }
    assert index(etcd3, "stream") == {f"{cid}/eth0/{ip}" for cid, ip in won.items()}
    print(f"{len(won)} of 60 ADDs succeeded across the election; {60 - len(won)} failed with code 11")


def test_etcd_endpoints_are_tried_in_turn(etcd3: EtcdCluster) -> None:
    """A dead first endpoint costs a refused connection, not the request. (A follower is killed: a
    dead leader would make this a test of the election, which the stream test above is.)"""
    dead = next(i for i in range(3) if i != etcd3.leader())
    etcd3.kill(dead)
    endpoints = [etcd3.endpoints[dead]] + [e for i, e in enumerate(etcd3.endpoints) if i != dead]
    store = EtcdStore(Client(endpoints, try_timeout=0.3, deadline=10), "/t", "turn")
    assert store.reserve("c1", "eth0", 4, 0x0A3C0007, "0") is True
    # the member that answered goes first next time
    assert str(store.client.endpoints[store.client._next]) in endpoints[1:]


def test_a_hung_member_costs_one_try_timeout_not_the_request(host_local: Runner, etcd3: EtcdCluster) -> None:
    """A stopped (SIGSTOP) member still accepts connections (the kernel's backlog) and never answers:
    the try times out and the next endpoint serves the request."""
    import signal

    hung = next(i for i in range(3) if i != etcd3.leader())  # a follower: a hung leader means an election
    proc = etcd3.procs[hung]
    assert proc is not None
    proc.send_signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        endpoints = [etcd3.endpoints[hung]] + [e for i, e in enumerate(etcd3.endpoints) if i != hung]
        cfg = conf(etcd3, store={"timeout": 0.3, "deadline": 5, "endpoints": endpoints})
        assert host_local("ADD", cfg, container_id="c1").ok()["ips"][0]["address"] == "10.60.0.2/24"
        assert time.monotonic() - start < 3
    finally:
        proc.send_signal(signal.SIGCONT)


def test_without_quorum_add_is_try_again_later_and_changes_nothing(host_local: Runner, etcd3: EtcdCluster) -> None:
    host_local("ADD", conf(etcd3), container_id="c1").ok()
    etcd3.kill(1)
    etcd3.kill(2)  # one member of three left: no quorum, no writes, no linearizable reads
    err = host_local("ADD", conf(etcd3, store={"deadline": 1}), container_id="c2").error
    assert err["code"] == 11, err
    assert host_local("STATUS", conf(etcd3, "1.1.0", store={"deadline": 1})).error["code"] == 50
    etcd3.start(1)
    etcd3.start(2)
    etcd3.wait_ready()
    assert leases(etcd3) == {"10.60.0.2": "c1\r\neth0"}


def test_add_check_del_over_tls_with_a_client_certificate(host_local: Runner, etcd_tls: EtcdCluster) -> None:
    """Every layout: the single file loads _ssl (and the system's libssl) from memory."""
    cfg = conf(etcd_tls, store={"tls": etcd_tls.tls})
    assert cfg["ipam"]["store"]["endpoints"][0].startswith("https://")
    assert host_local("ADD", cfg, container_id="c1").ok()["ips"][0]["address"] == "10.60.0.2/24"
    assert leases(etcd_tls) == {"10.60.0.2": "c1\r\neth0"}
    host_local("CHECK", cfg, container_id="c1").ok()
    host_local("DEL", cfg, container_id="c1").ok()
    assert leases(etcd_tls) == {}


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ({"trustedCAFile": "other-ca"}, "certificate verify failed"),  # a member we must not trust
        ({"trustedCAFile": "ca"}, "bad certificate"),  # none shown: the member refuses the handshake
        ({"trustedCAFile": "/nonexistent/ca.pem"}, 'cannot load trustedCAFile "/nonexistent/ca.pem"'),
        ({"trustedCAFile": "ca", "certFile": "client", "keyFile": "other-ca"}, "cannot load certFile"),
    ],
)
def test_a_tls_misconfiguration_fails_at_once_and_says_so(
    host_local: Runner, etcd_tls: EtcdCluster, pki: dict[str, Path], tls: dict[str, str], message: str
) -> None:
    """Not "try again later" after the whole deadline: another try would fail alike."""
    files = {key: str(pki.get(value, value)) for key, value in tls.items()}
    cfg = conf(etcd_tls, store={"tls": files, "deadline": 5})
    start = time.monotonic()
    err = host_local("ADD", cfg, container_id="c1").error
    assert time.monotonic() - start < 2.5, "refused at once, not retried until the deadline"
    assert err["code"] == 5, err
    assert message in err["msg"], err
    assert leases(etcd_tls) == {}
