"""The macvlan plugin in real namespaces: upstream macvlan_test.go cases for every CNI version, modes,
MAC precedence, MTU, CHECK, DEL idempotency, and no leftovers after any failing ADD."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import kernel
from tests.support.cni_schema import validate_result
from tests.support.configs import macvlan_conf
from tests.support.lab import GATEWAY4, GATEWAY6, SUBNET4, SUBNET6, Lab, lease_files
from tests.support.layouts import ALL_VERSIONS
from tests.support.runners import MacvlanRunner

pytestmark = pytest.mark.netns
V020 = ("0.1.0", "0.2.0")


def conf(data_dir: Path, version: str = "1.0.0", ipam: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    if ipam is None:
        ipam = {
            "type": "host-local",
            "ranges": [[{"subnet": SUBNET4, "gateway": GATEWAY4}]],
            "routes": [{"dst": "0.0.0.0/0"}],
        }
    state = data_dir.parent / "parents-state"
    return macvlan_conf("mvnet", data_dir, state, version=version, ipam=ipam, **{"mode": "bridge", **top})


def with_prev(config: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    return {**config, "prevResult": result}


def v4_addresses(lab: Lab, netns: str, ifname: str = "eth0") -> list[str]:
    return [a for a in lab.addresses(netns, ifname) if ":" not in a]


def links(lab: Lab, netns: str) -> set[str]:
    return set(lab.links(netns)) - {"lo"}


# ---- upstream cases, every version, master on the node or in the container ----


@pytest.fixture(params=[False, True], ids=["master-on-node", "linkInContainer"])
def link_in_container(request: pytest.FixtureRequest) -> bool:
    return request.param


def master_for(lab: Lab, netns: str, in_container: bool) -> dict[str, Any]:
    if not in_container:
        return {"master": "upl0"}
    lab.link_in(netns, "eth1")
    return {"master": "eth1", "linkInContainer": True}


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_add_del_with_host_local(
    macvlan: MacvlanRunner, lab: Lab, data_dir: Path, version: str, link_in_container: bool
) -> None:
    ns = lab.container("c1")
    config = conf(data_dir, version, **master_for(lab, ns, link_in_container))
    result = macvlan("ADD", config, ns, ifname="macvl0", container_id="dummy").ok()
    validate_result(result)
    seen = kernel.link(ns, "macvl0")  # pyroute2's view, independent of our netlink code and of ip(8)
    assert seen is not None and (seen.kind, seen.mode) == ("macvlan", "bridge")
    assert seen.addresses == [
        (result["ip4"] if version in V020 else result["ips"][0])["ip" if version in V020 else "address"]
    ]
    link = lab.links(ns)["macvl0"]
    assert seen.mac == link["address"] and seen.index == link["ifindex"]
    assert link["linkinfo"]["info_kind"] == "macvlan"
    assert link["linkinfo"]["info_data"]["mode"] == "bridge"
    assert len(v4_addresses(lab, ns, "macvl0")) == 1
    if version in V020:
        assert result["ip4"]["ip"] == v4_addresses(lab, ns, "macvl0")[0]
    else:
        assert result["interfaces"] == [{"name": "macvl0", "mac": link["address"], "sandbox": ns}]
        assert result["ips"][0]["interface"] == 0
    out = macvlan("DEL", config, ns, ifname="macvl0", container_id="dummy")
    assert (out.code, out.stdout) == (0, "")
    assert "macvl0" not in lab.links(ns)
    assert lease_files(data_dir, "mvnet") == {}


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_del_of_an_unconfigured_link_succeeds(macvlan: MacvlanRunner, lab: Lab, data_dir: Path, version: str) -> None:
    ns = lab.container("c1")
    out = macvlan("DEL", conf(data_dir, version), ns, ifname="macvl0")
    assert (out.code, out.stdout) == (0, "")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_l2_add_del(macvlan: MacvlanRunner, lab: Lab, data_dir: Path, version: str, link_in_container: bool) -> None:
    ns = lab.container("c1")
    config = conf(data_dir, version, ipam={}, **master_for(lab, ns, link_in_container))
    out = macvlan("ADD", config, ns)
    if version in V020:
        assert out.error["msg"] == "cannot convert: no valid IP addresses"
        assert links(lab, ns) <= {"eth1", "eth1p"}, "the failed ADD left its link behind"
        return
    result = out.ok()
    assert "ips" not in result
    assert lab.links(ns)["eth0"]["operstate"] in ("UP", "UNKNOWN", "LOWERLAYERDOWN")
    assert v4_addresses(lab, ns) == []
    macvlan("DEL", config, ns).ok()
    assert "eth0" not in lab.links(ns)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_add_check_del(macvlan: MacvlanRunner, lab: Lab, data_dir: Path, version: str, link_in_container: bool) -> None:
    ns = lab.container("c1")
    config = conf(data_dir, version, **master_for(lab, ns, link_in_container))
    result = macvlan("ADD", config, ns).ok()
    out = macvlan("CHECK", with_prev(config, result), ns)
    if version in ("0.1.0", "0.2.0", "0.3.0", "0.3.1"):
        assert out.error["msg"] == "config version does not allow CHECK"
    else:
        assert (out.code, out.stdout) == (0, ""), out.stdout
    macvlan("DEL", with_prev(config, result), ns).ok()
    assert "eth0" not in lab.links(ns)


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("source", ["CNI_ARGS", "runtimeConfig"])
def test_l2_with_a_mac_address(macvlan: MacvlanRunner, lab: Lab, data_dir: Path, version: str, source: str) -> None:
    ns = lab.container("c1")
    env = {}
    if source == "CNI_ARGS":
        config = conf(data_dir, version, ipam={})
        env["CNI_ARGS"] = "IgnoreUnknown=true;MAC=c2:11:22:33:44:55"
    else:  # upstream's test sends the key capitalised; Go's JSON matching is case-insensitive
        config = conf(
            data_dir, version, ipam={}, capabilities={"mac": True}, RuntimeConfig={"mac": "c2:11:22:33:44:55"}
        )
    out = macvlan("ADD", config, ns, **env)
    if version in V020:
        assert out.error["msg"] == "cannot convert: no valid IP addresses"
        return
    assert out.ok()["interfaces"][0]["mac"] == "c2:11:22:33:44:55"
    assert lab.links(ns)["eth0"]["address"] == "c2:11:22:33:44:55"
    macvlan("DEL", config, ns, **env).ok()
    assert "eth0" not in lab.links(ns)


# ---- traffic, modes, MAC precedence, MTU ----


@pytest.mark.parametrize("mode,peers_reach", [("bridge", True), ("private", False), ("vepa", False)])
def test_modes_decide_whether_containers_reach_each_other(
    macvlan: MacvlanRunner, lab: Lab, data_dir: Path, mode: str, peers_reach: bool
) -> None:
    config = conf(data_dir, mode=mode)
    c1, c2 = lab.container("c1"), lab.container("c2")
    a1 = macvlan("ADD", config, c1, container_id="c1").ok()["ips"][0]["address"].split("/")[0]
    a2 = macvlan("ADD", config, c2, container_id="c2").ok()["ips"][0]["address"].split("/")[0]
    assert (a1, a2) == ("10.77.0.2", "10.77.0.3")
    assert lab.links(c1)["eth0"]["linkinfo"]["info_data"]["mode"] == mode
    assert lab.ping(c1, GATEWAY4) and lab.ping(c2, GATEWAY4)
    assert lab.ping(c1, a2) is peers_reach
    assert lab.ping(c2, a1) is peers_reach


def test_passthru_takes_the_parent_for_one_container(macvlan: MacvlanRunner, lab: Lab, data_dir: Path) -> None:
    config = conf(data_dir, mode="passthru")
    c1, c2 = lab.container("c1"), lab.container("c2")
    macvlan("ADD", config, c1, container_id="c1").ok()
    assert lab.ping(c1, GATEWAY4)
    err = macvlan("ADD", config, c2, container_id="c2").error
    assert "failed to create macvlan" in err["msg"]
    assert links(lab, c2) == set()
    assert list(lease_files(data_dir, "mvnet")) == ["10.77.0.2"]


def test_mac_precedence_runtime_config_over_cni_args_over_config(
    macvlan: MacvlanRunner, lab: Lab, data_dir: Path
) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"mac": "c2:00:00:00:00:01"}, "", "c2:00:00:00:00:01"),
        ({"mac": "c2:00:00:00:00:01"}, "IgnoreUnknown=1;MAC=c2:00:00:00:00:02", "c2:00:00:00:00:02"),
        (
            {"mac": "c2:00:00:00:00:01", "runtimeConfig": {"mac": "c2:00:00:00:00:03"}},
            "IgnoreUnknown=1;MAC=c2:00:00:00:00:02",
            "c2:00:00:00:00:03",
        ),
    ]
    for i, (top, args, expected) in enumerate(cases):
        ns = lab.container(f"m{i}")
        result = macvlan("ADD", conf(data_dir, **top), ns, container_id=f"m{i}", CNI_ARGS=args).ok()
        assert result["interfaces"][0]["mac"] == expected
        assert lab.links(ns)["eth0"]["address"] == expected


def test_mtu_is_set_and_bounded_by_the_master(macvlan: MacvlanRunner, lab: Lab, data_dir: Path) -> None:
    ns = lab.container("c1")
    macvlan("ADD", conf(data_dir, mtu=1400), ns).ok()
    assert lab.links(ns)["eth0"]["mtu"] == 1400
    ns2 = lab.container("c2")
    err = macvlan("ADD", conf(data_dir, mtu=9000), ns2, container_id="c2").error
    assert err["msg"] == "invalid MTU 9000, must be [0, master MTU(1500)]"


def test_dual_stack_with_an_ipv6_gateway(macvlan: MacvlanRunner, lab: Lab, data_dir: Path) -> None:
    ipam = {
        "type": "host-local",
        "ranges": [[{"subnet": SUBNET4, "gateway": GATEWAY4}], [{"subnet": SUBNET6, "gateway": GATEWAY6}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
    }
    ns = lab.container("c1")
    result = macvlan("ADD", conf(data_dir, ipam=ipam), ns).ok()
    assert [ip["address"] for ip in result["ips"]] == ["10.77.0.2/24", "fd77::2/64"]
    assert "fd77::2/64" in lab.addresses(ns, "eth0")
    assert any(r.startswith("default via fd77::1 dev eth0") for r in lab.routes(ns, "-6"))
    assert lab.ping(ns, GATEWAY6), "DAD was waited for, so the address is usable at once"
    assert lab.ping(ns, GATEWAY4)
    macvlan("CHECK", with_prev(conf(data_dir, ipam=ipam), result), ns).ok()


def test_dns_from_the_config_is_returned(macvlan: MacvlanRunner, lab: Lab, data_dir: Path) -> None:
    ns = lab.container("c1")
    dns = {"nameservers": ["10.77.0.53"], "search": ["example.org"]}
    assert macvlan("ADD", conf(data_dir, dns=dns), ns).ok()["dns"] == dns


# ---- CHECK ----


def test_check_fails_after_the_address_is_removed(macvlan: MacvlanRunner, lab: Lab, data_dir: Path) -> None:
    ns = lab.container("c1")
    config = conf(data_dir, "0.4.0")
    result = macvlan("ADD", config, ns).ok()
    Lab_sh = __import__("tests.support.lab", fromlist=["sh"]).sh
    Lab_sh("ip", "-n", ns.rsplit("/", 1)[1], "addr", "flush", "dev", "eth0")
    err = macvlan("CHECK", with_prev(config, result), ns).error
    assert err["msg"] == f"Failed to match addr {result['ips'][0]['address']} on interface eth0"


def test_check_fails_after_the_link_is_removed(macvlan: MacvlanRunner, lab: Lab, data_dir: Path) -> None:
    from tests.support.lab import sh

    ns = lab.container("c1")
    config = conf(data_dir, "1.0.0")
    result = macvlan("ADD", config, ns).ok()
    sh("ip", "-n", ns.rsplit("/", 1)[1], "link", "del", "eth0")
    err = macvlan("CHECK", with_prev(config, result), ns).error
    assert err["msg"] == "container Interface name in prevResult: eth0 not found"  # upstream's macvlan words


def test_check_without_prev_result_and_with_a_wrong_mode(macvlan: MacvlanRunner, lab: Lab, data_dir: Path) -> None:
    ns = lab.container("c1")
    config = conf(data_dir, "1.0.0")
    result = macvlan("ADD", config, ns).ok()
    assert macvlan("CHECK", config, ns).error["msg"] == "required prevResult missing"
    err = macvlan("CHECK", with_prev({**config, "mode": "private"}, result), ns).error
    assert err["msg"] == "container macvlan mode bridge does not match expected value: private"


def test_check_fails_when_the_lease_is_gone(macvlan: MacvlanRunner, lab: Lab, data_dir: Path) -> None:
    ns = lab.container("c1")
    config = conf(data_dir, "1.0.0")
    result = macvlan("ADD", config, ns).ok()
    for f in (data_dir / "mvnet").glob("10.*"):
        f.unlink()
    err = macvlan("CHECK", with_prev(config, result), ns).error
    assert err["msg"] == "host-local: Failed to find address added by container c1"


# ---- DEL ----


def test_del_after_the_netns_is_gone_releases_the_lease(macvlan: MacvlanRunner, lab: Lab, data_dir: Path) -> None:
    ns = lab.container("c1")
    config = conf(data_dir)
    macvlan("ADD", config, ns).ok()
    assert list(lease_files(data_dir, "mvnet")) == ["10.77.0.2"]
    lab.remove_netns(ns)
    out = macvlan("DEL", config, ns)
    assert (out.code, out.stdout) == (0, "")
    assert lease_files(data_dir, "mvnet") == {}
    macvlan("DEL", config, ns).ok()


def test_del_never_needs_the_master(macvlan: MacvlanRunner, lab: Lab, data_dir: Path) -> None:
    ns = lab.container("c1")
    config = conf(data_dir)
    macvlan("ADD", config, ns).ok()
    out = macvlan("DEL", {**config, "master": "gone0"}, ns)
    assert (out.code, out.stdout) == (0, "")
    assert "eth0" not in lab.links(ns)
    assert lease_files(data_dir, "mvnet") == {}


def test_del_without_netns_releases_the_lease(macvlan: MacvlanRunner, lab: Lab, data_dir: Path) -> None:
    ns = lab.container("c1")
    config = conf(data_dir)
    macvlan("ADD", config, ns).ok()
    out = macvlan("DEL", config, "")
    assert (out.code, out.stdout) == (0, "")
    assert lease_files(data_dir, "mvnet") == {}


# ---- failing ADDs leave nothing behind ----


def assert_untouched(lab: Lab, ns: str, data_dir: Path, leases: dict[str, str] | None = None) -> None:
    assert links(lab, ns) == set(), "a failed ADD left a link in the container"
    assert lease_files(data_dir, "mvnet") == (leases or {}), "a failed ADD left a lease"
    assert {n: e["linkinfo"]["info_kind"] for n, e in lab.links(lab.node).items() if "linkinfo" in e} == {
        "upl0": "veth"
    }


@pytest.mark.parametrize(
    "change,code,message",
    [
        ({"mode": "bogus"}, 7, 'unknown macvlan mode: "bogus"'),
        ({"master": "nosuchdev0"}, 7, 'master "nosuchdev0" not found'),
        ({"master": "upl0.5000"}, 7, 'master "upl0.5000": VLAN id must be 1-4094'),
        ({"master": "upl0.x"}, 7, "VLAN id must be 1-4094"),
        ({"master": "a.b.c"}, 7, "with one"),
        ({"master": "nosuch0.50"}, 7, 'its parent "nosuch0" does not exist'),
        ({"master": "averyveryverylongname"}, 7, "at most 15 characters"),
        ({"mtu": -1}, 7, "invalid MTU -1"),
        ({"mac": "zz:11"}, 7, "invalid args zz:11 for MAC addr"),
        ({"ipam": {"type": "host-local", "subnet": "10.77.0.0/33"}}, 7, "invalid CIDR address: 10.77.0.0/33"),
        ({"ipam": {"type": "no-such-ipam"}}, 999, 'failed to find plugin "no-such-ipam" in path'),
        (
            {"ipam": {"type": "host-local", "subnet": "10.77.0.0/24", "exclude": ["10.77.0.0/24"]}},
            999,
            "no IP addresses available",
        ),
    ],
)
def test_a_failing_add_leaves_nothing_behind(
    macvlan: MacvlanRunner, lab: Lab, data_dir: Path, change: dict[str, Any], code: int, message: str
) -> None:
    ns = lab.container("c1")
    config = {**conf(data_dir), **change}
    if "ipam" in change:
        config["ipam"] = {"dataDir": str(data_dir), **change["ipam"]}
    err = macvlan("ADD", config, ns).error
    assert err["code"] == code
    assert message in err["msg"]
    assert "Traceback" not in json.dumps(err)
    assert_untouched(lab, ns, data_dir)
    state = data_dir.parent / "parents-state" / "parents.json"
    assert not state.exists() or json.loads(state.read_text())["parents"] == {}


def test_an_exhausted_pool_leaves_no_link(macvlan: MacvlanRunner, lab: Lab, data_dir: Path) -> None:
    """Upstream leaks the link here (its deferred cleanup never fires); we don't."""
    ipam = {"type": "host-local", "ranges": [[{"subnet": "10.77.0.0/30"}]]}
    c1, c2 = lab.container("c1"), lab.container("c2")
    macvlan("ADD", conf(data_dir, ipam=ipam), c1, container_id="c1").ok()
    err = macvlan("ADD", conf(data_dir, ipam=ipam), c2, container_id="c2").error
    assert "no IP addresses available in range set: 10.77.0.1-10.77.0.2" in err["msg"]
    assert links(lab, c2) == set()
    assert lease_files(data_dir, "mvnet") == {"10.77.0.2": "c1\r\neth0"}


