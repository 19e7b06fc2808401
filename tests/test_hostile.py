"""Hostile or broken input, as named cases, run the way a runtime runs the plugin (exec'd in the
node's namespace, in every layout): each gets a CNI error JSON on stdout with the right code, exit
status 1, no traceback anywhere, and leaves the node exactly as it was (links on the node and in the
container, lease store, parent record). The fuzzers (tests/test_fuzz.py) cover the space between."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.configs import macvlan_conf
from tests.support.lab import Lab
from tests.support.runners import MacvlanRunner

pytestmark = pytest.mark.netns


def base(tmp_path: Path) -> dict[str, Any]:
    return macvlan_conf("hostile", tmp_path / "leases", tmp_path / "state")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# name: (stdin as a function of the base config, extra environment, expected code)
CASES: dict[str, tuple[Any, dict[str, str], int]] = {
    "malformed JSON": (lambda c: json.dumps(c)[:-7].encode(), {}, 6),
    "not JSON at all": (lambda c: b"\x00\xff\xfe garbage", {}, 6),
    "a JSON array": (lambda c: b"[1, 2, 3]", {}, 6),
    "nesting 100000 deep": (
        lambda c: json.dumps(c)[:-1].encode() + b', "x": ' + nested(100_000).encode() + b"}",
        {},
        6,
    ),
    "mtu as a string": (lambda c: {**c, "mtu": "1500"}, {}, 7),
    "mtu of 40 digits": (lambda c: {**c, "mtu": 10**40}, {}, 7),
    "negative mtu": (lambda c: {**c, "mtu": -1}, {}, 7),
    "master as a number": (lambda c: {**c, "master": 12}, {}, 7),
    "master of a megabyte": (lambda c: {**c, "master": "a" * 1_000_000}, {}, 7),
    "master with a slash": (lambda c: {**c, "master": "../../eth0"}, {}, 7),
    "VLAN id 5000": (lambda c: {**c, "master": "upl0.5000"}, {}, 7),
    "unknown mode": (lambda c: {**c, "mode": "tunnel"}, {}, 7),
    "ipam as a string": (lambda c: {**c, "ipam": "host-local"}, {}, 7),
    "subnet /99": (lambda c: {**c, "ipam": {**c["ipam"], "subnet": "10.77.0.0/99"}}, {}, 7),
    "rangeStart outside the subnet": (lambda c: {**c, "ipam": {**c["ipam"], "rangeStart": "10.78.0.5"}}, {}, 7),
    "dataDir relative": (lambda c: {**c, "ipam": {**c["ipam"], "dataDir": "../../etc"}}, {}, 7),
    "unknown version": (lambda c: {**c, "cniVersion": "9.9.9"}, {}, 1),
    "version as a number": (lambda c: {**c, "cniVersion": 1.0}, {}, 1),
    "network name with a path": (lambda c: {**c, "name": "../../etc"}, {}, 7),
    "network name of 10000 chars": (lambda c: {**c, "name": "n" * 10_000}, {}, 7),
    "CNI_ARGS without =": (lambda c: c, {"CNI_ARGS": "IgnoreUnknown=1;MAC"}, 4),
    "CNI_ARGS with a bad MAC": (lambda c: c, {"CNI_ARGS": "IgnoreUnknown=1;MAC=zz:zz:zz:zz:zz:zz"}, 7),
    "CNI_ARGS with a bad IP": (lambda c: c, {"CNI_ARGS": "IgnoreUnknown=1;IP=10.77.0.999"}, 7),
    "unknown CNI_ARGS key": (lambda c: c, {"CNI_ARGS": "FOO=bar"}, 4),
    "ifname of 16 chars": (lambda c: c, {"CNI_IFNAME": "e" * 16}, 4),
    "ifname with a slash": (lambda c: c, {"CNI_IFNAME": "eth/0"}, 4),
    "ifname ..": (lambda c: c, {"CNI_IFNAME": ".."}, 4),
    "container id with a path": (lambda c: c, {"CNI_CONTAINERID": "../../etc/passwd"}, 4),
    "stateDir relative": (lambda c: {**c, "stateDir": "state"}, {}, 7),
    "netns that does not exist": (lambda c: c, {"CNI_NETNS": "/run/netns/no-such-netns"}, 4),
    "netns that is a regular file": (lambda c: c, {"CNI_NETNS": "/etc/hostname"}, 4),
    "netns that is a directory": (lambda c: c, {"CNI_NETNS": "/tmp"}, 4),
    "netns relative": (lambda c: c, {"CNI_NETNS": "run/netns/x"}, 4),
}


def node_state(lab: Lab, container: str) -> tuple[set[str], set[str]]:
    return set(lab.links(lab.node)), set(lab.links(container))


def files_under(path: Path) -> list[str]:
    return sorted(str(p) for p in path.rglob("*")) if path.exists() else []


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_add_is_refused_by_code_and_changes_nothing(
    macvlan: MacvlanRunner, lab: Lab, tmp_path: Path, case: str
) -> None:
    make, env, code = CASES[case]
    env = dict(env)
    c1 = lab.container("c1")
    before = node_state(lab, c1)
    stdin = make(base(tmp_path))
    out = macvlan("ADD", stdin, env.pop("CNI_NETNS", c1), **env)
    assert out.code == 1, (out.code, out.stdout, out.stderr)
    error = json.loads(out.stdout)
    assert error["code"] == code, error
    assert error["msg"] and "Traceback" not in out.stdout + out.stderr
    assert node_state(lab, c1) == before
    assert files_under(tmp_path / "leases") + files_under(tmp_path / "state") == []


DEL_CASES = ["malformed JSON", "a JSON array", "unknown version", "network name with a path", "ifname with a slash"]


@pytest.mark.parametrize("case", DEL_CASES)
def test_hostile_del_is_refused_and_keeps_the_attachment(
    macvlan: MacvlanRunner, lab: Lab, tmp_path: Path, case: str
) -> None:
    """A DEL that can't be read must not half-run: the link and the lease stay for a proper DEL."""
    make, env, code = CASES[case]
    conf = base(tmp_path)
    c1 = lab.container("c1")
    macvlan("ADD", conf, c1).ok()
    leases = files_under(tmp_path / "leases")
    out = macvlan("DEL", make(conf), c1, **env)
    assert out.code == 1 and json.loads(out.stdout)["code"] == code, out.stdout
    assert "eth0" in lab.links(c1)
    assert files_under(tmp_path / "leases") == leases
    macvlan("DEL", conf, c1).ok()
    assert set(lab.links(c1)) == {"lo"}


def test_a_container_id_of_10000_characters_round_trips(macvlan: MacvlanRunner, lab: Lab, tmp_path: Path) -> None:
    """libcni puts no bound on container IDs; the lease file holds it whole, so DEL finds it again."""
    conf, cid = base(tmp_path), "c" * 10_000
    c1 = lab.container("c1")
    macvlan("ADD", conf, c1, container_id=cid).ok()
    assert (tmp_path / "leases" / "hostile" / "10.77.0.2").read_bytes() == cid.encode() + b"\r\neth0"
    macvlan("DEL", conf, c1, container_id=cid).ok()
    assert not (tmp_path / "leases" / "hostile" / "10.77.0.2").exists()
