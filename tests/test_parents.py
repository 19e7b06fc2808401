"""Parent rules and the ownership record, on the host.

This machine's kernel has no 802.1Q and no dummy, so these tests drive parents.acquire/release with
FakeNode, a stand-in for the netlink socket that keeps links in a dict (the one mock of the suite,
for that reason). The same behaviour against the real kernel is in test_vm_parents.py (the VM lane).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cni.errors import CNIError
from cni_macvlan.links import parents
from cni_macvlan.links.netlink import IFF_UP, Link, NetlinkError


class FakeNode:
    def __init__(self, *names: str) -> None:
        self.links: dict[str, tuple[int, str, bool]] = {}
        self.vlans: dict[str, tuple[int, int]] = {}  # name -> (base ifindex, VLAN id)
        self.next = 10
        for name in names:
            self.add(name, "veth")

    def add(self, name: str, kind: str, up: bool = False, index: int = 0) -> int:
        if name in self.links or any(index and v[0] == index for v in self.links.values()):
            raise NetlinkError(17, "File exists")
        self.next += 1
        self.links[name] = (index or self.next, kind, up)
        return index or self.next

    def get_link(self, name: str | None = None, index: int = 0) -> Link | None:
        for n, (idx, kind, up) in self.links.items():
            if n == name or idx == index:
                link = Link(idx, IFF_UP if up else 0, {3: n.encode() + b"\0"})
                link.kind = kind
                link.link, link.vlan_id = self.vlans.get(n, (0, 0))
                return link
        return None

    def create_vlan(self, name: str, parent: int, vid: int, index: int = 0) -> None:
        self.add(name, "vlan", index=index)
        self.vlans[name] = (parent, vid)

    def create_dummy(self, name: str, index: int = 0) -> None:
        self.add(name, "dummy", index=index)

    def set_up(self, index: int) -> None:
        for n, (idx, kind, _) in self.links.items():
            if idx == index:
                self.links[n] = (idx, kind, True)

    def delete_link(self, index: int) -> None:
        self.links = {n: v for n, v in self.links.items() if v[0] != index}


@pytest.fixture
def store(tmp_path: Path) -> parents.Store:
    return parents.Store(str(tmp_path / "state"))


def record(store: parents.Store) -> dict:
    return json.loads(Path(store.path).read_text())["parents"] if Path(store.path).exists() else {}


A1 = ("net-a", "c1", "eth0")
A2 = ("net-a", "c2", "eth0")
B1 = ("net-b", "c3", "eth0")


# ---- plan ----


def test_dummy_names_are_stable_per_network() -> None:
    a = parents.plan("", "mynet")
    assert a.kind == "dummy" and a.name.startswith("dm-") and len(a.name) == 15
    assert parents.plan("", "mynet").name == a.name
    assert parents.plan("", "other").name != a.name


@pytest.mark.parametrize(
    "master,kind,base,vid",
    [
        ("eth0", "link", "", 0),
        ("eth0.50", "vlan", "eth0", 50),
        ("foo", "link", "", 0),
        ("bond0.4094", "vlan", "bond0", 4094),
    ],
)
def test_plan(master: str, kind: str, base: str, vid: int) -> None:
    spec = parents.plan(master, "n")
    assert (spec.name, spec.kind, spec.base, spec.vid) == (master, kind, base, vid)


def test_names_longer_than_15_are_refused() -> None:
    with pytest.raises(CNIError, match="at most 15 characters"):
        parents.plan("enp129s0f1np1.50", "n")
    with pytest.raises(CNIError, match="at most 15 characters"):
        parents.plan("enp129s0f1np1.50", "n", in_container=True)


@pytest.mark.parametrize("master", ["eth0.50", "", "net1"])
def test_in_the_container_master_names_an_interface_as_it_is(master: str) -> None:
    """linkInContainer: nothing is created in the container, so no VLAN or dummy is planned."""
    spec = parents.plan(master, "n", in_container=True)
    assert (spec.name, spec.kind, spec.base, spec.vid) == (master, "link", "", 0)


@pytest.mark.parametrize("master", ["eth0.0", "eth0.4095", "eth0.5000", "eth0.x", "eth0.-1"])
def test_vlan_ids_must_be_1_to_4094(store: parents.Store, master: str) -> None:
    with pytest.raises(CNIError) as e:
        parents.acquire(FakeNode("eth0"), store, parents.plan(master, "n"), A1)
    assert e.value.msg == f'master "{master}": VLAN id must be 1-4094'
    assert e.value.code == 7
    assert record(store) == {}


@pytest.mark.parametrize("master", ["a.b.c", ".50", "eth0."])
def test_a_name_to_create_must_split_into_parent_and_vid(store: parents.Store, master: str) -> None:
    with pytest.raises(CNIError, match='with one "."|VLAN id must be'):
        parents.acquire(FakeNode("eth0"), store, parents.plan(master, "n"), A1)


def test_an_existing_dotted_name_is_used_whatever_its_form(store: parents.Store) -> None:
    node = FakeNode("eth0", "a.b.c", "eth0.5000")
    for name in ("a.b.c", "eth0.5000"):
        assert parents.acquire(node, store, parents.plan(name, "n"), A1).name == name
    assert record(store) == {}


# ---- ownership ----


def test_an_existing_parent_is_used_and_never_recorded(store: parents.Store) -> None:
    node = FakeNode("eth0", "eth0.40")
    link = parents.acquire(node, store, parents.plan("eth0.40", "n"), A1)
    assert link.name == "eth0.40"
    assert record(store) == {}
    parents.release(node, store, A1)
    assert "eth0.40" in node.links


def test_a_vlan_parent_is_created_shared_and_removed_with_its_last_user(store: parents.Store) -> None:
    node = FakeNode("eth0")
    spec = parents.plan("eth0.50", "net-a")
    link = parents.acquire(node, store, spec, A1)
    assert node.links["eth0.50"][1:] == ("vlan", True)
    assert node.links["eth0"][2] is True, "the base parent is brought up first"
    assert record(store)["eth0.50"]["ifindex"] == link.index
    assert parents.acquire(node, store, spec, A2).index == link.index
    assert parents.acquire(node, store, parents.plan("eth0.50", "net-b"), B1).index == link.index
    assert record(store)["eth0.50"]["attachments"] == [list(A1), list(A2), list(B1)]
    parents.release(node, store, A1)
    parents.release(node, store, B1)
    assert "eth0.50" in node.links
    parents.release(node, store, A2)
    assert "eth0.50" not in node.links
    assert record(store) == {}
    parents.release(node, store, A2)  # DEL again: nothing to do


def test_a_missing_base_parent_is_refused_and_nothing_is_recorded(store: parents.Store) -> None:
    with pytest.raises(CNIError, match='its parent "eth9" does not exist'):
        parents.acquire(FakeNode("eth0"), store, parents.plan("eth9.50", "n"), A1)
    assert record(store) == {}


def test_a_vanished_parent_is_recreated(store: parents.Store) -> None:
    node = FakeNode("eth0")
    spec = parents.plan("eth0.50", "n")
    parents.acquire(node, store, spec, A1)
    del node.links["eth0.50"]  # a reboot
    link = parents.acquire(node, store, spec, A2)
    assert node.links["eth0.50"][0] == link.index
    assert record(store)["eth0.50"]["ifindex"] == link.index
    assert record(store)["eth0.50"]["attachments"] == [list(A1), list(A2)]


def test_a_link_of_our_name_made_by_someone_else_is_never_touched(store: parents.Store) -> None:
    node = FakeNode("eth0")
    spec = parents.plan("eth0.50", "n")
    parents.acquire(node, store, spec, A1)
    del node.links["eth0.50"]
    node.create_vlan("eth0.50", node.links["eth0"][0], 50)  # the admin's own, with another ifindex
    parents.acquire(node, store, spec, A2)
    assert record(store) == {}
    parents.release(node, store, A1)
    parents.release(node, store, A2)
    assert "eth0.50" in node.links


def test_a_dummy_parent_is_created_and_removed(store: parents.Store) -> None:
    node = FakeNode()
    spec = parents.plan("", "net-a")
    parents.acquire(node, store, spec, A1)
    assert node.links[spec.name][1:] == ("dummy", True)
    parents.release(node, store, A1)
    assert spec.name not in node.links


def test_gc_drops_the_networks_stale_attachments_and_their_parents(store: parents.Store) -> None:
    node = FakeNode("eth0")
    parents.acquire(node, store, parents.plan("eth0.50", "net-a"), A1)
    parents.acquire(node, store, parents.plan("eth0.60", "net-a"), A2)
    parents.acquire(node, store, parents.plan("eth0.60", "net-b"), B1)
    emptied = parents.collect(node, store, "net-a", {("c1", "eth0")})
    assert emptied == []
    assert record(store)["eth0.60"]["attachments"] == [list(B1)], "other networks' attachments stay"
    assert parents.collect(node, store, "net-a", set()) == ["eth0.50"]
    assert "eth0.50" not in node.links and "eth0.60" in node.links


def test_a_crash_between_record_and_create_is_cleaned_by_del(store: parents.Store) -> None:
    node = FakeNode("eth0")
    own = parents.Ownership()
    own.attach(parents.plan("eth0.50", "n"), A1)
    with store.locked():
        store.save(own)  # what ADD leaves when killed right after recording, before creating
    parents.release(node, store, A1)
    assert record(store) == {}


def test_a_create_failure_leaves_no_record(store: parents.Store) -> None:
    class NoVlanNode(FakeNode):
        def create_vlan(self, name: str, parent: int, vid: int, index: int = 0) -> None:
            raise NetlinkError(95, "Operation not supported")

    with pytest.raises(CNIError, match="failed to create 802.1Q VLAN 50 on eth0"):
        parents.acquire(NoVlanNode("eth0"), store, parents.plan("eth0.50", "n"), A1)
    assert record(store) == {}


def test_an_unreadable_record_stops_add_and_is_never_reset(store: parents.Store) -> None:
    """ADD can't tell what it owns: code 5 naming the file and the fix. DEL goes on without it (a
    damaged record never blocks DEL) and leaves the file as it is, for the operator."""
    Path(store.dir).mkdir(parents=True, mode=0o700)
    Path(store.path).write_text("{not json")
    with pytest.raises(CNIError, match="is damaged") as e:
        parents.acquire(FakeNode("eth0"), store, parents.plan("eth0.50", "n"), A1)
    assert e.value.code == 5 and store.path in e.value.msg and "remove it" in e.value.details
    parents.release(FakeNode(), store, A1)
    assert parents.collect(FakeNode(), store, "n", set()) == []
    assert Path(store.path).read_text() == "{not json"


def test_a_parent_is_made_with_the_ifindex_recorded_before_it_exists(store: parents.Store) -> None:
    """record-before-create records the very ifindex the link is then made with (never 0), so a
    crash between the two leaves a record that names nothing else."""
    seen: list[dict] = []

    class Watching(FakeNode):
        def create_vlan(self, name: str, parent: int, vid: int, index: int = 0) -> None:
            seen.append(record(store)[name].copy())
            super().create_vlan(name, parent, vid, index)

    node = Watching("eth0")
    link = parents.acquire(node, store, parents.plan("eth0.50", "n"), A1)
    assert seen[0]["ifindex"] == link.index != 0
    assert seen[0]["boot"] == parents.boot_id() != ""


@pytest.mark.parametrize("stale", ["another boot", "ifindex 0"])
def test_a_record_from_another_boot_or_without_an_ifindex_owns_nothing(store: parents.Store, stale: str) -> None:
    """After a reboot an ifindex names any link; a record of ifindex 0 (written before the index was
    chosen first) names none: DEL drops such an entry and deletes nothing."""
    node = FakeNode("eth0")
    link = parents.acquire(node, store, parents.plan("eth0.50", "n"), A1)
    own = parents.Ownership(record(store))
    if stale == "another boot":
        own.parents["eth0.50"]["boot"] = "another-boot-id"
    else:
        own.parents["eth0.50"]["ifindex"] = 0
    with store.locked():
        store.save(own)
    parents.release(node, store, A1)
    assert node.links["eth0.50"][0] == link.index, "left alone"
    assert record(store) == {}


def test_a_link_made_meanwhile_under_our_name_by_someone_else_stays_theirs(store: parents.Store) -> None:
    class Racing(FakeNode):
        def create_vlan(self, name: str, parent: int, vid: int, index: int = 0) -> None:
            super().create_vlan(name, parent, vid)  # another tool wins the race, with its own index
            raise NetlinkError(17, "File exists")

    node = Racing("eth0")
    link = parents.acquire(node, store, parents.plan("eth0.50", "n"), A1)
    assert record(store) == {}, "not recorded as ours"
    parents.release(node, store, A1)
    assert node.links["eth0.50"][0] == link.index
