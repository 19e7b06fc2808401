"""32 ADDs and 32 DELs at once on one macvlan network, round after round, as a busy node sees them.

After every round the three views of the network must agree: the results the runtime got, the
lease store, and the kernel (the links in the container namespaces). No address is handed out
twice, every live attachment has exactly one lease, no lease outlives its attachment, and no
temporary file is left in the store.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.configs import macvlan_conf
from tests.support.lab import Lab
from tests.support.layouts import dist_executable
from tests.support.runners import Outcome

N = 32
ROUNDS = 3

pytestmark = [pytest.mark.netns, pytest.mark.exec]


def config(data_dir: Path, state_dir: Path) -> dict:
    return macvlan_conf("soak", data_dir, state_dir)


def store_view(data_dir: Path) -> dict[str, str]:
    """address -> container ID, from the lease files; fails on anything else in the directory."""
    leases = {}
    for p in (data_dir / "soak").iterdir():
        if p.name in ("lock", "last_reserved_ip.0"):
            continue
        assert p.name[0].isdigit(), f"unexpected file in the store: {p.name}"
        cid, ifname = p.read_bytes().decode().split("\r\n")
        assert ifname == "eth0"
        leases[p.name] = cid
    return leases


def kernel_view(lab: Lab, namespaces: dict[str, str]) -> dict[str, str]:
    """container ID -> the IPv4 address on its eth0 (absent when the container has no eth0)."""
    seen = {}
    for cid, ns in namespaces.items():
        if "eth0" in lab.links(ns):
            addresses = lab.addresses(ns, "eth0")
            assert len(addresses) == 1, f"{cid}: {addresses}"
            seen[cid] = addresses[0].split("/")[0]
    return seen


@pytest.mark.parametrize("layout", ["fast/macvlan", "macvlan"])
def test_32_adds_and_32_dels_at_once_keep_store_kernel_and_results_in_line(
    lab: Lab, tmp_path: Path, layout: str
) -> None:
    exe = dist_executable(layout)
    data_dir, state_dir = tmp_path / "leases", tmp_path / "state"
    data_dir.mkdir(mode=0o755)
    conf = config(data_dir, state_dir)
    namespaces: dict[str, str] = {}
    live: dict[str, str] = {}  # container ID -> address, from the results

    def call(command: str, cid: str, start: threading.Barrier) -> tuple[str, str, Outcome]:
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": namespaces[cid],
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(exe.parent),
        }
        start.wait()
        return command, cid, lab.run([str(exe)], env, conf)

    for rnd in range(ROUNDS):
        adding = [f"r{rnd}c{i}" for i in range(N)]
        for cid in adding:
            namespaces[cid] = lab.container(cid)
        deleting = list(live)  # everything the previous round added
        jobs = [("ADD", cid) for cid in adding] + [("DEL", cid) for cid in deleting]
        start = threading.Barrier(len(jobs))
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            outcomes = list(pool.map(call, [c for c, _ in jobs], [cid for _, cid in jobs], [start] * len(jobs)))

        for command, cid, out in outcomes:
            assert out.code == 0, f"round {rnd}: {command} {cid}: {out.stdout} {out.stderr}"
            if command == "ADD":
                live[cid] = out.json["ips"][0]["address"].split("/")[0]
            else:
                del live[cid]
        assert len(live) == N
        assert len(set(live.values())) == N, f"round {rnd}: an address handed out twice: {live}"

        leases = store_view(data_dir)
        assert sorted(leases.values()) == sorted(live), f"round {rnd}: leases and attachments differ"
        assert {leases[a]: a for a in leases} == live, f"round {rnd}: a lease names another address"
        assert kernel_view(lab, namespaces) == live, f"round {rnd}: the kernel disagrees with the results"

        for cid in deleting:  # the runtime tears the sandbox down after DEL
            lab.remove_netns(namespaces.pop(cid))

    assert not (state_dir / "parents.json").exists(), "an existing master is never recorded as ours"
