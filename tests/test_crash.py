"""kill -9 in the middle of an ADD, on the host lane (an existing master; the VM lane adds the steps
that create parents, tests/test_vm_parents.py). The plugin stops itself at a named step
(``CNI_MACVLAN_CRASH_AT``, cni/faults.py), exactly as SIGKILL from outside would stop it.

Whatever a crash leaves, no store file is ever half-written, the next DEL of the same attachment
leaves no link, no lease and no temporary file, and GC brings the store back in line with the
attachments the runtime still knows.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support import configs
from tests.support.lab import Lab, lease_files
from tests.support.layouts import dist_executable
from tests.support.runners import MacvlanRunner, Outcome, cni_env, json_bytes, run_exec

pytestmark = pytest.mark.exec

KILLED = (-signal.SIGKILL, 128 + signal.SIGKILL)


def store_files(data_dir: Path, network: str) -> dict[str, bytes]:
    d = data_dir / network
    return {p.name: p.read_bytes() for p in d.iterdir() if p.name != "lock"} if d.exists() else {}


def ipam_conf(data_dir: Path) -> dict:
    return configs.ipam_conf(data_dir, "crashnet", "10.66.0.0/29")


@pytest.mark.parametrize("layout", ["host-local", "fast/host-local"])
def test_killed_before_the_lease_is_linked_leaves_no_lease_and_gc_removes_the_temporary(
    data_dir: Path, layout: str
) -> None:
    exe = dist_executable(layout)
    conf = ipam_conf(data_dir)
    out = run_exec(exe, cni_env("ADD", container_id="c1", CNI_MACVLAN_CRASH_AT="lease-written"), json_bytes(conf))
    assert out.code in KILLED, (out.code, out.stdout)
    files = store_files(data_dir, "crashnet")
    temporaries = [name for name in files if name.startswith(".tmp-")]
    assert len(temporaries) == 1 and files[temporaries[0]] == b"c1\r\neth0", files
    assert not [name for name in files if name[0].isdigit()], "no lease without its whole content"

    # the temporary file is no reservation: the next ADD gets the first address
    added = run_exec(exe, cni_env("ADD", container_id="c2"), json_bytes(conf))
    assert added.ok()["ips"][0]["address"] == "10.66.0.2/29"
    gc = {**conf, "cniVersion": "1.1.0", "cni.dev/valid-attachments": [{"containerID": "c2", "ifname": "eth0"}]}
    run_exec(exe, cni_env("GC"), json_bytes(gc)).ok()
    assert store_files(data_dir, "crashnet") == {"10.66.0.2": b"c2\r\neth0", "last_reserved_ip.0": b"10.66.0.2"}


@pytest.mark.parametrize("layout", ["host-local", "fast/host-local"])
def test_killed_after_the_lease_is_linked_leaves_a_whole_lease_that_del_or_gc_release(
    data_dir: Path, layout: str
) -> None:
    exe = dist_executable(layout)
    conf = ipam_conf(data_dir)
    for cid in ("c1", "c2"):
        out = run_exec(exe, cni_env("ADD", container_id=cid, CNI_MACVLAN_CRASH_AT="lease-reserved"), json_bytes(conf))
        assert out.code in KILLED, (out.code, out.stdout)
    files = store_files(data_dir, "crashnet")
    # whole leases; last_reserved_ip was never written, so c2 took the first free address after c1's
    assert files == {"10.66.0.2": b"c1\r\neth0", "10.66.0.3": b"c2\r\neth0"}, files
    run_exec(exe, cni_env("DEL", container_id="c1"), json_bytes(conf)).ok()
    gc = {**conf, "cniVersion": "1.1.0", "cni.dev/valid-attachments": []}
    run_exec(exe, cni_env("GC"), json_bytes(gc)).ok()
    assert store_files(data_dir, "crashnet") == {}


def killed(out: Outcome, step: str) -> None:
    """The ADD died at the step. From source, host-local runs as its own process: then only the IPAM
    is killed, and macvlan reports the failure (after undoing its own steps)."""
    if out.code in KILLED:
        return
    assert step.startswith("lease-") and out.code == 1, (out.code, out.stdout)
    assert out.error["msg"] == 'netplugin failed: "": signal: killed', out.stdout


def macvlan_conf(tmp_path: Path) -> dict:
    return configs.macvlan_conf("crashnet", tmp_path / "leases", tmp_path / "state")


@pytest.mark.netns
@pytest.mark.parametrize("step", ["link-created", "ipam-added", "lease-written", "lease-reserved"])
def test_a_kill_9_during_macvlan_add_is_cleaned_up_by_del(
    macvlan: MacvlanRunner, lab: Lab, tmp_path: Path, step: str
) -> None:
    conf = macvlan_conf(tmp_path)
    c1 = lab.container("c1")
    killed(macvlan("ADD", conf, c1, CNI_MACVLAN_CRASH_AT=step), step)
    macvlan("DEL", conf, c1).ok()
    assert set(lab.links(c1)) == {"lo"}
    assert lease_files(tmp_path / "leases", "crashnet") == {}
    assert not [name for name in store_files(tmp_path / "leases", "crashnet") if name.startswith(".")]
    assert not (tmp_path / "state" / "parents.json").exists()
    # and the network works again
    assert macvlan("ADD", conf, c1).ok()["ips"][0]["address"].startswith("10.77.0.")
    assert lab.ping(c1, "10.77.0.1")


@pytest.mark.netns
@pytest.mark.parametrize("step", ["ipam-added", "lease-written", "lease-reserved"])
def test_a_kill_9_during_macvlan_add_is_cleaned_up_by_gc(
    macvlan: MacvlanRunner, lab: Lab, tmp_path: Path, step: str
) -> None:
    conf = macvlan_conf(tmp_path)
    c1 = lab.container("c1")
    killed(macvlan("ADD", conf, c1, CNI_MACVLAN_CRASH_AT=step), step)
    lab.remove_netns(c1)  # the runtime gave up on the sandbox
    macvlan("GC", {**conf, "cniVersion": "1.1.0", "cni.dev/valid-attachments": []}).ok()
    assert store_files(tmp_path / "leases", "crashnet") in ({}, {"last_reserved_ip.0": b"10.77.0.2"})
