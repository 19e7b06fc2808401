"""Parents we create, against a kernel that has 802.1Q and dummy: the VM lane (`vm` marker).

Run by `make test` through tools/run-in-vm.sh; on a kernel without them these tests are skipped
(and the host lane deselects them). Each test builds the namespace lab of tests/support/lab.py inside the VM.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.support.configs import macvlan_conf
from tests.support.lab import Lab, lease_files, owned_parents, sh
from tests.support.layouts import dist_executable
from tests.support.runners import MacvlanRunner, Served

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vlan_and_dummy")]


@pytest.fixture
def run(lab: Lab, request: pytest.FixtureRequest) -> MacvlanRunner:
    """The fast layout; parametrized indirectly with "zygote", served by a zygote."""
    if getattr(request, "param", "fast") == "zygote":
        return MacvlanRunner(lab, dist_executable("fast/macvlan").parent, "zygote", Served(request))
    return MacvlanRunner(lab, dist_executable("fast/macvlan").parent, "fast")


def conf(tmp: Path, name: str, master: str | None, subnet: str, **ipam: Any) -> dict[str, Any]:
    return macvlan_conf(name, tmp / "leases", tmp / "state", subnet, "1.1.0", master, ipam_extra=ipam)


@pytest.mark.parametrize("run", ["fast", "zygote"], indirect=True)
def test_a_vlan_parent_is_created_shared_and_removed_with_its_last_user(
    run: MacvlanRunner, lab: Lab, tmp_path: Path
) -> None:
    net50 = conf(tmp_path, "macvlan50", "upl0.50", "192.168.50.0/24")
    other = conf(tmp_path, "other50", "upl0.50", "192.168.51.0/24")
    c1, c2, c3 = lab.container("c1"), lab.container("c2"), lab.container("c3")
    run("ADD", net50, c1, container_id="c1").ok()
    vlan = lab.node_links()["upl0.50"]
    assert vlan["linkinfo"]["info_kind"] == "vlan" and vlan["linkinfo"]["info_data"]["id"] == 50
    assert "UP" in vlan["flags"]
    run("ADD", net50, c2, container_id="c2").ok()
    run("ADD", other, c3, container_id="c3").ok()  # a second network on the same VLAN
    assert lab.node_links()["upl0.50"]["ifindex"] == vlan["ifindex"]
    assert [a[1] for a in owned_parents(tmp_path / "state")["upl0.50"]["attachments"]] == ["c1", "c2", "c3"]
    assert lab.ping(c1, "192.168.50.3")
    run("DEL", net50, c1, container_id="c1").ok()
    run("DEL", other, c3, container_id="c3").ok()
    assert "upl0.50" in lab.node_links()
    run("DEL", net50, c2, container_id="c2").ok()
    assert "upl0.50" not in lab.node_links()
    assert owned_parents(tmp_path / "state") == {}
    assert set(lab.node_links()) == {"lo", "upl0"}


@pytest.mark.parametrize("name", ["upl0.40", "foo"])
def test_a_pre_made_parent_is_used_and_never_deleted(run: MacvlanRunner, lab: Lab, tmp_path: Path, name: str) -> None:
    sh("ip", "-n", lab.node, "link", "add", "link", "upl0", "name", name, "type", "vlan", "id", "40")
    sh("ip", "-n", lab.node, "link", "set", name, "up")
    before = lab.node_links()[name]
    config = conf(tmp_path, "macvlan40", name, "192.168.40.0/24")
    c1 = lab.container("c1")
    run("ADD", config, c1).ok()
    assert owned_parents(tmp_path / "state") == {}
    run("DEL", config, c1).ok()
    after = lab.node_links()[name]
    assert (after["ifindex"], after["flags"], after["mtu"]) == (before["ifindex"], before["flags"], before["mtu"])


@pytest.mark.parametrize("run", ["fast", "zygote"], indirect=True)
def test_a_dummy_parent_when_master_is_omitted(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    config = conf(tmp_path, "isolated", None, "10.99.0.0/24")
    c1, c2 = lab.container("c1"), lab.container("c2")
    run("ADD", config, c1, container_id="c1").ok()
    run("ADD", config, c2, container_id="c2").ok()
    dummies = [n for n, e in lab.node_links().items() if e.get("linkinfo", {}).get("info_kind") == "dummy"]
    assert len(dummies) == 1 and dummies[0].startswith("dm-") and len(dummies[0]) == 15
    assert lab.ping(c1, "10.99.0.3") and lab.ping(c2, "10.99.0.2")
    assert not lab.ping(c1, "10.77.0.1"), "a dummy parent reaches nothing outside"
    run("DEL", config, c1, container_id="c1").ok()
    run("DEL", config, c2, container_id="c2").ok()
    assert dummies[0] not in lab.node_links()


def test_a_parent_deleted_by_hand_is_recreated_by_the_next_add(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    config = conf(tmp_path, "macvlan50", "upl0.50", "192.168.50.0/24")
    c1, c2 = lab.container("c1"), lab.container("c2")
    run("ADD", config, c1, container_id="c1").ok()
    sh("ip", "-n", lab.node, "link", "del", "upl0.50")  # as a reboot would leave it (c1's link went with it)
    run("ADD", config, c2, container_id="c2").ok()
    assert "upl0.50" in lab.node_links()
    check = {**config, "prevResult": run("ADD", config, lab.container("c3"), container_id="c3").ok()}
    run("CHECK", check, f"/run/netns/{lab.prefix}-c3", container_id="c3").ok()
    for cid in ("c1", "c2", "c3"):
        run("DEL", config, f"/run/netns/{lab.prefix}-{cid}", container_id=cid).ok()
    assert "upl0.50" not in lab.node_links()


def test_check_reports_a_missing_parent(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    config = conf(tmp_path, "macvlan50", "upl0.50", "192.168.50.0/24")
    c1 = lab.container("c1")
    result = run("ADD", config, c1).ok()
    sh("ip", "-n", lab.node, "link", "del", "upl0.50")
    err = run("CHECK", {**config, "prevResult": result}, c1).error
    assert 'failed to lookup master "upl0.50"' in err["msg"]


def test_gc_drops_stale_attachments_and_their_parent(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    config = conf(tmp_path, "macvlan50", "upl0.50", "192.168.50.0/24")
    c1, c2 = lab.container("c1"), lab.container("c2")
    run("ADD", config, c1, container_id="c1").ok()
    run("ADD", config, c2, container_id="c2").ok()
    lab.remove_netns(c1)
    lab.remove_netns(c2)
    run("GC", {**config, "cni.dev/valid-attachments": [{"containerID": "c2", "ifname": "eth0"}]}).ok()
    assert [a[1] for a in owned_parents(tmp_path / "state")["upl0.50"]["attachments"]] == ["c2"]
    assert list(lease_files(tmp_path / "leases", "macvlan50")) == ["192.168.50.3"]
    run("GC", {**config, "cni.dev/valid-attachments": []}).ok()
    assert owned_parents(tmp_path / "state") == {} and "upl0.50" not in lab.node_links()
    assert lease_files(tmp_path / "leases", "macvlan50") == {}


def test_frames_are_tagged_vlan_50_reaches_its_gateway_and_not_vlan_60(
    run: MacvlanRunner, lab: Lab, tmp_path: Path
) -> None:
    # one subnet on two VLANs: only the tag separates them
    lab.vlan_upstream(50, "10.5.0.1/24")
    lab.vlan_upstream(60, "10.5.0.254/24", own_netns=True)
    net50 = conf(
        tmp_path,
        "macvlan50",
        "upl0.50",
        "10.5.0.0/24",
        rangeStart="10.5.0.10",
        rangeEnd="10.5.0.99",
        gateway="10.5.0.1",
    )
    net60 = conf(
        tmp_path,
        "macvlan60",
        "upl0.60",
        "10.5.0.0/24",
        rangeStart="10.5.0.100",
        rangeEnd="10.5.0.199",
        gateway="10.5.0.254",
    )
    net60["mode"] = "bridge"
    a, b = lab.container("a"), lab.container("b")
    assert run("ADD", net50, a, container_id="a").ok()["ips"][0]["address"] == "10.5.0.10/24"
    assert run("ADD", net60, b, container_id="b").ok()["ips"][0]["address"] == "10.5.0.100/24"
    assert lab.ping(a, "10.5.0.1")
    assert lab.ping(b, "10.5.0.254")
    assert not lab.ping(a, "10.5.0.254"), "VLAN 50 reached the gateway of VLAN 60"
    assert not lab.ping(a, "10.5.0.100"), "VLAN 50 reached a container of VLAN 60"
    assert not lab.ping(b, "10.5.0.1")


def test_dual_stack_on_a_vlan_parent(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    lab.vlan_upstream(218, "192.168.218.1/24")
    sh("ip", "-n", lab.upstream, "addr", "add", "2001:db8:abc8::10/64", "dev", "upr0.218", "nodad")
    config = conf(tmp_path, "macvlan216", "upl0.218", "192.168.218.0/24")
    del config["ipam"]["subnet"]
    config["ipam"]["ranges"] = [
        [{"subnet": "192.168.218.0/24", "gateway": "192.168.218.1"}],
        [{"subnet": "2001:db8:abc8::/64", "gateway": "2001:db8:abc8::10"}],
    ]
    config["ipam"]["routes"] = [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
    c1 = lab.container("c1")
    result = run("ADD", config, c1).ok()
    assert [ip["address"] for ip in result["ips"]] == ["192.168.218.2/24", "2001:db8:abc8::1/64"]
    assert lab.ping(c1, "192.168.218.1") and lab.ping(c1, "2001:db8:abc8::10")
    assert any(r.startswith("default via 2001:db8:abc8::10") for r in lab.routes(c1, "-6"))


@pytest.mark.parametrize("step", ["parent-recorded", "parent-created", "parent-acquired", "link-created", "ipam-added"])
def test_a_kill_9_during_add_is_cleaned_up_by_del(run: MacvlanRunner, lab: Lab, tmp_path: Path, step: str) -> None:
    config = conf(tmp_path, "macvlan50", "upl0.50", "192.168.50.0/24")
    c1 = lab.container("c1")
    out = run("ADD", config, c1, CNI_MACVLAN_CRASH_AT=step)
    assert out.code == -signal.SIGKILL or out.code == 128 + signal.SIGKILL, (out.code, out.stdout)
    run("DEL", config, c1).ok()
    assert owned_parents(tmp_path / "state") == {}
    assert "upl0.50" not in lab.node_links()
    assert set(lab.links(c1)) == {"lo"}
    assert lease_files(tmp_path / "leases", "macvlan50") == {}


@pytest.mark.parametrize("step", ["parent-recorded", "parent-created", "ipam-added"])
def test_a_kill_9_during_add_is_cleaned_up_by_gc(run: MacvlanRunner, lab: Lab, tmp_path: Path, step: str) -> None:
    config = conf(tmp_path, "macvlan50", "upl0.50", "192.168.50.0/24")
    c1 = lab.container("c1")
    run("ADD", config, c1, CNI_MACVLAN_CRASH_AT=step)
    lab.remove_netns(c1)
    run("GC", {**config, "cni.dev/valid-attachments": []}).ok()
    assert owned_parents(tmp_path / "state") == {}
    assert "upl0.50" not in lab.node_links()
    assert lease_files(tmp_path / "leases", "macvlan50") == {}


def test_two_adds_racing_to_create_one_parent_make_one_link(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    config = conf(tmp_path, "macvlan50", "upl0.50", "192.168.50.0/24")
    nss = [lab.container(f"r{i}") for i in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        outs = list(pool.map(lambda i: run("ADD", config, nss[i], container_id=f"r{i}"), range(4)))
    assert all(o.code == 0 for o in outs), [o.stdout for o in outs]
    assert [n for n in lab.node_links() if n.startswith("upl0.")] == ["upl0.50"]
    assert len(owned_parents(tmp_path / "state")["upl0.50"]["attachments"]) == 4
    # a DEL racing an ADD never deletes the parent the ADD is attaching to
    extra = lab.container("late")
    with ThreadPoolExecutor(max_workers=5) as pool:
        dels = [pool.submit(run, "DEL", config, nss[i], container_id=f"r{i}") for i in range(4)]
        add = pool.submit(run, "ADD", config, extra, container_id="late")
        assert all(d.result().code == 0 for d in dels)
        assert add.result().code == 0
    assert "upl0.50" in lab.node_links()
    assert "eth0" in lab.links(extra), "the late container's macvlan went with a deleted parent"
    run("DEL", config, extra, container_id="late").ok()
    assert "upl0.50" not in lab.node_links()
