"""The ipvlan plugin's config (cni_macvlan/ipvlan.py): pure, no kernel. Upstream's keys and
words, Docker's flag, the parents' plan shared with macvlan, chained use."""

from __future__ import annotations

from typing import Any

import pytest

from cni.errors import CNIError
from cni.request import Request
from cni_macvlan import ipvlan
from cni_macvlan.links.parents import dummy_name


def load(args: str = "", command: str = "ADD", **keys: Any) -> ipvlan.IpvlanConf:
    net = {"cniVersion": "1.0.0", "name": "net", "type": "ipvlan", **keys}
    return ipvlan.load(Request(command, net, "1.0.0", args=args))


def test_defaults_and_the_shared_parent_plan() -> None:
    conf = load(master="eth0.50")
    assert (conf.mode, conf.flag, conf.mtu, conf.link_in_container) == ("l2", "bridge", 0, False)
    assert (conf.parent.kind, conf.parent.name, conf.parent.vid) == ("vlan", "eth0.50", 50)
    assert load().parent.name == dummy_name("net"), "master omitted: the network's dummy, as macvlan's"
    assert conf.state_dir == "/var/lib/cni/cni-macvlan", "one record of parents for both plugins"


@pytest.mark.parametrize("mode", ["l2", "l3", "l3s"])
@pytest.mark.parametrize("flag", ["bridge", "private", "vepa"])
def test_modes_and_flags(mode: str, flag: str) -> None:
    conf = load(master="eth0", mode=mode, flag=flag)
    assert (conf.mode, conf.flag) == (mode, flag)


@pytest.mark.parametrize(
    "keys,args,code,words",
    [
        ({"mode": "bridge"}, "", 7, 'unknown ipvlan mode: "bridge"'),
        ({"mode": 3}, "", 7, "unknown ipvlan mode: 3"),
        ({"flag": "passthru"}, "", 7, 'unknown ipvlan flag: "passthru"'),
        ({"mtu": -1}, "", 7, "invalid MTU -1, must be [0, master MTU]"),
        ({"linkInContainer": True, "master": "x" * 16}, "", 7, "interface names are at most 15 characters"),
        ({"master": "eth0.5000"}, "", 7, ""),  # refused when it has to be made (links/parents.acquire)
        ({"stateDir": "rel"}, "", 7, 'stateDir "rel" is relative'),
        ({}, "MAC=c2:00:00:00:00:01", 4, 'ARGS: unknown args ["MAC=c2:00:00:00:00:01"]'),
    ],
)
def test_each_mistake_is_refused_naming_the_key(keys: dict[str, Any], args: str, code: int, words: str) -> None:
    if not words:
        assert load(args, **keys).parent.vid == 5000  # planned; refused by acquire before anything is made
        return
    with pytest.raises(CNIError) as e:
        load(args, **keys)
    assert e.value.code == code and words in e.value.msg, e.value


def test_chained_its_master_is_the_single_interface_of_prev_result() -> None:
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "vlan0"}], "ips": []}
    assert load(prevResult=prev).master == "vlan0"
    assert load(command="CHECK", prevResult=prev).master == "", "CHECK's prevResult is its own result"
    two = {"cniVersion": "1.0.0", "interfaces": [{"name": "a"}, {"name": "b"}]}
    with pytest.raises(CNIError, match="chained master failure. PrevResult lacks a single named interface"):
        load(prevResult=two)
