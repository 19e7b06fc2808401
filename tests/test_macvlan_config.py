"""The macvlan plugin's config (cni_macvlan/macvlan.py): pure, no kernel. What each key means,
upstream's precedence for the MAC, Docker's parent plan, and an error naming the key for each
mistake; DEL, GC and STATUS read only what they need."""

from __future__ import annotations

from typing import Any

import pytest

from cni.errors import CNIError
from cni.request import Request
from cni_macvlan import macvlan
from cni_macvlan.attach.config import load_teardown
from cni_macvlan.links.parents import dummy_name


def load(args: str = "", **keys: Any) -> macvlan.NetConf:
    return macvlan.load(
        Request("ADD", {"cniVersion": "1.0.0", "name": "net", "type": "macvlan", **keys}, "1.0.0", args=args)
    )


def refused(args: str = "", **keys: Any) -> CNIError:
    with pytest.raises(CNIError) as e:
        load(args, **keys)
    return e.value


def test_defaults() -> None:
    conf = load(master="eth0")
    assert (conf.mode, conf.mtu, conf.mac, conf.link_in_container, conf.bcqueuelen) == ("bridge", 0, "", False, 0)
    assert (conf.ipam_type, conf.dns, conf.state_dir) == ("", {}, "/var/lib/cni/cni-macvlan")
    assert (conf.parent.name, conf.parent.kind) == ("eth0", "link")


@pytest.mark.parametrize(
    "master,kind,name",
    [("eth0", "link", "eth0"), ("eth0.50", "vlan", "eth0.50"), ("", "dummy", dummy_name("net"))],
)
def test_the_parent_plan_is_part_of_the_config(master: str, kind: str, name: str) -> None:
    conf = load(master=master) if master else load()
    assert (conf.parent.kind, conf.parent.name) == (kind, name)


@pytest.mark.parametrize("master", ["eth1", "eth1.50", ""])
def test_with_link_in_container_the_parent_is_the_container_s_interface_as_it_is(master: str) -> None:
    """Nothing is created in a container: "eth1.50" is an interface it has, and an omitted master is its
    default route's interface (found at ADD, as upstream since v1.6.0), not a dummy."""
    conf = load(master=master, linkInContainer=True) if master else load(linkInContainer=True)
    assert (conf.parent.kind, conf.parent.name) == ("link", master)


def test_the_mac_comes_from_runtime_config_over_cni_args_over_the_config() -> None:
    assert load(mac="c2:00:00:00:00:01").mac == "c2:00:00:00:00:01"
    assert load("MAC=c2-00-00-00-00-02", mac="c2:00:00:00:00:01").mac == "c2:00:00:00:00:02"
    runtime = {"mac": "C2:00:00:00:00:03"}
    assert load("MAC=c2:00:00:00:00:02", mac="c2:00:00:00:00:01", runtimeConfig=runtime).mac == "c2:00:00:00:00:03"


@pytest.mark.parametrize(
    "keys,args,code,words",
    [
        ({"mode": "bogus"}, "", 7, 'unknown macvlan mode: "bogus"'),
        ({"mtu": -1}, "", 7, "invalid MTU -1, must be [0, master MTU]"),
        ({"mtu": 70000}, "", 7, "invalid mtu 70000, must be [0, 65535]"),
        ({"mtu": "1500"}, "", 7, "mtu must be an integer"),
        ({"bcqueuelen": -1}, "", 7, "invalid bcqueuelen -1"),
        ({"linkInContainer": "yes"}, "", 7, "linkInContainer must be true or false"),
        ({"linkInContainer": True, "master": "enp129s0f1np1.50"}, "", 7, "interface names are at most 15"),
        ({"master": 5}, "", 7, "master must be an interface name"),
        ({"master": "enp129s0f1np1.50"}, "", 7, "interface names are at most 15 characters"),
        ({"mac": "01:00:00:00:00:01"}, "", 7, "is a multicast MAC address"),
        ({"mac": "zz"}, "", 7, "invalid args zz for MAC addr: mac"),
        ({}, "MAC=zz", 7, "for MAC addr: CNI_ARGS MAC"),
        ({}, "FOO=1", 4, 'ARGS: unknown args ["FOO=1"]'),
        ({"ipam": []}, "", 7, "ipam must be an object"),
        ({"ipam": {"type": 5}}, "", 7, "ipam.type must be a plugin name"),
        ({"dns": "8.8.8.8"}, "", 7, "dns must be an object"),
        ({"stateDir": "relative/dir"}, "", 7, 'stateDir "relative/dir" is relative'),
    ],
)
def test_each_mistake_is_refused_naming_the_key(keys: dict[str, Any], args: str, code: int, words: str) -> None:
    error = refused(args, **keys)
    assert error.code == code and words in error.msg, error


def test_ip_in_cni_args_is_for_the_ipam_and_accepted() -> None:
    assert load("IP=10.1.2.3", master="eth0").master == "eth0"


def test_teardown_reads_only_what_del_gc_and_status_need() -> None:
    """A config ADD would refuse (a mode since removed, say) can still be torn down."""
    req = Request("DEL", {"name": "net", "mode": "bogus", "stateDir": "/s", "ipam": {"type": "host-local"}}, "1.0.0")
    conf = load_teardown(req)
    assert (conf.ipam_type, conf.state_dir) == ("host-local", "/s")
