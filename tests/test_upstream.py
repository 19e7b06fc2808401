"""Beside upstream's Go plugins at the pinned release (tools/versions.env, built from the Go module proxy):
the same invocation exec'd on both, in the lab's namespaces, and the answers compared, byte for byte where
upstream's output is the contract (VERSION, results), by code and words where it is a message.

Where we choose to differ, the test here shows the difference and docs/design.md ("Compatibility with
upstream") says why. Results and the shared lease store are compared in test_interop_go.py and
test_interop_macvlan.py; ipvlan's link in test_vm_ipvlan.py (the kernel here has no ipvlan).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.configs import ipam_conf, macvlan_conf
from tests.support.lab import GATEWAY6, SUBNET4, SUBNET6, Lab, lease_files, sh
from tests.support.layouts import UPSTREAM_VERSION, dist_executable, upstream_plugin
from tests.support.runners import Outcome, cni_env, json_bytes, run_exec

pytestmark = pytest.mark.interop

PLUGINS = ["macvlan", "ipvlan", "host-local"]
IMPLS = ["upstream", "ours"]


def exe(impl: str, name: str) -> Path:
    return upstream_plugin(name) if impl == "upstream" else dist_executable(name)


def env(impl: str, command: str, netns: str = "", cid: str = "c1", **extra: str) -> dict[str, str]:
    """What a runtime sets, with CNI_PATH holding the same implementation's host-local."""
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(exe(impl, "host-local").parent),
        **extra,
    }


def run(lab: Lab, impl: str, name: str, command: str, config: dict[str, Any], netns: str = "", **extra: str) -> Outcome:
    return lab.run([str(exe(impl, name))], env(impl, command, netns, **extra), config)


# ---- VERSION and the about line ----


@pytest.mark.parametrize("name", PLUGINS)
@pytest.mark.parametrize("stdin", [b'{"cniVersion": "0.3.1"}', b'{"cniVersion": "9.9.9"}', b"", b"garbage"])
def test_version_output_is_byte_identical_to_upstream(name: str, stdin: bytes) -> None:
    outs = {impl: run_exec(exe(impl, name), {"CNI_COMMAND": "VERSION"}, stdin) for impl in IMPLS}
    assert outs["ours"].code == outs["upstream"].code == 0
    assert outs["ours"].stdout == outs["upstream"].stdout
    assert outs["ours"].stdout.endswith("\n")


@pytest.mark.parametrize("name", PLUGINS)
def test_the_about_line_has_upstreams_shape(name: str) -> None:
    """No CNI_COMMAND: "CNI <name> plugin v<version>" and the protocol versions, on stderr; ours names itself
    after the version."""
    outs = {impl: run_exec(exe(impl, name), {}, b"") for impl in IMPLS}
    up, ours = (outs[i].stderr.splitlines() for i in IMPLS)
    assert up[0] == f"CNI {name} plugin {UPSTREAM_VERSION}"
    assert ours[0].startswith(f"CNI {name} plugin v") and ours[0].endswith(" (cni-macvlan)")
    assert ours[1:] == up[1:]
    assert outs["ours"].code == outs["upstream"].code == 0


# ---- errors: codes and words ----

# upstream's code -> ours: upstream answers every config fault with 999 ("try again later" to a runtime that
# reads codes); the spec has 7 (invalid network config) for it, which we give
CODE = {999: 7}


def hl(d: Path, **ipam: Any) -> dict[str, Any]:
    return ipam_conf(d, "errnet", None, "1.1.0", top={"type": "macvlan", "master": "upl0"}, ipam=ipam)


def mv(d: Path, **top: Any) -> dict[str, Any]:
    return macvlan_conf("errnet", d / "leases", d / "state", version="1.1.0", **top)


