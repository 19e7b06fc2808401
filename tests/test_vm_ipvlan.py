"""The ipvlan plugin against a kernel that has ipvlan, 802.1Q and dummy: the VM lane (`vm` marker).

Each test runs in every layout we ship (the single file, the fast layout, the fast layout served by a
zygote, with a check that it served). The lab (tests/support/lab.py): a node whose parent upl0 is a
veth to an upstream router holding 10.77.0.1/24 and fd77::1/64.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.support.configs import macvlan_conf
from tests.support.lab import GATEWAY4, GATEWAY6, SUBNET4, SUBNET6, Lab, lease_files, owned_parents
from tests.support.layouts import UPSTREAM_VERSIONS, dist_executable, upstream_plugin
from tests.support.runners import MacvlanRunner, Served

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vlan_and_dummy")]


@pytest.fixture(params=["single", "fast", "zygote"])
def run(lab: Lab, request: pytest.FixtureRequest) -> MacvlanRunner:
    """Our ipvlan (or, with ``plugin``, any plugin of the same directory) run in the lab's node."""
    if request.param == "single":
        return MacvlanRunner(lab, dist_executable("ipvlan").parent, "single", plugin="ipvlan")
    served = Served(request) if request.param == "zygote" else None
    return MacvlanRunner(lab, dist_executable("fast/ipvlan").parent, request.param, served, plugin="ipvlan")


def conf(
    tmp: Path,
    name: str = "ipnet",
    master: str | None = "upl0",
    subnet: str = SUBNET4,
    version: str = "1.1.0",
    **top: Any,
) -> dict:
    ipam = {"routes": [{"dst": "0.0.0.0/0"}]}
    return macvlan_conf(
        name, tmp / "leases", tmp / "state", subnet, version, master, ipam_extra=ipam, **{"type": "ipvlan", **top}
    )


def test_l2_slaves_reach_each_other_and_the_gateway_with_the_parents_mac(
    run: MacvlanRunner, lab: Lab, tmp_path: Path
) -> None:
    config = conf(tmp_path)
    c1, c2 = lab.container("c1"), lab.container("c2")
    r1 = run("ADD", config, c1, container_id="c1").ok()
    run("ADD", config, c2, container_id="c2").ok()
    parent_mac = lab.node_links()["upl0"]["address"]
    for ns in (c1, c2):
        link = lab.links(ns)["eth0"]
        assert link["linkinfo"]["info_kind"] == "ipvlan" and link["linkinfo"]["info_data"]["mode"] == "l2"
        assert link["address"] == parent_mac, "every slave has its parent's MAC"
    assert r1["interfaces"] == [{"name": "eth0", "mac": parent_mac, "sandbox": c1}]
    assert r1["ips"] == [{"address": "10.77.0.2/24", "gateway": GATEWAY4, "interface": 0}]
    assert lab.ping(c1, "10.77.0.3") and lab.ping(c1, GATEWAY4) and lab.ping(c2, GATEWAY4)
    out = run("CHECK", {**config, "prevResult": r1}, c1, container_id="c1")
    assert (out.code, out.stdout) == (0, "")
    for cid, ns in (("c1", c1), ("c2", c2)):
        run("DEL", config, ns, container_id=cid).ok()
        assert "eth0" not in lab.links(ns)
    assert lease_files(tmp_path / "leases", "ipnet") == {}


