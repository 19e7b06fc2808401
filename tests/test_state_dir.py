"""stateDir, the record of the parents we own: it decides which node links we delete, so it gets the
lease store's rules (cni_macvlan/parents.py Store, cni/statefile.py): a directory that is a symlink
or writable by others is refused, no file in it is followed through a symlink, only regular files
are read; a record is never enough to delete a link that is not what we create; every failure is a
CNI error (code 5) naming the path and the fix, and changes nothing on the node; a damaged record
stops ADD and never blocks DEL or GC.

Exec'd in the namespace lab in every layout (the `macvlan` fixture), with a real non-root user
where one is the attacker. This kernel has no dummy or 802.1Q: the victims are veth links, and a
record is planted by hand where an ADD would have written it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cni_macvlan.links.parents import dummy_name
from tests.support.configs import macvlan_conf
from tests.support.fs import fill, read_only
from tests.support.lab import Lab, lease_files, sh
from tests.support.runners import MacvlanRunner, Outcome
from tests.support.users import AS_NOBODY, NOBODY

pytestmark = pytest.mark.netns

NET = "statenet"


class Attach(MacvlanRunner):
    """One of the link plugins (macvlan, ipvlan: they share the parents' rules and record) run as the
    `macvlan` fixture runs ours, in each layout; the config's type set to match."""

    def __call__(self, command: str, config: dict[str, Any], *args: Any, **kwargs: Any) -> Outcome:
        return super().__call__(command, {**config, "type": self.plugin}, *args, **kwargs)


@pytest.fixture(params=["macvlan", "ipvlan"])
def attach(macvlan: MacvlanRunner, request: pytest.FixtureRequest) -> Attach:
    """(This kernel has no ipvlan: every test taking this one fails or succeeds before a link is made.)"""
    return Attach(macvlan.lab, macvlan.plugin_dir, macvlan.mode, macvlan.served, plugin=request.param)


def conf(state_dir: Path, data_dir: Path, master: str | None = "upl0", version: str = "1.1.0") -> dict[str, Any]:
    return macvlan_conf(NET, data_dir, state_dir, version=version, master=master)


def gc(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "cni.dev/valid-attachments": []}


def victim(lab: Lab) -> int:
    """A link of the node that is not ours: its ifindex."""
    sh("ip", "-n", lab.node, "link", "add", "victim0", "type", "veth", "peer", "name", "victim0p")
    return int(lab.links(lab.node)["victim0"]["ifindex"])


def record(name: str, ifindex: int, kind: str = "dummy", base: str = "", vid: int = 0) -> bytes:
    rec = {"kind": kind, "base": base, "vid": vid, "ifindex": ifindex, "attachments": [[NET, "c9", "eth0"]]}
    return json.dumps({"version": 1, "parents": {name: rec}}).encode()


def node_state(lab: Lab, data_dir: Path) -> tuple[set[str], dict[str, str]]:
    return set(lab.links(lab.node)), lease_files(data_dir, NET)


# ---- 7. stateDir gets the lease store's protections ----


def test_a_state_dir_others_can_write_is_refused_and_a_users_record_deletes_nothing(
    attach: Attach, lab: Lab, shared_dir: Path
) -> None:
    """A user writes a record naming a node link as an owned parent: root's GC, DEL and ADD refuse
    the directory (code 5) and the link stays."""
    state = shared_dir / "state"
    state.mkdir()
    state.chmod(0o777)
    index = victim(lab)
    subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "/usr/bin/python3",
            "-I",
            "-c",
            "import sys; open(sys.argv[1], 'wb').write(sys.argv[2].encode())",
            str(state / "parents.json"),
            record("victim0", index).decode(),
        ],
        check=True,
    )
    config = conf(state, shared_dir / "leases")
    c1 = lab.container("c1")
    for verb, cfg, cid in (("GC", gc(config), "c9"), ("DEL", config, "c9"), ("ADD", config, "c1")):
        err = attach(verb, cfg, c1, container_id=cid).error
        assert err["code"] == 5, (verb, err)
        assert f'stateDir "{state}"' in err["msg"] and "writable by others" in err["msg"], err
    assert "victim0" in lab.links(lab.node)
    assert set(lab.links(c1)) == {"lo"} and lease_files(shared_dir / "leases", NET) == {}


