"""The lease store's disk full or read-only: ADD fails with an I/O error (code 5) and leaves the store
and the node as they were; DEL still removes the link and reports what it could not release, so the
runtime retries. The file systems are real: a small tmpfs mounted for each test (root only)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import configs
from tests.support.fs import fill, read_only
from tests.support.lab import Lab, lease_files
from tests.support.runners import MacvlanRunner, Runner


@pytest.fixture
def data_dir(fs: Path) -> Path:
    """The lease store's dataDir, on the small tmpfs (this module's meaning of conftest's fixture)."""
    d = fs / "leases"
    d.mkdir()
    return d


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def ipam_conf(data_dir: Path) -> dict:
    return configs.ipam_conf(data_dir, "tight", "10.66.0.0/28")


def test_add_on_a_full_disk_fails_with_code_5_and_changes_nothing(host_local: Runner, fs: Path, data_dir: Path) -> None:
    host_local("ADD", ipam_conf(data_dir), container_id="c0").ok()
    fill(fs)
    before = snapshot(data_dir)
    err = host_local("ADD", ipam_conf(data_dir), container_id="c1").error
    assert err["code"] == 5
    assert "No space left on device" in err["msg"] and str(data_dir / "tight") in err["msg"]
    assert snapshot(data_dir) == before, "no lease, no temporary file, last_reserved_ip untouched"


def test_add_that_cannot_record_last_reserved_releases_its_lease(host_local: Runner, fs: Path, data_dir: Path) -> None:
    """Room for the lease but not for last_reserved_ip: upstream keeps the lease it can't account
    for; we drop it, so a failed ADD holds nothing."""
    host_local("ADD", ipam_conf(data_dir), container_id="c0").ok()
    fill(fs, leave_pages=1)
    before = snapshot(data_dir)
    err = host_local("ADD", ipam_conf(data_dir), container_id="c1").error
    assert err["code"] == 5 and "No space left on device" in err["msg"]
    assert snapshot(data_dir) == before


def test_a_read_only_store_refuses_add_and_del_with_code_5(host_local: Runner, fs: Path, data_dir: Path) -> None:
    host_local("ADD", ipam_conf(data_dir), container_id="c0").ok()
    read_only(fs)
    before = snapshot(data_dir)
    err = host_local("ADD", ipam_conf(data_dir), container_id="c1").error
    assert err["code"] == 5 and "Read-only file system" in err["msg"]
    # DEL can't release the lease: it says so (the runtime retries DEL), and the lease stays whole
    err = host_local("DEL", ipam_conf(data_dir), container_id="c0").error
    assert err["code"] == 5 and "Read-only file system" in err["msg"]
    assert snapshot(data_dir) == before


def test_a_read_only_store_without_the_network_yet_refuses_add(host_local: Runner, fs: Path, data_dir: Path) -> None:
    read_only(fs)
    err = host_local("ADD", ipam_conf(data_dir)).error
    assert err["code"] == 5
    assert err["msg"] == f'host-local: cannot open the lease store "{fs}/leases/tight": Read-only file system'


def macvlan_conf(data_dir: Path, state_dir: Path) -> dict:
    return configs.macvlan_conf("tight", data_dir, state_dir)


@pytest.mark.netns
def test_macvlan_add_on_a_full_store_fails_with_code_5_and_leaves_no_link(
    macvlan: MacvlanRunner, lab: Lab, fs: Path, data_dir: Path, tmp_path: Path
) -> None:
    conf = macvlan_conf(data_dir, tmp_path / "state")
    c0, c1 = lab.container("c0"), lab.container("c1")
    macvlan("ADD", conf, c0, container_id="c0").ok()
    fill(fs)
    err = macvlan("ADD", conf, c1, container_id="c1").error
    assert err["code"] == 5 and "No space left on device" in err["msg"]
    assert set(lab.links(c1)) == {"lo"}
    assert list(lease_files(data_dir, "tight")) == ["10.77.0.2"]


@pytest.mark.netns
def test_macvlan_del_on_a_read_only_store_removes_the_link_and_reports_the_lease(
    macvlan: MacvlanRunner, lab: Lab, fs: Path, data_dir: Path, tmp_path: Path
) -> None:
    conf = macvlan_conf(data_dir, tmp_path / "state")
    c0 = lab.container("c0")
    macvlan("ADD", conf, c0, container_id="c0").ok()
    read_only(fs)
    err = macvlan("DEL", conf, c0, container_id="c0").error
    assert err["code"] == 5 and "Read-only file system" in err["msg"]
    assert set(lab.links(c0)) == {"lo"}, "the link goes whatever the store says"
    assert list(lease_files(data_dir, "tight")) == ["10.77.0.2"]
    # once the store is writable again, the runtime's retry of DEL finishes the job
    subprocess.run(["mount", "-o", "remount,rw", str(fs)], check=True)
    macvlan("DEL", conf, c0, container_id="c0").ok()
    assert lease_files(data_dir, "tight") == {}