def test_an_existing_interface_name_is_refused_without_touching_it(
    macvlan: MacvlanRunner, lab: Lab, data_dir: Path
) -> None:
    ns = lab.container("c1")
    config = conf(data_dir)
    first = macvlan("ADD", config, ns).ok()
    err = macvlan("ADD", config, ns, container_id="other").error
    assert err["msg"] == 'failed to rename macvlan to "eth0": file exists'
    assert links(lab, ns) == {"eth0"}
    assert lab.links(ns)["eth0"]["address"] == first["interfaces"][0]["mac"]
    assert list(lease_files(data_dir, "mvnet")) == ["10.77.0.2"]


def test_a_netns_that_does_not_exist_is_refused(macvlan: MacvlanRunner, lab: Lab, data_dir: Path) -> None:
    err = macvlan("ADD", conf(data_dir), "/run/netns/does-not-exist").error
    assert err["code"] == 4 and "CNI_NETNS" in err["msg"]
    assert lease_files(data_dir, "mvnet") == {}


def test_a_file_that_is_not_a_netns_is_refused(
    macvlan: MacvlanRunner, lab: Lab, data_dir: Path, tmp_path: Path
) -> None:
    fake = tmp_path / "netns"
    fake.write_text("")
    err = macvlan("ADD", conf(data_dir), str(fake)).error
    assert err["code"] == 4 and "is not a network namespace" in err["msg"]


