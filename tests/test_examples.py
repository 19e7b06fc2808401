"""Every conf-example that this kernel can run (untagged parents), through ADD, CHECK and DEL, with the
addresses the seed document describes. The VLAN and dummy examples are in test_vm_examples.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.examples import EXAMPLES, addresses, load
from tests.support.lab import Lab, lease_files, sh
from tests.support.layouts import ROOT, dist_executable
from tests.support.runners import MacvlanRunner

pytestmark = pytest.mark.netns


@pytest.fixture
def run(lab: Lab) -> MacvlanRunner:
    return MacvlanRunner(lab, dist_executable("fast/macvlan").parent, "fast")


def upstream_addr(lab: Lab, *cidrs: str) -> None:
    for cidr in cidrs:
        sh("ip", "-n", lab.upstream, "addr", "add", cidr, "dev", "upr0", "nodad")


def add_check_del(run: MacvlanRunner, config: dict, ns: str, cid: str, **env: str) -> dict:
    result = run("ADD", config, ns, container_id=cid, **env).ok()
    out = run("CHECK", {**config, "prevResult": result}, ns, container_id=cid, **env)
    assert (out.code, out.stdout) == (0, ""), out.stdout
    return result


def test_pub_net_requested_ip_then_round_robin(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    upstream_addr(lab, "172.16.86.1/24")
    c1, c2 = lab.container("c1"), lab.container("c2")
    first = add_check_del(run, load("10-pub_net.conflist", tmp_path, {"ips": ["172.16.86.10"]}), c1, "c1")
    assert addresses(first) == ["172.16.86.10/24"]
    assert first["ips"][0]["gateway"] == "172.16.86.1"
    second = add_check_del(run, load("10-pub_net.conflist", tmp_path), c2, "c2")
    assert addresses(second) == ["172.16.86.11/24"], "round robin goes on after the last reserved address"
    assert lab.ping(c2, "172.16.86.10") and lab.ping(c1, "172.16.86.1")
    for cid, ns in (("c1", c1), ("c2", c2)):
        run("DEL", load("10-pub_net.conflist", tmp_path), ns, container_id=cid).ok()
    assert lease_files(tmp_path / "leases", "pub_net") == {}


def test_pub_net_aux_address_is_never_handed_out(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    config = load("11-pub_net-aux-address.conflist", tmp_path)
    ns = [lab.container(f"c{i}") for i in range(3)]
    got = [
        addresses(
            add_check_del(
                run, load("11-pub_net-aux-address.conflist", tmp_path, {"ips": ["172.16.86.249"]}), ns[0], "c0"
            )
        )[0]
    ]
    got += [addresses(add_check_del(run, config, ns[i], f"c{i}"))[0] for i in (1, 2)]
    assert got == ["172.16.86.249/24", "172.16.86.251/24", "172.16.86.252/24"]
    err = run(
        "ADD",
        load("11-pub_net-aux-address.conflist", tmp_path, {"ips": ["172.16.86.250"]}),
        lab.container("x"),
        container_id="x",
    ).error
    assert "excluded" in err["msg"]


def test_macnet32_starts_at_the_ip_range(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    result = add_check_del(run, load("20-macnet32.conflist", tmp_path), lab.container("c1"), "c1")
    assert addresses(result) == ["192.168.32.128/24"]
    assert result["ips"][0]["gateway"] == "192.168.32.254"


def test_mcv0_two_subnets_with_ip_ranges_dual_stack_and_inferred_gateways(
    run: MacvlanRunner, lab: Lab, tmp_path: Path
) -> None:
    result = add_check_del(run, load("60-mcv0.conflist", tmp_path), lab.container("c1"), "c1")
    assert addresses(result) == ["192.168.136.3/24", "fd11::3/64"]
    assert [ip["gateway"] for ip in result["ips"]] == ["192.168.136.1", "fd11::1"]


def test_vlan30_host_bits_are_refused_naming_the_network(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    ns = lab.container("c1")
    err = run("ADD", load("90-vlan30-host-bits.conflist", tmp_path), ns).error
    assert err["code"] == 7 and "10.1.0.0/16" in err["msg"]
    assert set(lab.links(ns)) == {"lo"}
    assert not (tmp_path / "state" / "parents.json").exists()


def test_the_podman_conflist(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    upstream_addr(lab, "10.88.0.1/24")
    ns = lab.container("c1")
    config = load("podman-macvlan.conflist", tmp_path, {"ips": ["10.88.0.50"], "mac": "c2:11:22:33:44:55"})
    result = add_check_del(run, config, ns, "c1")
    assert addresses(result) == ["10.88.0.50/24"] and result["interfaces"][0]["mac"] == "c2:11:22:33:44:55"
    assert lab.ping(ns, "10.88.0.1")


def test_the_multus_network_attachment_definition_is_a_valid_conflist() -> None:
    text = (ROOT / "deploy" / "network-attachment-definition.yaml").read_text()
    config = json.loads(text.split("config: |", 1)[1])
    plugin = config["plugins"][0]
    assert (config["name"], plugin["type"], plugin["master"]) == ("macvlan50", "macvlan", "eth0.50")
    assert plugin["capabilities"] == {"ips": True, "mac": True}


def test_every_example_is_exercised_somewhere() -> None:
    tested = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*examples.py"))
    for example in EXAMPLES.iterdir():
        assert example.name in tested, f"{example.name} has no test"


def test_multus_style_calls(run: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    """As a Multus delegate: net1, IgnoreUnknown with the pod's K8S_* args, runtimeConfig ips and mac,
    and args.cni.ips."""
    upstream_addr(lab, "172.16.86.1/24")
    ns = lab.container("pod")
    args = "IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc"
    config = load("10-pub_net.conflist", tmp_path, {"ips": ["172.16.86.20/24"], "mac": "c2:00:00:00:00:20"})
    result = run("ADD", config, ns, ifname="net1", container_id="abc", CNI_ARGS=args).ok()
    assert result["interfaces"][0] == {"name": "net1", "mac": "c2:00:00:00:00:20", "sandbox": ns}
    assert addresses(result) == ["172.16.86.20/24"]
    other = {**load("10-pub_net.conflist", tmp_path), "args": {"cni": {"ips": ["172.16.86.21"]}}}
    assert addresses(run("ADD", other, ns, ifname="net2", container_id="abc", CNI_ARGS=args).ok()) == [
        "172.16.86.21/24"
    ]
    assert lab.ping(ns, "172.16.86.1")
    for ifname, conf in (("net1", config), ("net2", other)):
        run("DEL", conf, ns, ifname=ifname, container_id="abc", CNI_ARGS=args).ok()
    assert set(lab.links(ns)) == {"lo"}
    assert lease_files(tmp_path / "leases", "pub_net") == {}
