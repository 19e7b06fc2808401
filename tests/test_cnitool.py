"""The reference client: cnitool (libcni 1.1.2, Debian's source) runs ADD, CHECK and DEL of our plugins, in
each layout we ship, on the lab's node (tests/support/cnitool.py).

What libcni does that the lab's calls don't: it re-serialises each plugin's config (sorted keys) with
``runtimeConfig`` holding only the capabilities the plugin declares, writes the result to its cache
(/var/lib/cni/results) and gives it back as ``prevResult`` to CHECK and DEL, DELs the chain in reverse,
and DELs again without a prevResult once the entry is gone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cnitool import Cnitool
from tests.support.configs import conflist, macvlan_conf
from tests.support.lab import GATEWAY4, GATEWAY6, SUBNET4, SUBNET6, Lab, lease_files, sh
from tests.support.layouts import SHIPPED, UPSTREAM_PLUGINS, layout_env, plugin_dir, upstream_plugin
from tests.support.runners import PluginLog, ServedPerLog

pytestmark = [pytest.mark.runtime, pytest.mark.netns]

MAC = "c2:11:22:33:44:55"


class Node:
    """The lab's node with cnitool, our plugins in a layout first in CNI_PATH, and upstream's Go plugins after."""

    def __init__(self, lab: Lab, tmp_path: Path, layout: str, env: dict[str, str]) -> None:
        self.lab = lab
        self.dir = tmp_path
        self.log = PluginLog(tmp_path / "plugins.log")
        self.cnitool = Cnitool(
            tmp_path / "cnitool", f"/run/netns/{lab.node}", plugin_dir(layout, tmp_path / "bin"), env
        )

    @property
    def leases(self) -> Path:
        return self.dir / "leases"

    def network(self, name: str, version: str = "1.0.0", dual: bool = False, chain: tuple = (), **top: Any) -> str:
        ranges = [[{"subnet": SUBNET4, "gateway": GATEWAY4}]]
        routes = [{"dst": "0.0.0.0/0"}]
        if dual:
            ranges.append([{"subnet": SUBNET6, "gateway": GATEWAY6}])
            routes.append({"dst": "::/0"})
        ipam = {"type": "host-local", "ranges": ranges, "routes": routes}
        entry = macvlan_conf(
            name,
            self.leases,
            self.dir / "parents",
            version=version,
            ipam=ipam,
            logFile=str(self.log.path),
            logLevel="debug",
            **top,
        )
        return self.cnitool.network(conflist(name, entry, *chain, version=version))


@pytest.fixture(params=SHIPPED)
def node(request: pytest.FixtureRequest, lab: Lab, tmp_path: Path) -> Iterator[Node]:
    upstream_plugin("tuning")
    zygote = request.getfixturevalue("zygote") if request.param == "zygote" else None
    n = Node(lab, tmp_path, request.param, layout_env(request.param, zygote))
    if zygote:
        ServedPerLog(request, n.log)
    yield n
    assert n.cnitool.cached() == [], "every DEL removed libcni's cache entry"


@pytest.mark.parametrize("how", ["CAP_ARGS", "CNI_ARGS"])
def test_add_check_del_with_the_address_and_mac_asked_for(node: Node, how: str) -> None:
    net = node.network("asked", capabilities={"ips": True, "mac": True})
    ns = node.lab.container("c1")
    asked: dict[str, Any] = {}
    if how == "CAP_ARGS":
        asked["cap_args"] = {"ips": ["10.77.0.50/24"], "mac": MAC}
    else:
        asked["cni_args"] = f"IgnoreUnknown=1;IP=10.77.0.50;MAC={MAC}"
    result = node.cnitool("add", net, ns, **asked).ok()
    assert result["ips"] == [{"interface": 0, "address": "10.77.0.50/24", "gateway": GATEWAY4}]
    assert result["interfaces"] == [{"name": "eth0", "mac": MAC, "sandbox": ns}]
    assert node.lab.links(ns)["eth0"]["address"] == MAC
    assert node.lab.addresses(ns, "eth0") == ["10.77.0.50/24"]
    assert node.lab.ping(ns, GATEWAY4)
    cid = node.cnitool.container_id(ns)
    assert lease_files(node.leases, net) == {"10.77.0.50": f"{cid}\r\neth0"}

    entry = json.loads(node.cnitool.cache_entry(net, ns).read_text())
    assert (entry["kind"], entry["containerId"], entry["ifName"], entry["networkName"]) == (
        "cniCacheV1",
        cid,
        "eth0",
        net,
    )
    assert entry["result"] == result
    if how == "CAP_ARGS":
        assert entry["capabilityArgs"] == asked["cap_args"]
    else:
        assert entry["cniArgs"] == [["IgnoreUnknown", "1"], ["IP", "10.77.0.50"], ["MAC", MAC]]

    check = node.cnitool("check", net, ns, **asked)
    assert (check.code, check.stdout) == (0, ""), check.stderr
    out = node.cnitool("del", net, ns, **asked)
    assert (out.code, out.stdout) == (0, ""), out.stderr
    assert "eth0" not in node.lab.links(ns)
    assert lease_files(node.leases, net) == {}
    assert not node.cnitool.cache_entry(net, ns).exists()


def test_only_the_declared_capabilities_reach_the_plugins(node: Node) -> None:
    net = node.network("maconly", capabilities={"mac": True})
    ns = node.lab.container("c1")
    result = node.cnitool("add", net, ns, cap_args={"ips": ["10.77.0.50/24"], "mac": MAC}).ok()
    assert result["interfaces"][0]["mac"] == MAC
    assert result["ips"][0]["address"] == "10.77.0.2/24", "the ips not declared were not passed on"
    node.cnitool("del", net, ns).ok()
    assert lease_files(node.leases, net) == {}


@pytest.mark.parametrize("version", ["1.0.0", "0.4.0"])
def test_a_chain_with_gos_tuning_after_our_macvlan_dual_stack(node: Node, version: str) -> None:
    tuning = {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}}
    net = node.network("chained", version=version, dual=True, chain=(tuning,))
    ns = node.lab.container("c1")
    result = node.cnitool("add", net, ns).ok()
    assert result["cniVersion"] == version
    assert [ip["address"] for ip in result["ips"]] == ["10.77.0.2/24", "fd77::2/64"]
    assert (
        sh("ip", "netns", "exec", os.path.basename(ns), "cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify").stdout
        == "1\n"
    )
    assert node.lab.ping(ns, GATEWAY4) and node.lab.ping(ns, GATEWAY6)
    assert json.loads(node.cnitool.cache_entry(net, ns).read_text())["result"] == result
    check = node.cnitool("check", net, ns)
    assert (check.code, check.stdout) == (0, ""), check.stderr
    node.cnitool("del", net, ns).ok()
    assert "eth0" not in node.lab.links(ns)
    assert lease_files(node.leases, net) == {}


def test_a_second_del_and_a_del_after_the_namespace_is_gone(node: Node) -> None:
    net = node.network("deleted")
    kept, gone = node.lab.container("kept"), node.lab.container("gone")
    node.cnitool("add", net, kept).ok()
    node.cnitool("add", net, gone).ok()
    node.lab.remove_netns(gone)
    for ns in (kept, gone, kept, gone):  # the second DEL of each finds no cache entry: no prevResult
        out = node.cnitool("del", net, ns)
        assert (out.code, out.stdout) == (0, ""), out.stderr
        assert not node.cnitool.cache_entry(net, ns).exists()
    assert lease_files(node.leases, net) == {}
    assert "eth0" not in node.lab.links(kept)
    assert set(node.lab.node_links()) == {"lo", "upl0"}


def test_ours_and_gos_plugins_share_one_store_through_cnitool(node: Node) -> None:
    """Two containers on one network and store, one by our plugins and one by upstream's Go plugins (CNI_PATH
    their directory alone); each implementation CHECKs and DELs the other's attachment."""
    upstream_plugin("macvlan")
    ours, gos = node.cnitool.cni_path, [UPSTREAM_PLUGINS]
    net = node.network("shared")
    c1, c2 = node.lab.container("c1"), node.lab.container("c2")
    r1 = node.cnitool("add", net, c1, cni_path=ours).ok()
    r2 = node.cnitool("add", net, c2, cni_path=gos).ok()
    assert [r1["ips"][0]["address"], r2["ips"][0]["address"]] == ["10.77.0.2/24", "10.77.0.3/24"]
    cids = [node.cnitool.container_id(ns) for ns in (c1, c2)]
    assert lease_files(node.leases, net) == {"10.77.0.2": f"{cids[0]}\r\neth0", "10.77.0.3": f"{cids[1]}\r\neth0"}
    assert node.lab.ping(c1, "10.77.0.3")
    assert cids[0] in node.log.text() and cids[1] not in node.log.text(), "c1 is ours, c2 Go's"
    for ns, path in ((c1, gos), (c2, ours)):
        check = node.cnitool("check", net, ns, cni_path=path)
        assert (check.code, check.stdout) == (0, ""), check.stderr
    for ns, path in ((c1, gos), (c2, ours)):
        out = node.cnitool("del", net, ns, cni_path=path)
        assert (out.code, out.stdout) == (0, ""), out.stderr
        assert "eth0" not in node.lab.links(ns)
    assert lease_files(node.leases, net) == {}
