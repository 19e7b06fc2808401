"""Interop with Go's host-local on one shared store: upstream's at the pinned release (built from the Go
module proxy, tools/versions.env) and Debian's v1.1.1 (/usr/lib/cni), the two generations a node runs.

Both implementations are exec'd the way a runtime execs them; leases written by either must be read,
released and round-robined by the other, and their results must be byte-for-byte the same.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.configs import ipam_conf
from tests.support.layouts import DEBIAN_VERSIONS, UPSTREAM_VERSIONS, debian_plugin, dist_executable, upstream_plugin
from tests.support.runners import Outcome, cni_env, json_bytes, run_exec

pytestmark = pytest.mark.interop


@pytest.fixture
def ours() -> Path:
    return dist_executable("host-local")


PEERS = {"upstream": upstream_plugin, "debian": debian_plugin}
PEER_VERSIONS = [("upstream", v) for v in UPSTREAM_VERSIONS] + [("debian", v) for v in DEBIAN_VERSIONS]


@pytest.fixture(params=list(PEERS))
def go(request: pytest.FixtureRequest) -> Path:
    """Go's host-local, once per peer."""
    return PEERS[request.param]("host-local")


def conf(data_dir: Path, version: str = "1.0.0", **ipam: Any) -> dict[str, Any]:
    ipam = ipam or {"subnet": "10.9.0.0/24", "routes": [{"dst": "0.0.0.0/0"}]}
    return ipam_conf(data_dir, "shared", None, version, top={"type": "macvlan"}, ipam=ipam)


def run(exe: Path, command: str, config: dict[str, Any], cid: str, ifname: str = "eth0", **env: str) -> Outcome:
    return run_exec(exe, cni_env(command, container_id=cid, ifname=ifname, **env), json_bytes(config))


def address(out: Outcome) -> str:
    result = out.ok()
    return result["ips"][0]["address"].split("/")[0]


def leases(data_dir: Path) -> dict[str, bytes]:
    d = data_dir / "shared"
    return {p.name: p.read_bytes() for p in d.iterdir() if p.name != "lock" and not p.name.startswith("last_")}


@pytest.mark.parametrize(("peer", "version"), PEER_VERSIONS)
def test_results_are_byte_identical_to_go(ours: Path, tmp_path: Path, peer: str, version: str) -> None:
    go = PEERS[peer]("host-local")
    ranges = {
        "ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8:1::/64"}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
    }
    outs = {}
    for name, exe in (("go", go), ("ours", ours)):
        store = tmp_path / name
        config = conf(store, version, **ranges)
        outs[name] = run(exe, "ADD", config, "c1")
        assert outs[name].code == 0, outs[name].stdout
        assert leases(store) == {"10.1.2.2": b"c1\r\neth0", "2001:db8:1::2": b"c1\r\neth0"}
        assert (store / "shared" / "last_reserved_ip.0").read_bytes() == b"10.1.2.2"
    if peer == "debian" and version.startswith("1."):
        # the one named difference (docs/design.md, compatibility): libcni v1.2.0 (upstream's plugins since
        # v1.6.0) renders 1.x results with sorted keys and no empty "dns"; Debian's v1.1.1 predates it, and we
        # render as upstream does today
        assert outs["go"].stdout.endswith('],\n    "dns": {}\n}')
        assert outs["ours"].stdout == outs["go"].stdout.removesuffix(',\n    "dns": {}\n}') + "\n}"
    else:
        assert outs["ours"].stdout == outs["go"].stdout


@pytest.mark.parametrize("first", ["go", "ours"])
def test_leases_are_shared_and_round_robin_continues_across_implementations(
    ours: Path, go: Path, data_dir: Path, first: str
) -> None:
    a, b = (go, ours) if first == "go" else (ours, go)
    config = conf(data_dir)
    got = [address(run(exe, "ADD", config, f"c{i}")) for i, exe in enumerate([a, a, b, a, b, b])]
    assert got == ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6", "10.9.0.7"]
    # each releases the other's leases
    run(b, "DEL", config, "c0").ok()
    run(a, "DEL", config, "c2").ok()
    assert set(leases(data_dir)) == {"10.9.0.3", "10.9.0.5", "10.9.0.6", "10.9.0.7"}
    # each sees the other's lease for CHECK (Go's host-local CHECK needs nothing but the lease)
    for exe, cid in ((a, "c4"), (b, "c1")):
        out = run(exe, "CHECK", config, cid)
        assert (out.code, out.stdout) == (0, ""), out.stdout
    # each refuses the other's address when it is requested
    taken = run(b, "ADD", config, "x", CNI_ARGS="IP=10.9.0.3")
    assert "10.9.0.3" in taken.error["msg"]
    # and the round robin moves on from the other's last reservation
    assert address(run(b, "ADD", config, "c9")) == "10.9.0.8"
    assert address(run(a, "ADD", config, "c10")) == "10.9.0.9"


def test_a_legacy_go_lease_without_ifname_is_released_by_ours(ours: Path, go: Path, data_dir: Path) -> None:
    config = conf(data_dir)
    address(run(go, "ADD", config, "old"))
    (data_dir / "shared" / "10.9.0.2").write_bytes(b"old")
    run(ours, "DEL", config, "old").ok()
    assert leases(data_dir) == {}


def test_requested_ips_are_honoured_by_both_on_one_store(ours: Path, go: Path, data_dir: Path) -> None:
    config = conf(data_dir)
    assert address(run(go, "ADD", config, "g", CNI_ARGS="IP=10.9.0.50")) == "10.9.0.50"
    assert address(run(ours, "ADD", config, "o", CNI_ARGS="IP=10.9.0.51")) == "10.9.0.51"
    assert "not available" in run(go, "ADD", config, "g2", CNI_ARGS="IP=10.9.0.51").error["msg"]
    assert leases(data_dir) == {"10.9.0.50": b"g\r\neth0", "10.9.0.51": b"o\r\neth0"}


def test_concurrent_adds_from_both_implementations_never_collide(ours: Path, go: Path, data_dir: Path) -> None:
    config = conf(data_dir)
    jobs = [(go if i % 2 else ours, f"c{i}") for i in range(24)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        outs = list(pool.map(lambda job: run(job[0], "ADD", config, job[1]), jobs))
    got = [address(o) for o in outs]
    assert len(set(got)) == 24
    files = leases(data_dir)
    assert len(files) == 24
    assert {v.decode().split("\r\n")[0] for v in files.values()} == {cid for _, cid in jobs}