# ---- STATUS and GC are the IPAM's ----


def test_status_and_gc_are_forwarded_to_the_ipam(macvlan: MacvlanRunner, lab: Lab, data_dir: Path) -> None:
    ns = lab.container("c1")
    config = conf(data_dir, "1.1.0")
    macvlan("ADD", config, ns).ok()
    assert macvlan("STATUS", config).code == 0
    macvlan("GC", {**config, "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]}).ok()
    assert list(lease_files(data_dir, "mvnet")) == ["10.77.0.2"]
    macvlan("GC", {**config, "cni.dev/valid-attachments": []}).ok()
    assert lease_files(data_dir, "mvnet") == {}


def test_our_own_host_local_runs_in_process_with_the_same_effects(lab: Lab, tmp_path: Path) -> None:
    from tests.support.layouts import dist_executable
    from tests.support.runners import MacvlanRunner

    run = MacvlanRunner(lab, dist_executable("macvlan").parent, "single")
    outcomes = {}
    for how, extra in (("inprocess", {}), ("exec", {"CNI_MACVLAN_IPAM_EXEC": "1"})):
        ns = lab.container(how)
        store = tmp_path / how
        out = run("ADD", conf(store), ns, CNI_MACVLAN_DEBUG="1", **extra)
        result = out.ok()
        assert ("in-process" in out.stderr) is (how == "inprocess"), out.stderr
        result["interfaces"][0].update(mac="X", sandbox="S")
        outcomes[how] = (result, lease_files(store, "mvnet"), sorted(p.name for p in (store / "mvnet").iterdir()))
        run("DEL", conf(store), ns, **extra).ok()
        assert lease_files(store, "mvnet") == {}
    assert outcomes["inprocess"] == outcomes["exec"]


@pytest.mark.parametrize("layout", ["macvlan", "fast/macvlan"])
def test_a_delegate_gets_libcnis_environment_not_the_bootloaders(lab: Lab, tmp_path: Path, layout: str) -> None:
    """A delegated IPAM gets the caller's environment and nothing of a bootloader's (PyInstaller's
    set LD_LIBRARY_PATH to its bundle and _PYI_* variables, which would make a delegate load our
    libraries; our launcher sets none, and this keeps it so)."""
    from tests.support.layouts import dist_executable
    from tests.support.runners import MacvlanRunner

    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = dist_executable(layout)
    (bindir / "macvlan").symlink_to(exe.resolve() if layout.startswith("fast") else exe)
    spy = bindir / "envspy"
    spy.write_text(
        "#!/bin/sh\ncat >/dev/null\n"
        'vars=$(env | grep -E "^(LD_LIBRARY_PATH|_PYI_)" | cut -d= -f1 | tr "\\n" " ")\n'
        'printf \'{"cniVersion":"1.0.0","ips":[{"address":"10.77.0.9/24"}],"dns":{"domain":"%s|%s|%s"}}\' '
        '"$LD_LIBRARY_PATH" "$vars" "$CNI_COMMAND"\n'
    )
    spy.chmod(0o755)
    run = MacvlanRunner(lab, bindir, "single")
    config = conf(tmp_path, ipam={"type": "envspy"}, dns={})
    result = run("ADD", config, lab.container("c1"), LD_LIBRARY_PATH="/opt/mine").ok()
    assert result["dns"]["domain"] == "/opt/mine|LD_LIBRARY_PATH |ADD", (
        "the caller's LD_LIBRARY_PATH, nothing of the bootloader's"
    )


def test_loopback_is_refused_as_a_master(macvlan: MacvlanRunner, lab: Lab, data_dir: Path) -> None:
    ns = lab.container("c1")
    err = macvlan("ADD", conf(data_dir, master="lo"), ns).error
    assert err["code"] == 7 and "loopback" in err["msg"]
    assert links(lab, ns) == set()
    assert lease_files(data_dir, "mvnet") == {}


@pytest.mark.parametrize("first, second", [("passthru", "bridge"), ("bridge", "passthru"), ("passthru", "passthru")])
def test_a_parent_in_passthru_use_is_refused_with_a_clear_message(
    macvlan: MacvlanRunner, lab: Lab, data_dir: Path, first: str, second: str
) -> None:
    """Passthru gives one macvlan the whole parent: a second network on that parent (any mode), or a
    passthru network beside existing macvlans, is refused by name, and nothing is left behind."""
    net_a = conf(data_dir, mode=first)
    net_b = {**conf(data_dir, mode=second), "name": "othernet"}
    c1, c2 = lab.container("c1"), lab.container("c2")
    macvlan("ADD", net_a, c1, container_id="c1").ok()
    err = macvlan("ADD", net_b, c2, container_id="c2").error
    assert err["code"] == 999
    if second == "passthru":
        assert err["msg"] == (
            'failed to create macvlan: Invalid argument: master "upl0" already carries macvlan links (of this or '
            "another network): passthru needs the parent to itself; use a free parent, or mode bridge"
        )
    else:
        assert err["msg"] == (
            'failed to create macvlan: Invalid argument: master "upl0" is held by a passthru macvlan (of this or '
            "another network), which allows no other link on it; use another parent"
        )
    assert links(lab, c2) == set()
    assert lease_files(data_dir, "othernet") == {}