@pytest.mark.parametrize("mode", ["l3", "l3s"])
def test_l3_slaves_reach_each_other_and_the_node_routes_without_a_gateway(
    run: MacvlanRunner, lab: Lab, tmp_path: Path, mode: str
) -> None:
    """As Docker's ipvlan L3: a default route over the device, no gateway in the result; the
    upstream router can't resolve a slave (no ARP in L3) and, without a route to the subnet via the
    node, is not reached; slaves of one parent reach each other."""
    config = conf(tmp_path, mode=mode)
    c1, c2 = lab.container("c1"), lab.container("c2")
    r1 = run("ADD", config, c1, container_id="c1").ok()
    run("ADD", config, c2, container_id="c2").ok()
    assert lab.links(c1)["eth0"]["linkinfo"]["info_data"]["mode"] == mode
    assert r1["ips"] == [{"address": "10.77.0.2/24", "interface": 0}]
    assert r1["routes"] == [{"dst": "0.0.0.0/0"}]
    assert "default dev eth0 scope link" in [r.strip() for r in lab.routes(c1)]
    assert lab.ping(c1, "10.77.0.3")
    assert not lab.ping(c1, GATEWAY4), "the gateway answered an L3 slave"
    out = run("CHECK", {**config, "prevResult": r1}, c1, container_id="c1")
    assert (out.code, out.stdout) == (0, "")
    wrong = run("CHECK", {**config, "mode": "l2", "prevResult": r1}, c1, container_id="c1").error
    assert wrong["msg"] == f"Container IPVlan mode {mode} does not match expected value: l2"


@pytest.mark.parametrize("flag", ["private", "vepa"])
def test_private_and_vepa_slaves_do_not_reach_each_other_but_reach_the_gateway(
    run: MacvlanRunner, lab: Lab, tmp_path: Path, flag: str
) -> None:
    """private: no traffic between slaves; vepa: it goes to the wire, whose switch (here a plain
    veth peer) does not send it back."""
    config = conf(tmp_path, flag=flag)
    c1, c2 = lab.container("c1"), lab.container("c2")
    r1 = run("ADD", config, c1, container_id="c1").ok()
    run("ADD", config, c2, container_id="c2").ok()
    assert lab.ping(c1, GATEWAY4) and lab.ping(c2, GATEWAY4)
    assert not lab.ping(c1, "10.77.0.3"), f"{flag} slaves reached each other"
    out = run("CHECK", {**config, "prevResult": r1}, c1, container_id="c1")
    assert (out.code, out.stdout) == (0, "")
    other = "vepa" if flag == "private" else "private"
    wrong = run("CHECK", {**config, "flag": other, "prevResult": r1}, c1, container_id="c1").error
    assert wrong["msg"] == f"container ipvlan flag {flag} does not match expected value: {other}"


def test_vlan_parents_are_shared_with_macvlan_rules_and_keep_vlans_apart(
    run: MacvlanRunner, lab: Lab, tmp_path: Path
) -> None:
    """The parents are macvlan's: upl0.50 created on demand, shared by two ipvlan networks, gone with
    its last user; one subnet on VLANs 50 and 60: only the tag separates them."""
    lab.vlan_upstream(50, "10.5.0.1/24")
    lab.vlan_upstream(60, "10.5.0.254/24", own_netns=True)
    window50 = {"rangeStart": "10.5.0.10", "rangeEnd": "10.5.0.99", "gateway": "10.5.0.1"}
    window60 = {"rangeStart": "10.5.0.100", "rangeEnd": "10.5.0.199", "gateway": "10.5.0.254"}
    net50 = conf(tmp_path, "ipvlan50", "upl0.50", "10.5.0.0/24")
    net50["ipam"].update(window50)
    other50 = conf(tmp_path, "other50", "upl0.50", "10.5.1.0/24")
    net60 = conf(tmp_path, "ipvlan60", "upl0.60", "10.5.0.0/24")
    net60["ipam"].update(window60)
    a, b, c = lab.container("a"), lab.container("b"), lab.container("c")
    assert run("ADD", net50, a, container_id="a").ok()["ips"][0]["address"] == "10.5.0.10/24"
    run("ADD", other50, c, container_id="c").ok()
    assert run("ADD", net60, b, container_id="b").ok()["ips"][0]["address"] == "10.5.0.100/24"
    vlan = lab.node_links()["upl0.50"]
    assert vlan["linkinfo"]["info_kind"] == "vlan" and vlan["linkinfo"]["info_data"]["id"] == 50
    assert [att[0] for att in owned_parents(tmp_path / "state")["upl0.50"]["attachments"]] == ["ipvlan50", "other50"]
    assert lab.ping(a, "10.5.0.1") and lab.ping(b, "10.5.0.254")
    assert not lab.ping(a, "10.5.0.254") and not lab.ping(a, "10.5.0.100"), "VLAN 50 reached VLAN 60"
    run("DEL", net50, a, container_id="a").ok()
    assert "upl0.50" in lab.node_links(), "other50 still uses it"
    run("DEL", other50, c, container_id="c").ok()
    run("DEL", net60, b, container_id="b").ok()
    assert not [n for n in lab.node_links() if n.startswith("upl0.")] and owned_parents(tmp_path / "state") == {}