@pytest.mark.parametrize("planted", ["dummy", "vlan", "dummy-named"])
@pytest.mark.parametrize("verb", ["DEL", "GC"])
def test_a_record_alone_never_deletes_a_link_we_did_not_make(
    attach: Attach, lab: Lab, tmp_path: Path, verb: str, planted: str
) -> None:
    """A record (root's own file, damaged or forged) naming a node link with its very ifindex: DEL
    and GC delete only a link that is what we create (a dummy named dm-<hash>, or <base>.<vid>, a
    VLAN of that id on that base), so the link stays and the entry is dropped."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    index = victim(lab)
    name = "victim0"
    if planted == "vlan":
        data = record(name, index, "vlan", "upl0", 0)
    elif planted == "dummy-named":  # our dummy's name, on a veth: the kind differs
        name = dummy_name(NET)
        sh("ip", "-n", lab.node, "link", "set", "victim0", "name", name)
        data = record(name, index)
    else:
        data = record(name, index)
    (state / "parents.json").write_bytes(data)
    config = conf(state, tmp_path / "leases")
    attach(verb, gc(config) if verb == "GC" else config, container_id="c9").ok()
    assert name in lab.links(lab.node)
    assert json.loads((state / "parents.json").read_text())["parents"] == {}


def test_a_planted_lock_symlink_is_not_followed(attach: Attach, lab: Lab, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    target = tmp_path / "created-by-root"
    (state / "parents.lock").symlink_to(target)
    c1 = lab.container("c1")
    err = attach("ADD", conf(state, tmp_path / "leases", master=None), c1, container_id="c1").error
    assert err["code"] == 5 and str(state) in err["msg"], err
    assert not target.exists()
    assert set(lab.links(c1)) == {"lo"} and lease_files(tmp_path / "leases", NET) == {}


def test_a_symlinked_state_dir_is_refused(attach: Attach, lab: Lab, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    state = tmp_path / "state"
    state.symlink_to(real)
    c1 = lab.container("c1")
    for verb in ("ADD", "DEL"):
        err = attach(verb, conf(state, tmp_path / "leases", master=None), c1, container_id="c1").error
        assert err["code"] == 5 and "not a plain directory" in err["msg"], err
    assert list(real.iterdir()) == []
    assert set(lab.links(c1)) == {"lo"}


# ---- 8. stateDir failures are code 5, name the path and the fix, and change nothing ----


def test_a_read_only_state_dir_fails_add_del_and_gc_with_code_5(
    attach: Attach, lab: Lab, fs: Path, tmp_path: Path
) -> None:
    state = fs / "state"
    state.mkdir(mode=0o700)
    (state / "parents.json").write_bytes(record(dummy_name(NET), 0))  # an attachment ADD recorded
    read_only(fs)
    before = node_state(lab, tmp_path / "leases")
    c1 = lab.container("c1")
    config = conf(state, tmp_path / "leases", master=None)  # an owned parent: ADD must record it
    for verb, cfg, cid in (("ADD", config, "c1"), ("DEL", config, "c9"), ("GC", gc(config), "c9")):
        err = attach(verb, cfg, c1, container_id=cid).error
        assert err["code"] == 5, (verb, err)
        assert err["msg"] == f'stateDir "{state}": Read-only file system', err
        assert "read-only filesystem" in err["details"], err
    assert node_state(lab, tmp_path / "leases") == before and set(lab.links(c1)) == {"lo"}
    assert json.loads((state / "parents.json").read_text())["parents"], "the record is as it was"


def test_a_full_state_dir_fails_add_with_code_5(attach: Attach, lab: Lab, fs: Path, tmp_path: Path) -> None:
    state = fs / "state"
    state.mkdir(mode=0o700)
    fill(fs)
    before = node_state(lab, tmp_path / "leases")
    c1 = lab.container("c1")
    err = attach("ADD", conf(state, tmp_path / "leases", master=None), c1, container_id="c1").error
    assert err["code"] == 5 and err["msg"] == f'stateDir "{state}": No space left on device', err
    assert "full" in err["details"]
    assert node_state(lab, tmp_path / "leases") == before and set(lab.links(c1)) == {"lo"}
    assert sorted(p.name for p in state.iterdir()) in ([], ["parents.lock"]), "no temporary left"


def test_a_state_dir_that_is_a_file_fails_with_code_5(attach: Attach, lab: Lab, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("not a directory")
    c1 = lab.container("c1")
    for master in (None, "upl0"):
        err = attach("ADD", conf(state, tmp_path / "leases", master=master), c1, container_id="c1").error
        assert err["code"] == 5 and f'stateDir "{state}"' in err["msg"], err
        assert "not a directory" in err["msg"] + err["details"], err
    assert state.read_text() == "not a directory"
    assert set(lab.links(c1)) == {"lo"} and lease_files(tmp_path / "leases", NET) == {}


@pytest.mark.parametrize("damage", ["a directory", "a symlink", "a FIFO", "a socket", "wrong types", "not JSON"])
def test_a_damaged_record_stops_add_and_never_blocks_del_or_gc(
    attach: Attach, lab: Lab, tmp_path: Path, damage: str
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    path = state / "parents.json"
    if damage == "a directory":
        path.mkdir()
    elif damage == "a symlink":
        (tmp_path / "elsewhere.json").write_text('{"version": 1, "parents": {}}')
        path.symlink_to(tmp_path / "elsewhere.json")
    elif damage == "a FIFO":
        os.mkfifo(path)
    elif damage == "a socket":
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
        listener.close()
    elif damage == "wrong types":
        path.write_text('{"version": 1, "parents": {"upl0.50": 5}}')
    else:
        path.write_text("{not json")
    c1 = lab.container("c1")
    config = conf(state, tmp_path / "leases")
    err = attach("ADD", config, c1, container_id="c1").error
    assert err["code"] == 5 and f'"{path}" is damaged' in err["msg"], err
    assert "repair or remove it" in err["details"]
    assert set(lab.links(c1)) == {"lo"} and lease_files(tmp_path / "leases", NET) == {}
    attach("DEL", config, c1, container_id="c1").ok()
    attach("GC", gc(config), container_id="c1").ok()
    assert path.is_symlink() or path.exists(), "left as it is, for the operator"


def test_del_and_gc_refuse_a_state_dir_turned_unsafe_before_changing_anything(
    macvlan: MacvlanRunner, lab: Lab, tmp_path: Path
) -> None:
    """The directory became writable by others after the ADD: DEL and GC refuse it (code 5) before
    they release the lease or remove the link, so the runtime's retry after the fix finds all."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    config = conf(state, tmp_path / "leases")
    c1 = lab.container("c1")
    macvlan("ADD", config, c1, container_id="c1").ok()
    state.chmod(0o777)
    for verb, cfg in (("DEL", config), ("GC", gc(config))):
        err = macvlan(verb, cfg, c1, container_id="c1").error
        assert err["code"] == 5 and "writable by others" in err["msg"], (verb, err)
    assert "eth0" in lab.links(c1) and list(lease_files(tmp_path / "leases", NET)) == ["10.77.0.2"]
    state.chmod(0o700)
    macvlan("DEL", config, c1, container_id="c1").ok()
    assert "eth0" not in lab.links(c1) and lease_files(tmp_path / "leases", NET) == {}


