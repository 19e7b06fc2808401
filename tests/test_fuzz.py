"""Hostile and broken input, fuzzed: always a CNI error JSON with a known code, never a traceback or an
internal error, and nothing written outside the test's own store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cni import skel
from cni.errors import CNIError
from cni.request import Request
from cni_macvlan import macvlan
from ipam.plugin import PLUGIN as HOST_LOCAL

KNOWN_CODES = {1, 2, 3, 4, 5, 6, 7, 11, 50, 999}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
addresses = st.sampled_from(
    ["10.1.2.0/24", "10.1.2.5", "2001:db8::/64", "fd00::1", "10.1.2.0/33", "x", "", "0.0.0.0/0"]
)
ranges = st.lists(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "subnet": addresses | json_values,
                "rangeStart": addresses | json_values,
                "rangeEnd": addresses,
                "gateway": addresses | json_values,
                "ipRange": addresses,
            },
        ),
        max_size=3,
    ),
    max_size=3,
)
ipam_sections = st.fixed_dictionaries(
    {"type": st.just("host-local")},
    optional={
        "ranges": ranges | json_values,
        "subnet": addresses | json_values,
        "routes": st.lists(
            st.fixed_dictionaries({}, optional={"dst": addresses | json_values, "gw": addresses | json_values})
        )
        | json_values,
        "exclude": st.lists(addresses | json_values, max_size=3) | json_values,
    },
)
cni_args = st.text(alphabet="IPMAC=;gnorekw01.:/x", max_size=30)
versions = st.sampled_from(["0.1.0", "0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", "9.9", ""]) | json_values


def check_outcome(code: int, out: str, err: str) -> None:
    assert "Traceback" not in out + err
    if code == 0:
        return
    assert code == 1
    data = json.loads(out)
    assert data["code"] in KNOWN_CODES and isinstance(data["msg"], str) and data["msg"]
    assert not data["msg"].startswith("internal error"), data  # an exception nobody meant to raise


@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    ipam=ipam_sections,
    version=versions,
    command=st.sampled_from(["ADD", "DEL", "CHECK", "GC", "STATUS"]),
    args=cni_args,
    extra=st.dictionaries(
        st.sampled_from(["args", "runtimeConfig", "prevResult", "cni.dev/valid-attachments"]), json_values
    ),
)
def test_host_local_never_fails_unexpectedly(
    tmp_path_factory: pytest.TempPathFactory, ipam: dict[str, Any], version: Any, command: str, args: str, extra: dict
) -> None:
    store = tmp_path_factory.mktemp("fuzz")
    config = {"cniVersion": version, "name": "fuzz", **extra, "ipam": {**ipam, "dataDir": str(store)}}
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/run/netns/none",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
        "CNI_ARGS": args,
    }
    check_outcome(*skel.handle(HOST_LOCAL, env, json.dumps(config).encode()))
    for path in store.rglob("*"):
        assert path.resolve().is_relative_to(store.resolve())


@settings(max_examples=2000, deadline=None)
@given(stdin=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_stdin_gives_a_cni_error_or_a_result(stdin: bytes) -> None:
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0", "CNI_PATH": "/x"}
    check_outcome(*skel.handle(HOST_LOCAL, env, stdin))


@settings(max_examples=2000, deadline=None)
@given(
    env=st.dictionaries(
        st.sampled_from(["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH", "CNI_ARGS"]),
        st.text(max_size=30),
    )
)
def test_any_environment_gives_a_cni_error_or_a_result(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    store = tmp_path_factory.mktemp("fuzzenv")
    config = {
        "cniVersion": "1.1.0",
        "name": "fuzz",
        "ipam": {"type": "host-local", "subnet": "10.9.0.0/24", "dataDir": str(store)},
    }
    code, out, err = skel.handle(HOST_LOCAL, env, json.dumps(config).encode())
    check_outcome(code, out, err)


@settings(max_examples=2000, deadline=None)
@given(
    config=st.fixed_dictionaries(
        {"name": st.just("n")},
        optional={
            "master": st.text(max_size=20) | json_values,
            "mode": st.sampled_from(["bridge", "private", "vepa", "passthru", "x"]) | json_values,
            "mtu": json_values,
            "mac": st.text(alphabet="0123456789abcdefABCDEF:-x", max_size=20) | json_values,
            "linkInContainer": json_values,
            "bcqueuelen": json_values,
            "ipam": json_values,
            "dns": json_values,
            "runtimeConfig": st.fixed_dictionaries({}, optional={"mac": st.text(max_size=20) | json_values})
            | json_values,
        },
    ),
    args=st.dictionaries(
        st.sampled_from(["MAC", "IP"]), st.text(alphabet=st.characters(blacklist_characters=";"), max_size=20)
    ),
)
def test_macvlan_config_is_accepted_or_refused_with_a_config_error(
    config: dict[str, Any], args: dict[str, str]
) -> None:
    raw_args = ";".join(f"{key}={value}" for key, value in args.items())
    try:
        conf = macvlan.load(Request("ADD", config, "1.1.0", args=raw_args))
        spec = conf.parent
    except CNIError as e:
        assert e.code == 7 and e.msg
        return
    assert conf.mode in ("bridge", "private", "vepa", "passthru")
    assert 0 <= conf.mtu <= 65535
    assert len(spec.name) <= 15


def test_the_fuzzers_stay_in_their_stores(tmp_path: Path) -> None:
    assert not Path("/var/lib/cni/networks/fuzz").exists()


# ---- the macvlan ADD itself, exec'd in the lab ----

macvlan_masters = st.sampled_from(["upl0", "upl0.50", "upl0.0", "upl0.4095", "lo", "nope0", "", "a" * 16, "upl0.x"])
macvlan_configs = st.fixed_dictionaries(
    {"cniVersion": st.sampled_from(["0.3.1", "0.4.0", "1.0.0", "1.1.0"]) | versions},
    optional={
        "master": macvlan_masters | json_values,
        "mode": st.sampled_from(["bridge", "private", "vepa", "passthru", "Bridge", "x"]) | json_values,
        "mtu": st.sampled_from([0, 68, 1400, 1500, 9000, -1, 2**31]) | json_values,
        "mac": st.sampled_from(["c2:00:00:00:00:01", "01:00:00:00:00:01", "zz"]) | json_values,
        "linkInContainer": st.booleans() | json_values,
        "ipam": ipam_sections.map(lambda i: {**i, "subnet": "10.77.0.0/24"}) | ipam_sections | json_values,
    },
)


@pytest.mark.netns
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(config=macvlan_configs, args=cni_args)
def test_macvlan_add_in_namespaces_succeeds_cleanly_or_changes_nothing(
    lab: Any, tmp_path: Path, config: dict[str, Any], args: str
) -> None:
    """Fuzzed configs through the real executable in the lab: a result whose link DEL then removes,
    or a CNI error and the node exactly as it was."""
    from tests.support.layouts import dist_executable
    from tests.support.runners import MacvlanRunner

    run = MacvlanRunner(lab, dist_executable("fast/macvlan").parent, "fast")
    store = tmp_path / f"s{abs(hash(json.dumps(config, sort_keys=True, default=str))) % 10**9}"
    conf = {**config, "name": "fuzz", "type": "macvlan", "stateDir": str(store / "state")}
    if isinstance(conf.get("ipam"), dict):
        conf["ipam"] = {**conf["ipam"], "dataDir": str(store / "leases")}
    ns = lab.container("f")
    try:
        node_before = set(lab.links(lab.node))
        out = run("ADD", conf, ns, CNI_ARGS=args)
        check_outcome(out.code, out.stdout, out.stderr)
        if out.code != 0:
            assert set(lab.links(ns)) == {"lo"}, out.stdout
            assert set(lab.links(lab.node)) == node_before, out.stdout
            leases = store / "leases" / "fuzz"
            assert not leases.exists() or not [p for p in leases.iterdir() if p.name[0].isdigit()], out.stdout
            assert (
                not (store / "state" / "parents.json").exists()
                or b"attachments" not in (store / "state" / "parents.json").read_bytes()
            )
        else:
            assert "eth0" in lab.links(ns)
            run("DEL", conf, ns, CNI_ARGS=args).ok()
            assert set(lab.links(ns)) == {"lo"}
            assert set(lab.links(lab.node)) == node_before
    finally:
        lab.remove_netns(ns)