# (plugin, config builder, what differs from upstream's words if anything: None = ours contain upstream's msg)
ERRORS: dict[str, tuple[str, Any, str | None]] = {
    "no range": ("host-local", lambda d: hl(d), None),
    "a bad subnet": ("host-local", lambda d: hl(d, subnet="10.0.0.0/33"), None),
    "a gateway outside the subnet": ("host-local", lambda d: hl(d, subnet="10.0.0.0/24", gateway="10.1.0.1"), None),
    "rangeStart outside the subnet": ("host-local", lambda d: hl(d, subnet="10.0.0.0/24", rangeStart="10.1.0.5"), None),
    # upstream checks rangeStart against the range it made with rangeEnd as its end, so it says "not in network"
    # of an address that is in it; we say what is wrong
    "rangeStart after rangeEnd": (
        "host-local",
        lambda d: hl(d, subnet="10.0.0.0/24", rangeStart="10.0.0.50", rangeEnd="10.0.0.20"),
        "rangeStart 10.0.0.50 is after rangeEnd 10.0.0.20",
    ),
    "overlapping range sets": (
        "host-local",
        lambda d: hl(d, ranges=[[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]]),
        None,
    ),
    "an unknown cniVersion": ("host-local", lambda d: {**hl(d, subnet="10.0.0.0/24"), "cniVersion": "9.9.9"}, None),
    "an unknown macvlan mode": ("macvlan", lambda d: mv(d, mode="foo"), None),
    # upstream reads the master's MTU first and names it; we refuse a negative MTU before any netlink
    "a negative MTU": ("macvlan", lambda d: mv(d, mtu=-1), "invalid MTU -1, must be [0, master MTU]"),
    # upstream: netlink's bare "Link not found"; we name the link and where we looked
    "a missing master": ("macvlan", lambda d: mv(d, master="nosuch0"), 'master "nosuch0"'),
    "an unknown ipvlan mode": ("ipvlan", lambda d: {**mv(d, mode="l4"), "type": "ipvlan"}, None),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_carry_upstreams_code_and_words(lab: Lab, tmp_path: Path, case: str) -> None:
    name, build, ours_instead = ERRORS[case]
    ns = lab.container("c")
    outs = {impl: run(lab, impl, name, "ADD", build(tmp_path / impl), ns) for impl in IMPLS}
    up, ours = outs["upstream"].error, outs["ours"].error
    assert ours["code"] == CODE.get(up["code"], up["code"]), (up, ours)
    if ours_instead is None:
        assert up["msg"] in ours["msg"], (up, ours)
    else:
        assert ours_instead in ours["msg"] and up["msg"] not in ours["msg"], (up, ours)
    # upstream's errors carry no cniVersion; the spec's do (ours: the config's, or our newest)
    assert "cniVersion" not in up and ours["cniVersion"] in ("1.1.0", "1.0.0")
    # bad input changes nothing: no link in the container, no lease
    for impl in IMPLS:
        assert "eth0" not in lab.links(ns)
        assert lease_files(tmp_path / impl / "leases", "errnet") == {}


def test_gc_on_an_old_config_is_refused_as_upstream_refuses_it(tmp_path: Path) -> None:
    outs = {}
    for impl in IMPLS:
        config = ipam_conf(tmp_path / impl, "gcnet", "10.0.0.0/24", "1.0.0", top={"type": "macvlan"})
        outs[impl] = run_exec(exe(impl, "host-local"), cni_env("GC"), json_bytes(config))
    up, ours = outs["upstream"].error, outs["ours"].error
    assert (ours["code"], ours["msg"]) == (up["code"], up["msg"]) == (1, "config version does not allow GC")


# ---- what ADD leaves in the container ----

SYSCTLS = [
    "ipv4/conf/eth0/arp_notify",
    "ipv6/conf/eth0/ndisc_notify",
    "ipv6/conf/eth0/keep_addr_on_down",
    "ipv6/conf/eth0/disable_ipv6",
    "ipv6/conf/lo/disable_ipv6",
]


def container_state(lab: Lab, ns: str) -> dict[str, Any]:
    name = os.path.basename(ns)
    values = sh("ip", "netns", "exec", name, "sh", "-c", "cd /proc/sys/net && cat " + " ".join(SYSCTLS)).stdout
    link = lab.links(ns)["eth0"]
    return {
        "sysctls": dict(zip(SYSCTLS, values.split(), strict=True)),
        "txqlen": link["txqlen"],
        "mtu": link["mtu"],
        "mode": link["linkinfo"]["info_data"]["mode"],
        "addresses": lab.addresses(ns, "eth0"),
        "routes": lab.routes(ns, "-4") + lab.routes(ns, "-6"),
    }


@pytest.mark.netns
@pytest.mark.parametrize("dual", [False, True], ids=["ipv4", "dual-stack"])
def test_add_leaves_the_container_as_upstream_leaves_it(lab: Lab, tmp_path: Path, dual: bool) -> None:
    """The sysctls upstream sets (arp_notify, ndisc_notify always; with IPv6, disable_ipv6 0 on lo and the
    link and keep_addr_on_down 1), the link's txqlen (the kernel's default: no IFLA_TXQLEN sent), MTU, mode,
    addresses and routes."""
    states = {}
    for impl in IMPLS:
        ns = lab.container(impl)
        # a container whose IPv6 is off, as a runtime may make it: ADD turns it on where it needs it
        sh("ip", "netns", "exec", os.path.basename(ns), "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        sh("ip", "netns", "exec", os.path.basename(ns), "sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=1")
        ipam: dict[str, Any] = {"type": "host-local", "subnet": SUBNET4, "routes": [{"dst": "0.0.0.0/0"}]}
        if dual:
            ipam = {**ipam, "subnet": None, "ranges": [[{"subnet": SUBNET4}], [{"subnet": SUBNET6}]]}
        ipam = {k: v for k, v in ipam.items() if v is not None}
        config = macvlan_conf("sysnet", tmp_path / impl, tmp_path / f"{impl}-state", version="1.1.0", ipam=ipam)
        run(lab, impl, "macvlan", "ADD", config, ns).ok()
        states[impl] = container_state(lab, ns)
        run(lab, impl, "macvlan", "DEL", config, ns).ok()  # its addresses off the wire before the next's DAD
    assert states["ours"] == states["upstream"]
    expected_v6 = {"keep_addr_on_down": "1", "disable_ipv6": "0"} if dual else {"disable_ipv6": "1"}
    for key, value in expected_v6.items():
        assert states["ours"]["sysctls"][f"ipv6/conf/eth0/{key}"] == value
    assert states["ours"]["sysctls"]["ipv4/conf/eth0/arp_notify"] == "1"


@pytest.mark.netns
def test_dad_on_a_link_without_carrier_succeeds_at_the_deadline_as_upstream(lab: Lab, tmp_path: Path) -> None:
    """The upstream side of the wire is down: the macvlan has no carrier, IPv6 DAD can't run, the address stays
    tentative. Upstream since v1.9.0 (#1207) gives up waiting and succeeds; so do we, within its 5 s."""
    sh("ip", "-n", lab.upstream, "link", "set", "upr0", "down")
    outs, took = {}, {}
    for impl in IMPLS:
        ns = lab.container(impl)
        config = macvlan_conf(
            "dadnet", tmp_path / impl, tmp_path / f"{impl}-state", subnet=SUBNET6, version="1.1.0",
            ipam_extra={"gateway": GATEWAY6, "routes": [{"dst": "::/0"}]},
        )  # fmt: skip
        start = time.monotonic()
        outs[impl] = run(lab, impl, "macvlan", "ADD", config, ns)
        took[impl] = time.monotonic() - start
        outs[impl].ok()
        assert lab.addresses(ns, "eth0") == ["fd77::2/64"]
        assert "NO-CARRIER" in sh("ip", "-n", os.path.basename(ns), "link", "show", "eth0").stdout
    assert 4 < took["ours"] < 9 and 4 < took["upstream"] < 9, took


@pytest.mark.netns
def test_link_in_container_without_master_takes_the_default_route_interface_of_either_family(
    lab: Lab, tmp_path: Path
) -> None:
    """linkInContainer and no master: the container's first default route's interface, here an IPv6-only
    one (upstream since v1.7: either family), for both; without a default route both refuse."""
    for impl in IMPLS:
        ns = lab.container(impl)
        n = os.path.basename(ns)
        lab.link_in(ns, "eth1")
        sh("ip", "-n", n, "addr", "add", "fd99::5/64", "dev", "eth1", "nodad")
        config = macvlan_conf("licnet", tmp_path / impl, tmp_path / f"{impl}-s", master=None, version="1.1.0")
        config["linkInContainer"] = True
        refused = run(lab, impl, "macvlan", "ADD", config, ns).error
        assert "no default route interface found" in refused["msg"], refused
        assert "eth0" not in lab.links(ns)
        sh("ip", "-n", n, "-6", "route", "add", "default", "via", "fd99::1", "dev", "eth1")
        run(lab, impl, "macvlan", "ADD", config, ns).ok()
        link = lab.links(ns)["eth0"]
        assert link["link"] == "eth1" and link["linkinfo"]["info_kind"] == "macvlan"
        run(lab, impl, "macvlan", "DEL", config, ns).ok()
        assert "eth0" not in lab.links(ns)


# ---- CHECK ----


@pytest.mark.netns
def test_check_passes_and_fails_with_upstreams_words(lab: Lab, tmp_path: Path) -> None:
    """CHECK of a healthy attachment: exit 0 and nothing printed, for both; its link deleted by hand: both
    fail with upstream's macvlan words and the same code."""
    errors = {}
    for impl in IMPLS:
        ns = lab.container(impl)
        config = macvlan_conf("chknet", tmp_path / impl, tmp_path / f"{impl}-s", version="1.1.0")
        added = run(lab, impl, "macvlan", "ADD", config, ns)
        prev = {**config, "prevResult": added.ok()}
        healthy = run(lab, impl, "macvlan", "CHECK", prev, ns)
        assert (healthy.code, healthy.stdout) == (0, ""), (impl, healthy.stdout)
        sh("ip", "-n", os.path.basename(ns), "link", "del", "eth0")
        errors[impl] = run(lab, impl, "macvlan", "CHECK", prev, ns).error
    up, ours = errors["upstream"], errors["ours"]
    assert ours["code"] == up["code"] == 999  # a fault found at run time, not in the config: both 999
    assert ours["msg"] == up["msg"] == "container Interface name in prevResult: eth0 not found", (up, ours)


# ---- DEL, GC and STATUS ----


@pytest.mark.netns
def test_ipvlan_del_without_a_master_and_without_a_default_route(lab: Lab, tmp_path: Path) -> None:
    """master omitted and the node has no default route: upstream's ipvlan DEL looks for the default route's
    interface first and fails, so the runtime retries a DEL that can never succeed and the lease stays; ours
    needs no master to delete (a deliberate improvement)."""
    outs = {}
    for impl in IMPLS:
        config = {**macvlan_conf("ipvnet", tmp_path / impl, tmp_path / f"{impl}-s", master=None), "type": "ipvlan"}
        outs[impl] = run(lab, impl, "ipvlan", "DEL", config, lab.container(impl))
    assert outs["upstream"].code != 0 and "default route" in outs["upstream"].error["msg"]
    assert (outs["ours"].code, outs["ours"].stdout) == (0, "")


def leases_after_gc(impl: str, d: Path, valid: list[str] | None) -> tuple[Outcome, dict[str, str]]:
    config = ipam_conf(d, "gcnet", "10.0.0.0/24", "1.1.0", top={"type": "macvlan"})
    for cid in ("c1", "c2", "c3"):
        run_exec(exe(impl, "host-local"), cni_env("ADD", container_id=cid), json_bytes(config)).ok()
    if valid is not None:
        config["cni.dev/valid-attachments"] = [{"containerID": c, "ifname": "eth0"} for c in valid]
    out = run_exec(exe(impl, "host-local"), cni_env("GC"), json_bytes(config))
    return out, lease_files(d, "gcnet")


def test_host_local_gc_keeps_exactly_the_valid_attachments_as_upstream(tmp_path: Path) -> None:
    got = {impl: leases_after_gc(impl, tmp_path / impl, ["c2"]) for impl in IMPLS}
    for impl in IMPLS:
        out, leases = got[impl]
        assert (out.code, out.stdout) == (0, ""), (impl, out.stdout)
        assert leases == {"10.0.0.3": "c2\r\neth0"}, impl


def test_host_local_gc_without_a_valid_list_releases_all_upstream_and_nothing_ours(tmp_path: Path) -> None:
    """A GC whose config lacks cni.dev/valid-attachments: upstream reads it as "nothing is valid" and
    releases every lease of the network; we refuse it (code 7) and release nothing: a runtime that forgot
    the key would otherwise take every running container's address (deliberate: docs/design.md)."""
    (up, up_leases), (ours, ours_leases) = (leases_after_gc(i, tmp_path / i, None) for i in IMPLS)
    assert (up.code, up_leases) == (0, {})
    assert ours.error["code"] == 7 and "cni.dev/valid-attachments" in ours.error["msg"] + ours.error.get("details", "")
    assert len(ours_leases) == 3


@pytest.mark.parametrize("name", PLUGINS)
def test_status_answers_as_upstream(tmp_path: Path, name: str) -> None:
    """STATUS on a healthy node: exit 0 and nothing on stdout, from each plugin (macvlan and ipvlan ask their
    IPAM, as upstream's do)."""
    for impl in IMPLS:
        config = ipam_conf(tmp_path / impl, "stnet", "10.0.0.0/24", "1.1.0", top={"type": name})
        e = cni_env("STATUS", CNI_PATH=str(exe(impl, "host-local").parent))
        out = run_exec(exe(impl, name), e, json_bytes(config))
        assert (out.code, out.stdout) == (0, ""), (impl, out.stdout)


def test_macvlan_gc_releases_its_ipams_stale_leases_where_upstreams_does_nothing(tmp_path: Path) -> None:
    """Upstream's macvlan GC is a no-op (exit 0, leases stay until the runtime calls the IPAM itself); ours
    passes GC on to its IPAM (and its parents), as the spec's GC asks of a plugin that delegates."""
    left = {}
    for impl in IMPLS:
        config = ipam_conf(tmp_path / impl, "gcnet", "10.0.0.0/24", "1.1.0", top={"type": "macvlan"})
        path = {"CNI_PATH": str(exe(impl, "host-local").parent)}
        run_exec(exe(impl, "host-local"), cni_env("ADD", container_id="gone", **path), json_bytes(config)).ok()
        config["cni.dev/valid-attachments"] = []
        config["stateDir"] = str(tmp_path / impl / "state")
        out = run_exec(exe(impl, "macvlan"), cni_env("GC", **path), json_bytes(config))
        assert (out.code, out.stdout) == (0, ""), (impl, out.stdout)
        left[impl] = lease_files(tmp_path / impl, "gcnet")
    assert left == {"upstream": {"10.0.0.2": "gone\r\neth0"}, "ours": {}}


# ---- the store on disk ----


def test_store_files_have_upstreams_modes(tmp_path: Path) -> None:
    """Leases and last_reserved_ip 0600, the network's directory 0755, for both; the lock file: upstream
    0750 (it makes it as a directory would be made), ours 0600 (it holds nothing to run)."""
    modes = {}
    for impl in IMPLS:
        d = tmp_path / impl
        config = ipam_conf(d, "modenet", "10.0.0.0/24", "1.1.0", top={"type": "macvlan"})
        run_exec(exe(impl, "host-local"), cni_env("ADD"), json_bytes(config)).ok()
        modes[impl] = {p.name: oct(p.stat().st_mode & 0o7777) for p in [d / "modenet", *(d / "modenet").iterdir()]}
    same = {k: v for k, v in modes["upstream"].items() if k != "lock"}
    assert same == {"modenet": "0o755", "10.0.0.2": "0o600", "last_reserved_ip.0": "0o600"}
    assert {k: v for k, v in modes["ours"].items() if k != "lock"} == same
    assert (modes["upstream"]["lock"], modes["ours"]["lock"]) == ("0o750", "0o600")


def test_results_name_the_same_keys(tmp_path: Path) -> None:
    """A 1.1.0 result's key order is upstream's (sorted at every level, no empty dns), checked on host-local;
    the full comparison is test_interop_go.py's."""
    outs = {}
    for impl in IMPLS:
        config = ipam_conf(tmp_path / impl, "keynet", "10.0.0.0/24", "1.1.0", top={"type": "macvlan"})
        outs[impl] = run_exec(exe(impl, "host-local"), cni_env("ADD"), json_bytes(config))
    assert outs["ours"].stdout == outs["upstream"].stdout
    assert list(json.loads(outs["ours"].stdout)) == ["cniVersion", "ips"]


# ---- a deliberate difference that needs a dummy (the VM lane) ----


@pytest.mark.vm
@pytest.mark.netns
@pytest.mark.usefixtures("vlan_and_dummy")
def test_master_omitted_on_the_node_upstream_takes_the_default_route_interface_ours_a_dummy(
    lab: Lab, tmp_path: Path
) -> None:
    """The node's only default route is IPv6 over upl0. Upstream's macvlan takes that interface (the first
    default route of either family, v1.7+); ours makes a dummy parent, as Docker's driver does: a config
    without a master never puts containers on the node's uplink by accident (docs/design.md)."""
    sh("ip", "-n", lab.node, "addr", "add", "fd77::fe/64", "dev", "upl0", "nodad")
    sh("ip", "-n", lab.node, "-6", "route", "add", "default", "via", GATEWAY6, "dev", "upl0")
    parents = {}
    for impl in IMPLS:
        ns = lab.container(impl)
        config = macvlan_conf("nomaster", tmp_path / impl, tmp_path / f"{impl}-s", master=None, version="1.1.0")
        run(lab, impl, "macvlan", "ADD", config, ns).ok()
        index = lab.links(ns)["eth0"]["link_index"]
        parents[impl] = next(e for e in lab.node_links().values() if e["ifindex"] == index)
        run(lab, impl, "macvlan", "DEL", config, ns).ok()
    assert parents["upstream"]["ifname"] == "upl0"
    assert parents["ours"]["linkinfo"]["info_kind"] == "dummy" and parents["ours"]["ifname"].startswith("dm-")