@pytest.mark.parametrize("damage", ["a directory", "a FIFO", "a symlink"])
def test_a_damaged_lock_never_blocks_del_or_gc(attach: Attach, lab: Lab, tmp_path: Path, damage: str) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "parents.json").write_bytes(record(dummy_name(NET), 0))
    lock = state / "parents.lock"
    if damage == "a directory":
        lock.mkdir()
    elif damage == "a FIFO":
        os.mkfifo(lock)
    else:
        lock.symlink_to(tmp_path / "elsewhere")
    config = conf(state, tmp_path / "leases", master=None)
    err = attach("ADD", config, lab.container("c1"), container_id="c1").error
    assert err["code"] == 5 and f'"{lock}" is damaged' in err["msg"], err
    attach("DEL", config, container_id="c9").ok()
    attach("GC", gc(config), container_id="c9").ok()
    assert not (tmp_path / "elsewhere").exists()


CHANGEABLE = ["a user's", "writable by its group", "under a user's directory", "under a user's symlink"]


@pytest.mark.parametrize("case", CHANGEABLE)
def test_a_state_dir_anyone_but_root_could_change_is_refused(
    attach: Attach, lab: Lab, shared_dir: Path, case: str
) -> None:
    """The one rule for stateDir and the lease store's directories (cni/statefile.check_private): the
    directory and every directory above it must be root's and not writable by group or others (a
    sticky one like /tmp aside), and a symlink above it must be root's; nothing is made or written
    through one that fails."""
    refused_directory(attach, lab, shared_dir, "stateDir", case)