def test_dual_stack_on_a_dummy_parent_and_on_the_wire(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    config = conf(tmp_path)
    del config["ipam"]["subnet"]
    config["ipam"]["ranges"] = [[{"subnet": SUBNET4, "gateway": GATEWAY4}], [{"subnet": SUBNET6, "gateway": GATEWAY6}]]
    config["ipam"]["routes"] = [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
    c1 = lab.container("c1")
    result = run("ADD", config, c1, container_id="c1").ok()
    assert [ip["address"] for ip in result["ips"]] == ["10.77.0.2/24", "fd77::2/64"]
    assert lab.ping(c1, GATEWAY4) and lab.ping(c1, GATEWAY6)
    assert any(r.startswith(f"default via {GATEWAY6}") for r in lab.routes(c1, "-6"))
    # no master: a dummy parent of the network's own, created and removed; its slaves reach each other
    isolated = conf(tmp_path, "isolated", None, "10.99.0.0/24")
    d1, d2 = lab.container("d1"), lab.container("d2")
    run("ADD", isolated, d1, container_id="d1").ok()
    run("ADD", isolated, d2, container_id="d2").ok()
    dummies = [n for n, e in lab.node_links().items() if e.get("linkinfo", {}).get("info_kind") == "dummy"]
    assert len(dummies) == 1 and lab.ping(d1, "10.99.0.3")
    run("DEL", isolated, d1, container_id="d1").ok()
    run("DEL", isolated, d2, container_id="d2").ok()
    assert dummies[0] not in lab.node_links()


@pytest.mark.parametrize("first", ["macvlan", "ipvlan"])
def test_a_parent_takes_macvlan_or_ipvlan_links_never_both(
    run: MacvlanRunner, lab: Lab, tmp_path: Path, first: str
) -> None:
    """The kernel refuses the second kind on one parent: a clear error naming the parent and why,
    and nothing changed (no link, no lease, no record of the second)."""
    second = "ipvlan" if first == "macvlan" else "macvlan"
    one = conf(tmp_path, "first", "upl0.70", "10.70.0.0/24", type=first)
    two = conf(tmp_path, "second", "upl0.70", "10.71.0.0/24", type=second)
    c1, c2 = lab.container("c1"), lab.container("c2")
    run("ADD", one, c1, container_id="c1", plugin=first).ok()
    err = run("ADD", two, c2, container_id="c2", plugin=second).error
    assert err["code"] == 999 and 'master "upl0.70" carries' in err["msg"] and "never both" in err["msg"], err
    assert set(lab.links(c2)) == {"lo"}
    assert lease_files(tmp_path / "leases", "second") == {}
    assert [att[0] for att in owned_parents(tmp_path / "state")["upl0.70"]["attachments"]] == ["first"]
    run("DEL", one, c1, container_id="c1", plugin=first).ok()
    assert "upl0.70" not in lab.node_links() and owned_parents(tmp_path / "state") == {}


def test_a_kill_9_at_each_step_of_add_is_cleaned_up_by_del_and_gc(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    config = conf(tmp_path, "ipvlan50", "upl0.50", "192.168.50.0/24")
    steps = ["parent-recorded", "parent-created", "parent-acquired", "link-created", "ipam-added"]
    for i, step in enumerate(steps):
        ns = lab.container(f"k{i}")
        out = run("ADD", config, ns, container_id=f"k{i}", CNI_MACVLAN_CRASH_AT=step)
        assert out.code in (-signal.SIGKILL, 128 + signal.SIGKILL), (step, out.code, out.stdout)
        if i % 2:
            lab.remove_netns(ns)
            run("GC", {**config, "cni.dev/valid-attachments": []}).ok()
        else:
            run("DEL", config, ns, container_id=f"k{i}").ok()
            assert set(lab.links(ns)) == {"lo"}, step
        assert owned_parents(tmp_path / "state") == {} and "upl0.50" not in lab.node_links(), step
        assert lease_files(tmp_path / "leases", "ipvlan50") == {}, step


def test_chained_without_ipam_it_takes_the_addresses_of_prev_result(
    run: MacvlanRunner, lab: Lab, tmp_path: Path
) -> None:
    config = conf(tmp_path)
    config["ipam"] = {}
    c1 = lab.container("c1")
    prev = {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "sandbox": c1}],
        "ips": [{"address": "10.77.0.42/24", "gateway": GATEWAY4, "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    result = run("ADD", {**config, "prevResult": prev}, c1, container_id="c1").ok()
    assert [ip["address"] for ip in result["ips"]] == ["10.77.0.42/24"]
    assert lab.ping(c1, GATEWAY4)
    run("DEL", config, c1, container_id="c1").ok()


# ---- with upstream's Go plugins (the release pinned in tools/versions.env) ----


def test_ours_with_gos_host_local_and_gos_ipvlan_with_ours(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    """Our ipvlan delegating to Go's host-local, and Go's ipvlan delegating to our host-local (the
    runner's directory holds ours; Go's comes first in CNI_PATH where it is theirs to run)."""
    go_ipvlan, go_host_local = upstream_plugin("ipvlan"), upstream_plugin("host-local")
    ours_dir = run.plugin_dir
    config = conf(tmp_path, "mixed", version="1.1.0")
    c1, c2 = lab.container("c1"), lab.container("c2")
    with_go_ipam = run("ADD", config, c1, container_id="c1", CNI_PATH=f"{go_host_local.parent}:{ours_dir}")
    assert with_go_ipam.ok()["ips"][0]["address"] == "10.77.0.2/24"
    go_env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c2", "CNI_NETNS": c2, "CNI_IFNAME": "eth0"}
    go_env["CNI_PATH"] = str(ours_dir)
    go = lab.run([str(go_ipvlan)], go_env, config)
    assert go.ok()["ips"][0]["address"] == "10.77.0.3/24", "one store, two implementations"
    assert lab.ping(c1, "10.77.0.3") and lab.ping(c2, GATEWAY4)
    run("DEL", config, c1, container_id="c1", CNI_PATH=f"{go_host_local.parent}:{ours_dir}").ok()
    assert lab.run([str(go_ipvlan)], {**go_env, "CNI_COMMAND": "DEL"}, config).code == 0
    assert lease_files(tmp_path / "leases", "mixed") == {}


def test_results_are_gos_for_every_version_it_has(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    """L2 (upstream's only behaviour), each with its own host-local and store, in one container: the
    same result (an ipvlan's MAC is its parent's, so even that agrees)."""
    go = upstream_plugin("ipvlan")
    for version in UPSTREAM_VERSIONS:
        ns = lab.container(f"v{version.replace('.', '')}")
        results = {}
        for impl in ("ours", "go"):
            config = {**conf(tmp_path / impl / version, "cmpnet"), "cniVersion": version}
            if impl == "ours":
                results[impl] = run("ADD", config, ns, container_id="cmp").ok()
                run("DEL", config, ns, container_id="cmp").ok()
                continue
            env = {"CNI_CONTAINERID": "cmp", "CNI_NETNS": ns, "CNI_IFNAME": "eth0", "CNI_PATH": str(go.parent)}
            results[impl] = lab.run([str(go)], {**env, "CNI_COMMAND": "ADD"}, config).ok()
            assert lab.run([str(go)], {**env, "CNI_COMMAND": "DEL"}, config).code == 0
        assert results["ours"] == results["go"], version
