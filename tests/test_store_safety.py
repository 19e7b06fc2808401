"""The lease store never escapes its directory: no symlink is followed, and a directory others may
write to is refused (whoever writes there could plant leases or links to files elsewhere)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.configs import ipam_conf
from tests.support.runners import Runner


def conf(data_dir: Path) -> dict:
    return ipam_conf(data_dir, "safe", "10.1.2.0/29")


@pytest.mark.parametrize("which", ["dataDir", "network dir"])
def test_a_store_writable_by_others_is_refused(host_local: Runner, tmp_path: Path, which: str) -> None:
    data_dir = tmp_path / "store"
    (data_dir / "safe").mkdir(parents=True, mode=0o755)
    (data_dir if which == "dataDir" else data_dir / "safe").chmod(0o777)
    err = host_local("ADD", conf(data_dir)).error
    assert err["code"] == 5 and "writable by others" in err["msg"]
    assert [p.name for p in (data_dir / "safe").iterdir()] == []


def test_a_symlinked_network_dir_is_refused(host_local: Runner, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    data_dir = tmp_path / "store"
    data_dir.mkdir(mode=0o755)
    (data_dir / "safe").symlink_to(elsewhere)
    err = host_local("ADD", conf(data_dir)).error
    assert err["code"] == 5 and "not a plain directory" in err["msg"]
    assert list(elsewhere.iterdir()) == []


def test_a_planted_symlink_is_never_followed_nor_removed(host_local: Runner, data_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("dummy\r\neth0")  # would match the attachment if it were followed
    store = data_dir / "safe"
    store.mkdir(mode=0o755)
    (store / "10.1.2.2").symlink_to(secret)
    (store / "last_reserved_ip.0").symlink_to(secret)
    result = host_local("ADD", conf(data_dir)).ok()
    assert result["ips"][0]["address"] == "10.1.2.3/29", "the planted name stays taken, its target unread"
    host_local("DEL", conf(data_dir)).ok()
    host_local("GC", {**conf(data_dir), "cniVersion": "1.1.0", "cni.dev/valid-attachments": []}).ok()
    assert (store / "10.1.2.2").is_symlink(), "DEL and GC never remove what they did not write"
    assert secret.read_bytes() == b"dummy\r\neth0", "nothing was written through a link"
    assert not (store / "10.1.2.3").exists()
    assert not (store / "last_reserved_ip.0").is_symlink(), "the link was replaced, its target untouched"


@pytest.mark.parametrize("name", ["../escape", "a/b", "/abs", "x\u0000y", ".hidden"])
def test_a_network_name_can_never_leave_the_data_dir(host_local: Runner, data_dir: Path, name: str) -> None:
    err = host_local("ADD", {**conf(data_dir), "name": name}).error
    assert err["code"] == 7
    assert list(data_dir.iterdir()) == [] and not (data_dir.parent / "escape").exists()
