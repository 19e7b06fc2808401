"""Interop in real namespaces with upstream's Go plugins at the pinned release (tools/versions.env): our macvlan
with Go's host-local, Go's macvlan with our host-local, and our results beside Go's byte for byte."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.configs import macvlan_conf
from tests.support.lab import GATEWAY4, Lab, lease_files
from tests.support.layouts import UPSTREAM_VERSIONS, dist_executable, upstream_plugin

pytestmark = [pytest.mark.netns, pytest.mark.interop]


def conf(data_dir: Path, version: str) -> dict:
    state = data_dir / "parents-state"
    return macvlan_conf("mixnet", data_dir, state, version=version, ipam_extra={"routes": [{"dst": "0.0.0.0/0"}]})


def env(command: str, netns: str, cid: str, cni_path: Path) -> dict[str, str]:
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(cni_path),
    }


@pytest.fixture
def mixed_dirs(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """pairing -> (macvlan executable, CNI_PATH holding the other side's host-local)."""
    ours_mv, go_mv = dist_executable("macvlan"), upstream_plugin("macvlan")
    go_hl, ours_hl = upstream_plugin("host-local"), dist_executable("host-local")
    ours_only = tmp_path / "ours-ipam"
    ours_only.mkdir()
    (ours_only / "host-local").symlink_to(ours_hl)
    go_only = tmp_path / "go-ipam"
    go_only.mkdir()
    (go_only / "host-local").symlink_to(go_hl)
    return {"ours-macvlan+go-host-local": (ours_mv, go_only), "go-macvlan+ours-host-local": (go_mv, ours_only)}


@pytest.mark.parametrize("pairing", ["ours-macvlan+go-host-local", "go-macvlan+ours-host-local"])
@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_check_del_across_implementations(
    lab: Lab, data_dir: Path, mixed_dirs: dict, pairing: str, version: str
) -> None:
    exe, cni_path = mixed_dirs[pairing]
    config = conf(data_dir, version)
    c1, c2 = lab.container("c1"), lab.container("c2")
    r1 = lab.run([str(exe)], env("ADD", c1, "c1", cni_path), config).ok()
    r2 = lab.run([str(exe)], env("ADD", c2, "c2", cni_path), config).ok()
    assert [r1["ips"][0]["address"], r2["ips"][0]["address"]] == ["10.77.0.2/24", "10.77.0.3/24"]
    assert lease_files(data_dir, "mixnet") == {"10.77.0.2": "c1\r\neth0", "10.77.0.3": "c2\r\neth0"}
    assert lab.ping(c1, "10.77.0.3") and lab.ping(c2, GATEWAY4)
    if version != "0.3.1":
        out = lab.run([str(exe)], env("CHECK", c1, "c1", cni_path), {**config, "prevResult": r1})
        assert (out.code, out.stdout) == (0, ""), out.stdout
    for cid, ns, result in (("c1", c1, r1), ("c2", c2, r2)):
        out = lab.run([str(exe)], env("DEL", ns, cid, cni_path), {**config, "prevResult": result})
        assert (out.code, out.stdout) == (0, ""), out.stdout
        assert "eth0" not in lab.links(ns)
    assert lease_files(data_dir, "mixnet") == {}


@pytest.mark.parametrize("pairing", ["ours-macvlan+go-host-local", "go-macvlan+ours-host-local"])
def test_del_without_a_netns_releases_the_lease_across_implementations(
    lab: Lab, data_dir: Path, mixed_dirs: dict, pairing: str
) -> None:
    """The sandbox is gone before the runtime's DEL (a rebooted node, a crashed runtime): CNI_NETNS is
    empty, and the lease the other implementation's IPAM holds is released all the same, twice over."""
    exe, cni_path = mixed_dirs[pairing]
    config = conf(data_dir, "1.1.0")
    lab.run([str(exe)], env("ADD", lab.container("c1"), "c1", cni_path), config).ok()
    assert lease_files(data_dir, "mixnet") == {"10.77.0.2": "c1\r\neth0"}
    for _ in range(2):
        out = lab.run([str(exe)], env("DEL", "", "c1", cni_path), config)
        assert (out.code, out.stdout) == (0, ""), out.stdout
        assert lease_files(data_dir, "mixnet") == {}


def masked(stdout: str, netns: str) -> str:
    """A result's bytes with what differs by nature between two ADDs masked: the link's random MAC and the
    sandbox path."""
    return re.sub(r'"([0-9a-f]{2}:){5}[0-9a-f]{2}"', '"MAC"', stdout).replace(netns, "NETNS")


@pytest.mark.parametrize("version", UPSTREAM_VERSIONS)
def test_our_macvlan_result_is_byte_identical_to_go_apart_from_the_mac(lab: Lab, tmp_path: Path, version: str) -> None:
    outs = {}
    for name, exe, path in (
        ("go", upstream_plugin("macvlan"), upstream_plugin("host-local").parent),
        ("ours", dist_executable("macvlan"), dist_executable("host-local").parent),
    ):
        ns = lab.container(f"{name}1")
        out = lab.run([str(exe)], env("ADD", ns, "c1", path), conf(tmp_path / name, version))
        out.ok()
        outs[name] = masked(out.stdout, ns)
    assert outs["ours"] == outs["go"]
