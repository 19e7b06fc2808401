"""The Kubernetes store's pure rules: object names and labels the API accepts and that never collide,
where an ADD's search starts, which leases the sweep may release. (Against a real API server:
tests/test_kube_store.py.)"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from cni.ip import parse_ip
from ipam.allocator import SPREAD, allocate, conflict_skip
from ipam.kubernetes import (
    attachment_label,
    label_value,
    lease_object,
    lease_of,
    network_label,
    newest,
    object_name,
    sweepable,
)
from ipam.ranges import Exclusions, parse_range_set
from tests.support.memstore import MemStore

# the API server's rules (k8s.io/apimachinery/pkg/util/validation)
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

NETWORKS = st.text(min_size=1, max_size=300)
ADDRESSES = st.one_of(
    st.integers(0, 2**32 - 1).map(lambda v: (4, v)),
    st.integers(0, 2**128 - 1).map(lambda v: (6, v)),
)


@given(network=NETWORKS, address=ADDRESSES)
def test_names_and_labels_are_what_the_api_server_accepts(network: str, address: tuple[int, int]) -> None:
    name = object_name(network, *address)
    assert len(name) <= 253 and DNS_SUBDOMAIN.match(name), name
    for value in (network_label(network), label_value(network), attachment_label(network, "eth0")):
        assert len(value) <= 63 and LABEL_VALUE.match(value), value


@given(a=st.tuples(NETWORKS, ADDRESSES), b=st.tuples(NETWORKS, ADDRESSES))
def test_two_leases_share_a_name_only_when_they_are_the_same_address_of_the_same_network(a, b) -> None:
    if a != b:
        assert object_name(a[0], *a[1]) != object_name(b[0], *b[1])


def test_a_network_differing_only_in_case_or_punctuation_is_another_network() -> None:
    names = {object_name(n, 4, 0x0A000005) for n in ("net", "NET", "n-e-t", "n_e_t", "net.")}
    assert len(names) == 5


def obj(address: str, cid: str, rv: int, node: str = "n1", pod: dict | None = None, rs: str = "0") -> dict:
    family, value = parse_ip(address)
    o = lease_object("wide", cid, "eth0", family, value, rs, node, pod)
    o["metadata"].update(resourceVersion=str(rv), uid=f"u-{cid}")
    return o


def test_an_object_is_a_lease_only_if_its_name_matches_its_spec() -> None:
    good = obj("10.0.0.5", "c1", 10)
    lease = lease_of(good, "wide")
    assert lease is not None and (lease.value, lease.container_id, lease.ifname) == (0x0A000005, "c1", "eth0")
    assert lease_of(good, "other") is None
    forged = obj("10.0.0.5", "c1", 10)
    forged["spec"]["address"] = "10.0.0.6"  # an object claiming an address its name does not hold
    assert lease_of(forged, "wide") is None
    assert lease_of({"spec": "x"}, "wide") is None


def test_the_search_starts_after_the_newest_lease() -> None:
    objects = [
        obj("10.0.0.9", "a", 5),
        obj("10.0.1.1", "b", 12),
        obj("10.0.0.200", "c", 7),
        obj("10.0.9.9", "d", 99, rs="1"),
    ]
    assert newest(objects, "0") is objects[1]
    assert newest(objects, "2") is None


class RacingStore(MemStore):
    """A shared store where other nodes take ``stolen`` addresses between our LIST and our reserve."""

    def __init__(self, stolen: set[int]) -> None:
        super().__init__()
        self.stolen = stolen
        self.tried: list[int] = []

    spread_on_conflict = True

    def reserve(self, container_id, ifname, family, value, range_id):
        self.tried.append(value)
        if value in self.stolen:
            self.files[(family, value)] = ("other", "eth0")
            return False
        return super().reserve(container_id, ifname, family, value, range_id)


def test_an_add_that_loses_a_race_scatters_and_still_finds_the_last_free_address() -> None:
    rs = parse_range_set([{"subnet": "10.0.0.0/24"}])
    first = parse_ip("10.0.0.2")[1]
    skips = {conflict_skip(f"c{i}", "eth0", first) for i in range(100)}
    assert all(1 <= k <= SPREAD for k in skips) and len(skips) > SPREAD // 2, "ADDs that lost the same race scatter"
    store = RacingStore({first})
    got = allocate(store, rs, "0", "c1", "eth0", Exclusions())
    assert got.value == first + 1 + conflict_skip("c1", "eth0", first)
    assert store.tried == [first, got.value]
    # when all but one address are stolen, the skipped ones are tried at the end: the set is full only when it is
    everything = set(range(first, parse_ip("10.0.0.254")[1] + 1)) - {first + 3}
    store = RacingStore(everything)
    assert allocate(store, rs, "0", "c1", "eth0", Exclusions()).value == first + 3
    assert len(store.tried) == len(set(store.tried)), "no address tried twice"


POD = {"namespace": "ns", "name": "web-0", "uid": "uid-1"}


def pod(uid: str, name: str = "web-0", namespace: str = "ns") -> dict:
    return {"metadata": {"uid": uid, "name": name, "namespace": namespace}}


def test_the_sweep_releases_only_leases_of_gone_pods_older_than_the_pod_list() -> None:
    alive = obj("10.0.0.2", "c-alive", 10, pod={**POD, "uid": "uid-alive", "name": "alive"})
    gone = obj("10.0.0.3", "c-gone", 11, pod={**POD, "uid": "uid-gone", "name": "gone"})
    newer = obj("10.0.0.4", "c-new", 30, pod={**POD, "uid": "uid-new", "name": "new"})  # after the list
    other_node = obj("10.0.0.5", "c-other", 12, node="n2", pod={**POD, "uid": "uid-x", "name": "x"})
    no_pod = obj("10.0.0.6", "c-nopod", 13)
    reused = obj("10.0.0.7", "c-old", 14, pod={**POD, "uid": "uid-old", "name": "db-0"})  # same name, new pod
    pods = [pod("uid-alive", "alive"), pod("uid-newer-db", "db-0")]
    got = sweepable([alive, gone, newer, other_node, no_pod, reused], pods, 20, "n1")
    assert got == [gone]
    assert sweepable([gone], pods, -1, "n1") == [], "no comparable list version: nothing is swept"
    by_name = obj("10.0.0.8", "c-byname", 15, pod={"namespace": "ns", "name": "gone-too"})
    assert sweepable([by_name], pods, 20, "n1") == [by_name]


@given(
    leases=st.lists(st.tuples(st.integers(1, 100), st.booleans(), st.integers(0, 3)), max_size=30),
    pods_rv=st.integers(1, 100),
)
def test_the_sweep_never_frees_a_live_pods_lease_nor_one_newer_than_the_list(leases, pods_rv) -> None:
    objects, live = [], []
    for i, (rv, pod_alive, node) in enumerate(leases):
        uid = f"uid-{i}"
        objects.append(
            obj(f"10.0.0.{i + 2}", f"c{i}", rv, node=f"n{node}", pod={"namespace": "ns", "name": f"p{i}", "uid": uid})
        )
        if pod_alive:
            live.append(pod(uid, f"p{i}"))
    for o in sweepable(objects, live, pods_rv, "n0"):
        spec = o["spec"]
        assert spec["node"] == "n0"
        assert int(o["metadata"]["resourceVersion"]) < pods_rv
        assert spec["pod"]["uid"] not in {p["metadata"]["uid"] for p in live}
