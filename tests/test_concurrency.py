"""Many processes on one store at once: the flock and O_EXCL-style reservation keep addresses unique."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.configs import ipam_conf
from tests.support.layouts import dist_executable
from tests.support.runners import cni_env, json_bytes, run_exec

N = 32


def config(data_dir: Path, subnet: str = "10.50.0.0/24") -> dict:
    return ipam_conf(data_dir, "busy", subnet)


def run_all(exe: Path, command: str, conf: dict, ids: list[str]) -> list:
    start = threading.Barrier(len(ids))

    def one(cid: str):
        start.wait()
        return run_exec(exe, cni_env(command, container_id=cid), json_bytes(conf), timeout=120)

    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        return list(pool.map(one, ids))


def lease_files(data_dir: Path) -> dict[str, bytes]:
    d = data_dir / "busy"
    return {p.name: p.read_bytes() for p in d.iterdir() if p.name[0].isdigit()}


@pytest.mark.exec
def test_32_concurrent_adds_get_32_distinct_addresses(data_dir: Path) -> None:
    exe = dist_executable("host-local")
    ids = [f"ctr{i}" for i in range(N)]
    outs = run_all(exe, "ADD", config(data_dir), ids)
    addresses = [o.ok()["ips"][0]["address"] for o in outs]
    assert len(set(addresses)) == N
    files = lease_files(data_dir)
    assert len(files) == N
    assert sorted(v.decode() for v in files.values()) == sorted(f"{cid}\r\neth0" for cid in ids)
    assert not [p for p in (data_dir / "busy").iterdir() if p.name.startswith(".tmp")]

    outs = run_all(exe, "DEL", config(data_dir), ids)
    assert all(o.code == 0 for o in outs)
    assert lease_files(data_dir) == {}


@pytest.mark.exec
def test_concurrent_adds_on_a_small_pool_fill_it_exactly_and_fail_the_rest_cleanly(data_dir: Path) -> None:
    exe = dist_executable("host-local")
    ids = [f"ctr{i}" for i in range(20)]
    outs = run_all(exe, "ADD", config(data_dir, "10.60.0.0/28"), ids)  # 13 usable: .2-.14
    won = [o for o in outs if o.code == 0]
    lost = [o for o in outs if o.code != 0]
    assert len(won) == 13 and len(lost) == 7
    assert all("no IP addresses available" in o.error["msg"] for o in lost)
    assert len({o.json["ips"][0]["address"] for o in won}) == 13
    assert len(lease_files(data_dir)) == 13
