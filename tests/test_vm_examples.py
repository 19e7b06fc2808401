"""The conf-examples that need 802.1Q, a dummy parent or ipvlan, in the VM lane, with the seed's addresses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.examples import addresses, load
from tests.support.lab import Lab, sh
from tests.support.layouts import dist_executable
from tests.support.runners import MacvlanRunner

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vlan_and_dummy")]


@pytest.fixture
def run(lab: Lab) -> MacvlanRunner:
    return MacvlanRunner(lab, dist_executable("fast/macvlan").parent, "fast")


def add_check(run: MacvlanRunner, config: dict, ns: str, cid: str, plugin: str = "macvlan") -> dict:
    result = run("ADD", config, ns, container_id=cid, plugin=plugin).ok()
    out = run("CHECK", {**config, "prevResult": result}, ns, container_id=cid, plugin=plugin)
    assert (out.code, out.stdout) == (0, ""), out.stdout
    return result


def test_macvlan50_and_macvlan60(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    lab.vlan_upstream(50, "192.168.50.1/24")
    lab.vlan_upstream(60, "192.168.60.1/24")
    a, b, c = lab.container("a"), lab.container("b"), lab.container("c")
    r50 = add_check(run, load("30-macvlan50.conflist", tmp_path), a, "a")
    add_check(run, load("30-macvlan50.conflist", tmp_path), b, "b")
    r60 = add_check(run, load("31-macvlan60.conflist", tmp_path), c, "c")
    assert addresses(r50) == ["192.168.50.2/24"] and addresses(r60) == ["192.168.60.2/24"]
    assert {"upl0.50", "upl0.60"} <= set(lab.node_links())
    assert lab.ping(a, "192.168.50.1") and lab.ping(a, "192.168.50.3") and lab.ping(c, "192.168.60.1")
    assert not lab.ping(a, "192.168.60.2")
    for cid, ns, name in (("a", a, "30-macvlan50"), ("b", b, "30-macvlan50"), ("c", c, "31-macvlan60")):
        run("DEL", load(f"{name}.conflist", tmp_path), ns, container_id=cid).ok()
    assert set(lab.node_links()) == {"lo", "upl0"}


def test_mcv101_requested_ips_land_in_their_subnet(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    lab.vlan_upstream(101, "10.1.20.1/24")
    sh("ip", "-n", lab.upstream, "addr", "add", "10.1.10.1/24", "dev", "upr0.101")
    a, b, c = lab.container("a"), lab.container("b"), lab.container("c")
    ra = add_check(run, load("40-mcv101.conflist", tmp_path, {"ips": ["10.1.20.10"]}), a, "a")
    rb = add_check(run, load("40-mcv101.conflist", tmp_path, {"ips": ["10.1.10.10"]}), b, "b")
    rc = add_check(run, load("40-mcv101.conflist", tmp_path, {"ips": ["10.1.20.11"]}), c, "c")
    assert [(ip["address"], ip["gateway"]) for r in (ra, rb) for ip in r["ips"]] == [
        ("10.1.20.10/24", "10.1.20.1"),
        ("10.1.10.10/24", "10.1.10.1"),
    ]
    assert addresses(rc) == ["10.1.20.11/24"]
    assert lab.ping(a, "10.1.20.11"), "containers of one subnet reach each other"
    assert lab.ping(b, "10.1.10.1")


def test_macvlan216_one_v4_and_one_v6_each(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    lab.vlan_upstream(218, "192.168.216.1/24")
    sh("ip", "-n", lab.upstream, "addr", "add", "2001:db8:abc8::10/64", "dev", "upr0.218", "nodad")
    a, b = lab.container("a"), lab.container("b")
    ra = add_check(run, load("50-macvlan216.conflist", tmp_path), a, "a")
    rb = add_check(run, load("50-macvlan216.conflist", tmp_path, {"ips": ["2001:db8:abc8::20"]}), b, "b")
    assert addresses(ra) == ["192.168.216.2/24", "2001:db8:abc8::1/64"]
    assert addresses(rb)[1] == "2001:db8:abc8::20/64"
    assert any(r.startswith("default via 2001:db8:abc8::10") for r in lab.routes(a, "-6"))
    assert lab.ping(a, "2001:db8:abc8::10") and lab.ping(a, "2001:db8:abc8::20")


@pytest.mark.parametrize("example,name", [("70-macvlan40.conflist", "upl0.40"), ("71-foo.conflist", "foo")])
def test_pre_made_parents_are_used_and_kept(
    run: MacvlanRunner, lab: Lab, tmp_path: Path, example: str, name: str
) -> None:
    sh("ip", "-n", lab.node, "link", "add", "link", "upl0", "name", name, "type", "vlan", "id", "40")
    config = load(example, tmp_path)
    ns = lab.container("c1")
    add_check(run, config, ns, "c1")
    run("DEL", config, ns, container_id="c1").ok()
    assert name in lab.node_links()


def test_no_parent_means_an_isolated_dummy(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    config = load("80-no-parent.conflist", tmp_path)
    a, b = lab.container("a"), lab.container("b")
    add_check(run, config, a, "a")
    add_check(run, config, b, "b")
    assert lab.ping(a, "10.99.0.3")
    for cid, ns in (("a", a), ("b", b)):
        run("DEL", config, ns, container_id=cid).ok()
    assert set(lab.node_links()) == {"lo", "upl0"}


# ---- Docker's ipvlan networks (its guide: "replace macvlan with ipvlan in the -d driver argument") ----


def test_ipvlan50_and_ipvlan60(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    lab.vlan_upstream(50, "192.168.50.1/24")
    lab.vlan_upstream(60, "192.168.60.1/24")
    a, b, c = lab.container("a"), lab.container("b"), lab.container("c")
    ipvlan = {"plugin": "ipvlan"}
    r50 = add_check(run, load("32-ipvlan50.conflist", tmp_path), a, "a", **ipvlan)
    add_check(run, load("32-ipvlan50.conflist", tmp_path), b, "b", **ipvlan)
    r60 = add_check(run, load("33-ipvlan60.conflist", tmp_path), c, "c", **ipvlan)
    assert addresses(r50) == ["192.168.50.2/24"] and addresses(r60) == ["192.168.60.2/24"]
    assert r50["interfaces"][0]["mac"] == lab.node_links()["upl0.50"]["address"]
    assert lab.ping(a, "192.168.50.1") and lab.ping(a, "192.168.50.3") and lab.ping(c, "192.168.60.1")
    assert not lab.ping(a, "192.168.60.2")
    for cid, ns, name in (("a", a, "32-ipvlan50"), ("b", b, "32-ipvlan50"), ("c", c, "33-ipvlan60")):
        run("DEL", load(f"{name}.conflist", tmp_path), ns, container_id=cid, plugin="ipvlan").ok()
    assert set(lab.node_links()) == {"lo", "upl0"}


def test_ipvlan216_one_v4_and_one_v6_each(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    lab.vlan_upstream(218, "192.168.216.1/24")
    sh("ip", "-n", lab.upstream, "addr", "add", "2001:db8:abc8::10/64", "dev", "upr0.218", "nodad")
    a = lab.container("a")
    ra = add_check(
        run, load("52-ipvlan216.conflist", tmp_path, {"ips": ["2001:db8:abc8::20"]}), a, "a", plugin="ipvlan"
    )
    assert addresses(ra) == ["192.168.216.2/24", "2001:db8:abc8::20/64"]
    assert lab.ping(a, "192.168.216.1") and lab.ping(a, "2001:db8:abc8::10")


def test_ipnet210_l3_routes_between_two_subnets(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    """Docker's ipvlan L3 example: two subnets on one parent, no gateway; the kernel routes between
    the slaves, so containers of different subnets reach each other."""
    a, b = lab.container("a"), lab.container("b")
    ra = add_check(run, load("62-ipnet210-l3.conflist", tmp_path, {"ips": ["192.168.214.10"]}), a, "a", plugin="ipvlan")
    rb = add_check(run, load("62-ipnet210-l3.conflist", tmp_path, {"ips": ["10.1.214.10"]}), b, "b", plugin="ipvlan")
    assert addresses(ra) == ["192.168.214.10/24"] and addresses(rb) == ["10.1.214.10/24"]
    assert "gateway" not in ra["ips"][0] and ra["routes"] == [{"dst": "0.0.0.0/0"}]
    assert lab.ping(a, "10.1.214.10") and lab.ping(b, "192.168.214.10")


def test_ipvlan_without_a_parent_is_an_isolated_dummy(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    config = load("82-ipvlan-no-parent.conflist", tmp_path)
    a, b = lab.container("a"), lab.container("b")
    add_check(run, config, a, "a", plugin="ipvlan")
    add_check(run, config, b, "b", plugin="ipvlan")
    assert lab.ping(a, "10.98.0.3")
    for cid, ns in (("a", a), ("b", b)):
        run("DEL", config, ns, container_id=cid, plugin="ipvlan").ok()
    assert set(lab.node_links()) == {"lo", "upl0"}