@pytest.mark.parametrize("case", CHANGEABLE)
def test_a_data_dir_anyone_but_root_could_change_is_refused(
    macvlan: MacvlanRunner, lab: Lab, shared_dir: Path, case: str
) -> None:
    """The same rule for the lease store (reached once the link is made: macvlan's, on this kernel)."""
    refused_directory(macvlan, lab, shared_dir, "dataDir", case)


def refused_directory(run: Any, lab: Lab, shared_dir: Path, which: str, case: str) -> None:
    users = shared_dir / "users"
    users.mkdir()
    os.chown(users, NOBODY, NOBODY)
    target = shared_dir / "target"
    if case == "a user's":
        target.mkdir(mode=0o755)
        os.chown(target, NOBODY, NOBODY)
        expected = f"{target} is owned by uid {NOBODY}"
    elif case == "writable by its group":
        target.mkdir(mode=0o770)
        target.chmod(0o770)
        expected = f"{target} is writable by its group"
    elif case == "under a user's directory":
        target = users / "dir"
        expected = f"{users} is owned by uid {NOBODY}"
    else:
        real = shared_dir / "real"
        real.mkdir(mode=0o700)
        subprocess.run([*AS_NOBODY, "ln", "-s", str(real), str(users / "link")], check=True)
        target = users / "link" / "dir"
        expected = f"{users} is owned by uid {NOBODY}"
    safe = shared_dir / "safe"
    state, data = (target, safe / "leases") if which == "stateDir" else (safe / "state", target)
    c1 = lab.container("c1")
    err = run("ADD", conf(state, data), c1, container_id="c1").error
    assert err["code"] == 5 and expected in err["msg"], err
    assert set(lab.links(c1)) == {"lo"}
    assert not (shared_dir / "real" / "dir").exists() and not (users / "dir").exists(), "nothing made through it"


def test_a_symlink_of_roots_above_the_directory_is_followed(macvlan: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    """As /var/run -> /run: a link of root's in a directory of root's is as safe as the directory."""
    real = tmp_path / "real"
    real.mkdir(mode=0o755)
    (tmp_path / "run").symlink_to(real)
    config = conf(tmp_path / "run" / "state", tmp_path / "run" / "leases")
    c1 = lab.container("c1")
    macvlan("ADD", config, c1, container_id="c1").ok()
    assert (real / "leases" / NET).is_dir()
    macvlan("DEL", config, c1, container_id="c1").ok()
