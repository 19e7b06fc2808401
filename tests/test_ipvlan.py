"""The ipvlan plugin on the host lane, whose kernel has no ipvlan (its behaviour on a kernel that has
it: test_vm_ipvlan.py). Exec'd in every layout: it answers as a CNI plugin, checks its config before
the node is touched, and an ADD the kernel refuses leaves nothing (the lease released, no link, the
parents' record as it was)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.configs import macvlan_conf
from tests.support.lab import Lab, lease_files
from tests.support.runners import MacvlanRunner

pytestmark = pytest.mark.netns


def conf(tmp: Path, **top: Any) -> dict:
    return macvlan_conf("ipnet", tmp / "leases", tmp / "state", version="1.1.0", type="ipvlan", **top)


def test_version_and_about(macvlan: MacvlanRunner, tmp_path: Path) -> None:
    out = macvlan("VERSION", conf(tmp_path), plugin="ipvlan")
    assert out.json == {
        "cniVersion": "1.1.0",
        "supportedVersions": ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    }
    about = macvlan("", conf(tmp_path), plugin="ipvlan")
    assert about.code == 0 and "CNI ipvlan plugin v" in about.stderr and "(cni-macvlan)" in about.stderr


def test_a_bad_mode_is_refused_before_anything_is_made(macvlan: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    c1 = lab.container("c1")
    err = macvlan("ADD", conf(tmp_path, mode="bridge"), c1, plugin="ipvlan").error
    assert err["code"] == 7 and err["msg"] == 'unknown ipvlan mode: "bridge"', err
    assert set(lab.links(c1)) == {"lo"} and lease_files(tmp_path / "leases", "ipnet") == {}


def test_an_add_the_kernel_refuses_leaves_nothing(macvlan: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    c1 = lab.container("c1")
    err = macvlan("ADD", conf(tmp_path), c1, plugin="ipvlan").error
    assert err["code"] == 999 and err["msg"].startswith("failed to create ipvlan: "), err
    assert "this kernel has no ipvlan" in err["msg"]
    assert set(lab.links(c1)) == {"lo"} and lease_files(tmp_path / "leases", "ipnet") == {}
    assert set(lab.node_links()) == {"lo", "upl0"}
    macvlan("DEL", conf(tmp_path), c1, plugin="ipvlan").ok()
