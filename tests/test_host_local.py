"""host-local operations, in-process and as the built executable: upstream host_local_test.go cases
per CNI version, plus CHECK, GC, STATUS and our keys (ipRange, exclude, inferred gateways)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.support.cni_schema import validate_error, validate_result
from tests.support.configs import ipam_conf
from tests.support.layouts import ALL_VERSIONS
from tests.support.runners import Runner

V4_ONLY_SCHEMAS = ("0.1.0", "0.2.0")


def conf(version: str, data_dir: Path, ipam: dict[str, Any], name: str = "mynet", **top: Any) -> dict[str, Any]:
    """The shape of upstream's host-local tests (a network of an ipvlan on foo0)."""
    return ipam_conf(data_dir, name, None, version, top={"type": "ipvlan", "master": "foo0", **top}, ipam=ipam)


def ips_of(result: dict[str, Any]) -> list[tuple[str, str]]:
    """[(address, gateway)] whatever the result version."""
    if "ip4" in result or "ip6" in result:
        return [(result[k]["ip"], result[k].get("gateway", "")) for k in ("ip4", "ip6") if k in result]
    return [(ip["address"], ip.get("gateway", "")) for ip in result.get("ips", [])]


def lease_files(data_dir: Path, name: str = "mynet") -> dict[str, str]:
    d = data_dir / name
    skip = ("lock", "last_reserved_ip.")
    return {p.name: p.read_bytes().decode() for p in d.iterdir() if not p.name.startswith(skip)} if d.exists() else {}


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_allocates_and_releases_addresses_with_add_del(
    host_local: Runner, data_dir: Path, tmp_path: Path, version: str
) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.3\n")
    config = conf(
        version,
        data_dir,
        {
            "resolvConf": str(resolv),
            "ranges": [
                [{"subnet": "10.1.2.0/24"}, {"subnet": "10.2.2.0/24"}],
                [{"subnet": "2001:db8:1::0/64"}],
            ],
            "routes": [
                {"dst": "0.0.0.0/0"},
                {"dst": "::/0"},
                {"dst": "192.168.0.0/16", "gw": "1.1.1.1"},
                {"dst": "2001:db8:2::0/64", "gw": "2001:db8:3::1"},
            ],
        },
    )
    out = host_local("ADD", config)
    result = out.ok()
    validate_result(result)
    assert result["cniVersion"] == version
    assert ips_of(result) == [("10.1.2.2/24", "10.1.2.1"), ("2001:db8:1::2/64", "2001:db8:1::1")]
    assert result["dns"] == {"nameservers": ["192.0.2.3"]}
    if version in V4_ONLY_SCHEMAS:
        assert result["ip4"]["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "1.1.1.1"}]
    else:
        assert len(result["routes"]) == 4
        assert ('"version":' in out.stdout) is version.startswith("0.")
        assert all("interface" not in ip for ip in result["ips"])  # an IPAM result is abbreviated

    store = data_dir / "mynet"
    assert (store / "10.1.2.2").read_bytes() == b"dummy\r\neth0"
    assert (store / "2001:db8:1::2").read_bytes() == b"dummy\r\neth0"
    assert stat.S_IMODE((store / "10.1.2.2").stat().st_mode) == 0o600
    assert (store / "last_reserved_ip.0").read_text() == "10.1.2.2"
    assert (store / "last_reserved_ip.1").read_text() == "2001:db8:1::2"

    host_local("DEL", config).ok()
    assert lease_files(data_dir) == {}
    assert (store / "last_reserved_ip.0").exists() and (store / "lock").exists()


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_allocates_per_interface_and_refuses_a_repeat(host_local: Runner, data_dir: Path, version: str) -> None:
    config = conf(version, data_dir, {"subnet": "10.1.2.0/24"})
    first = host_local("ADD", config, ifname="eth0").ok()
    second = host_local("ADD", config, ifname="eth1").ok()
    assert ips_of(first)[0][0] == "10.1.2.2/24"
    assert ips_of(second)[0][0] == "10.1.2.3/24"
    again = host_local("ADD", config, ifname="eth0")
    assert again.error["msg"] == (
        "failed to allocate for range 0: 10.1.2.2 has been allocated to dummy, duplicate allocation is not allowed"
    )
    assert lease_files(data_dir) == {"10.1.2.2": "dummy\r\neth0", "10.1.2.3": "dummy\r\neth1"}
    host_local("DEL", config, ifname="eth0").ok()
    assert lease_files(data_dir) == {"10.1.2.3": "dummy\r\neth1"}


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_del_works_on_backwards_compatible_allocations(host_local: Runner, data_dir: Path, version: str) -> None:
    config = conf(version, data_dir, {"subnet": "10.1.2.0/24"})
    host_local("ADD", config).ok()
    (data_dir / "mynet" / "10.1.2.2").write_text("dummy")  # the pre-ifname format: container ID only
    host_local("DEL", config).ok()
    assert lease_files(data_dir) == {}


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_del_of_an_unknown_id_is_not_an_error(host_local: Runner, data_dir: Path, version: str) -> None:
    config = conf(version, data_dir, {"subnet": "10.1.2.0/24"})
    out = host_local("DEL", config, container_id="never-added")
    assert (out.code, out.stdout) == (0, "")
    host_local("ADD", config).ok()
    host_local("DEL", config, container_id="never-added").ok()
    assert list(lease_files(data_dir)) == ["10.1.2.2"]
    host_local("DEL", config).ok()
    host_local("DEL", config).ok()  # twice: still fine


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_ignores_whitespace_in_disk_files(host_local: Runner, data_dir: Path, version: str) -> None:
    config = conf(version, data_dir, {"subnet": "10.1.2.0/24"})
    host_local("ADD", config).ok()
    (data_dir / "mynet" / "10.1.2.2").write_text("  dummy\r\n eth0 \n")
    host_local("DEL", config).ok()
    assert lease_files(data_dir) == {}


def test_no_error_message_on_initial_subnet_creation(host_local: Runner, data_dir: Path) -> None:
    out = host_local("ADD", conf("1.0.0", data_dir, {"subnet": "10.1.2.0/24"}))
    out.ok()
    assert "Error retrieving last reserved ip" not in out.stdout + out.stderr
    assert out.stderr == ""


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_allocates_a_custom_ip_requested_by_config_args(host_local: Runner, data_dir: Path, version: str) -> None:
    config = conf(version, data_dir, {"subnet": "10.1.2.0/24"}, args={"cni": {"ips": ["10.1.2.88"]}})
    assert ips_of(host_local("ADD", config).ok())[0][0] == "10.1.2.88/24"
    assert lease_files(data_dir) == {"10.1.2.88": "dummy\r\neth0"}


def test_an_address_asked_for_as_args_and_runtime_config_is_given(host_local: Runner, data_dir: Path) -> None:
    """What Multus sends for a pod's ``ips`` (args.cni.ips and runtimeConfig.ips, the same address): one lease."""
    config = conf(
        "1.0.0",
        data_dir,
        {"subnet": "10.1.2.0/24"},
        args={"cni": {"ips": ["10.1.2.88/24"]}},
        runtimeConfig={"ips": ["10.1.2.88/24"]},
    )
    assert [a for a, _ in ips_of(host_local("ADD", config).ok())] == ["10.1.2.88/24"]
    assert lease_files(data_dir) == {"10.1.2.88": "dummy\r\neth0"}


@pytest.mark.parametrize("version", [v for v in ALL_VERSIONS if v not in V4_ONLY_SCHEMAS])
def test_allocates_custom_ips_from_multiple_ranges(host_local: Runner, data_dir: Path, version: str) -> None:
    config = conf(
        version,
        data_dir,
        {"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.3.0/24"}]]},
        args={"cni": {"ips": ["10.1.2.88", "10.1.3.77"]}},
    )
    assert [a for a, _ in ips_of(host_local("ADD", config).ok())] == ["10.1.2.88/24", "10.1.3.77/24"]


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_allocates_custom_ips_from_multiple_protocols(host_local: Runner, data_dir: Path, version: str) -> None:
    config = conf(
        version,
        data_dir,
        {"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8:1::/64"}]]},
        args={"cni": {"ips": ["10.1.2.88", "2001:db8:1::999"]}},
    )
    assert [a for a, _ in ips_of(host_local("ADD", config).ok())] == ["10.1.2.88/24", "2001:db8:1::999/64"]


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_fails_if_a_requested_custom_ip_is_not_used(host_local: Runner, data_dir: Path, version: str) -> None:
    config = conf(version, data_dir, {"subnet": "10.1.2.0/24"}, args={"cni": {"ips": ["10.1.2.88", "10.1.2.77"]}})
    err = host_local("ADD", config).error
    validate_error(err)
    assert err["msg"] == "failed to allocate all requested IPs: 10.1.2.77"
    assert lease_files(data_dir) == {}, "a failed ADD keeps no lease"


def test_cni_args_ip_and_unknown_keys(host_local: Runner, data_dir: Path) -> None:
    config = conf("1.0.0", data_dir, {"subnet": "10.77.0.0/24"})
    assert ips_of(host_local("ADD", config, CNI_ARGS="IP=10.77.0.50").ok())[0][0] == "10.77.0.50/24"
    taken = host_local("ADD", config, container_id="other", CNI_ARGS="IP=10.77.0.50")
    assert taken.error["msg"] == (
        "failed to allocate for range 0: requested IP address 10.77.0.50 is not available in range set "
        "10.77.0.1-10.77.0.254"
    )
    outside = host_local("ADD", config, container_id="other", CNI_ARGS="IP=10.99.0.5")
    assert outside.error["msg"] == "failed to allocate all requested IPs: 10.99.0.5"
    unknown = host_local("ADD", config, container_id="other", CNI_ARGS="FOO=bar")
    assert unknown.error["msg"] == 'ARGS: unknown args ["FOO=bar"]'
    ignored = host_local("ADD", config, container_id="other", CNI_ARGS="IgnoreUnknown=1;FOO=bar")
    assert ips_of(ignored.ok())[0][0] == "10.77.0.51/24"
    assert set(lease_files(data_dir)) == {"10.77.0.50", "10.77.0.51"}


def test_exhaustion_names_the_range_set_and_keeps_nothing(host_local: Runner, data_dir: Path) -> None:
    config = conf("1.0.0", data_dir, {"subnet": "10.78.0.0/30"})
    assert ips_of(host_local("ADD", config, container_id="x1").ok())[0][0] == "10.78.0.2/30"
    err = host_local("ADD", config, container_id="x2").error
    assert err["msg"] == "failed to allocate for range 0: no IP addresses available in range set: 10.78.0.1-10.78.0.2"
    assert lease_files(data_dir) == {"10.78.0.2": "x1\r\neth0"}


def test_a_failure_in_a_later_range_set_releases_the_earlier_addresses(host_local: Runner, data_dir: Path) -> None:
    config = conf("1.0.0", data_dir, {"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/30"}]]})
    host_local("ADD", config, container_id="a").ok()
    err = host_local("ADD", config, container_id="b").error
    assert err["msg"].startswith("failed to allocate for range 1: no IP addresses available")
    assert set(lease_files(data_dir)) == {"10.1.0.2", "10.2.0.2"}


# ---- our keys ----


def test_excluded_addresses_are_never_handed_out(host_local: Runner, data_dir: Path) -> None:
    config = conf("1.0.0", data_dir, {"subnet": "172.16.86.248/29", "exclude": ["172.16.86.250"]})
    got = [ips_of(host_local("ADD", config, container_id=f"c{i}").ok())[0][0] for i in range(4)]
    assert got == ["172.16.86.251/29", "172.16.86.252/29", "172.16.86.253/29", "172.16.86.254/29"]
    assert host_local("ADD", config, container_id="c9").code == 1
    requested = host_local("ADD", config, container_id="c9", CNI_ARGS="IP=172.16.86.250")
    assert "excluded" in requested.error["msg"]


def test_ip_range_starts_at_its_first_address(host_local: Runner, data_dir: Path) -> None:
    config = conf(
        "1.0.0",
        data_dir,
        {"ranges": [[{"subnet": "192.168.32.0/24", "ipRange": "192.168.32.128/25", "gateway": "192.168.32.254"}]]},
    )
    assert ips_of(host_local("ADD", config).ok()) == [("192.168.32.128/24", "192.168.32.254")]


def test_the_seed_mcv0_network(host_local: Runner, data_dir: Path) -> None:
    """Docker's mcv0: two v4 subnets with ip-ranges, a v6 subnet, aux addresses, no gateways given."""
    config = conf(
        "1.0.0",
        data_dir,
        {
            "ranges": [
                [
                    {"subnet": "192.168.136.0/24", "ipRange": "192.168.136.0/25"},
                    {"subnet": "192.168.138.0/24", "ipRange": "192.168.138.0/25"},
                ],
                [{"subnet": "fd11::/64"}],
            ],
            "exclude": ["fd11::2", "192.168.136.2", "192.168.138.2"],
        },
        name="mcv0",
    )
    result = host_local("ADD", config).ok()
    assert ips_of(result) == [("192.168.136.3/24", "192.168.136.1"), ("fd11::3/64", "fd11::1")]


def test_host_bits_set_is_refused_naming_the_network(host_local: Runner, data_dir: Path) -> None:
    err = host_local("ADD", conf("1.0.0", data_dir, {"subnet": "10.1.100.0/16"})).error
    assert err["code"] == 7
    assert "10.1.0.0/16" in err["msg"]
    assert not (data_dir / "mynet").exists(), "bad input changes nothing"


# ---- CHECK, GC, STATUS ----


def test_check_passes_after_add_and_fails_after_del(host_local: Runner, data_dir: Path) -> None:
    config = conf("1.0.0", data_dir, {"subnet": "10.1.2.0/24"})
    result = host_local("ADD", config, container_id="hl1").ok()
    out = host_local("CHECK", {**config, "prevResult": result}, container_id="hl1")
    assert (out.code, out.stdout) == (0, "")
    host_local("DEL", config, container_id="hl1").ok()
    err = host_local("CHECK", {**config, "prevResult": result}, container_id="hl1").error
    assert err["msg"] == "host-local: Failed to find address added by container hl1"


def test_check_fails_when_prev_result_names_an_address_we_did_not_lease(host_local: Runner, data_dir: Path) -> None:
    config = conf("1.0.0", data_dir, {"subnet": "10.1.2.0/24"})
    result = host_local("ADD", config).ok()
    result["ips"][0]["address"] = "10.1.2.99/24"
    err = host_local("CHECK", {**config, "prevResult": result}).error
    assert "10.1.2.99 in prevResult is not leased" in err["msg"]


def test_check_is_refused_before_0_4_0(host_local: Runner, data_dir: Path) -> None:
    err = host_local("CHECK", conf("0.3.1", data_dir, {"subnet": "10.1.2.0/24"})).error
    assert (err["code"], err["msg"]) == (1, "config version does not allow CHECK")


def test_gc_releases_what_is_not_valid_and_keeps_the_bookkeeping(host_local: Runner, data_dir: Path) -> None:
    config = conf("1.1.0", data_dir, {"subnet": "10.1.2.0/24"})
    for cid, ifname in [("a", "eth0"), ("a", "net1"), ("b", "eth0"), ("c", "eth0")]:
        host_local("ADD", config, container_id=cid, ifname=ifname).ok()
    (data_dir / "mynet" / "10.1.2.5").write_text("c")  # legacy file of a valid container
    (data_dir / "mynet" / "10.1.2.6").write_text("zz")  # legacy file of a gone one
    valid = [{"containerID": "a", "ifname": "net1"}, {"containerID": "c", "ifname": "eth0"}]
    out = host_local("GC", {**config, "cni.dev/valid-attachments": valid})
    assert (out.code, out.stdout) == (0, "")
    assert lease_files(data_dir) == {"10.1.2.3": "a\r\nnet1", "10.1.2.5": "c"}
    assert {p.name for p in (data_dir / "mynet").iterdir()} >= {"lock", "last_reserved_ip.0"}


def test_gc_falls_back_to_the_old_key_and_an_empty_list_is_meaningful(host_local: Runner, data_dir: Path) -> None:
    config = conf("1.1.0", data_dir, {"subnet": "10.1.2.0/24"})
    host_local("ADD", config, container_id="a").ok()
    host_local("GC", {**config, "cni.dev/attachments": [{"containerID": "a", "ifname": "eth0"}]}).ok()
    assert list(lease_files(data_dir)) == ["10.1.2.2"]
    host_local("GC", {**config, "cni.dev/valid-attachments": []}).ok()
    assert lease_files(data_dir) == {}


def test_gc_without_any_attachment_list_is_refused(host_local: Runner, data_dir: Path) -> None:
    config = conf("1.1.0", data_dir, {"subnet": "10.1.2.0/24"})
    host_local("ADD", config).ok()
    assert host_local("GC", config).error["code"] == 7
    assert list(lease_files(data_dir)) == ["10.1.2.2"]


def test_status_succeeds_on_a_writable_store(host_local: Runner, data_dir: Path) -> None:
    out = host_local("STATUS", conf("1.1.0", data_dir, {"subnet": "10.1.2.0/24"}))
    assert (out.code, out.stdout) == (0, "")


def test_status_is_code_50_when_the_store_cannot_be_written(host_local: Runner, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    err = host_local("STATUS", conf("1.1.0", blocker, {"subnet": "10.1.2.0/24"})).error
    assert err["code"] == 50
    assert "not writable" in err["msg"]


def test_add_on_an_unwritable_store_is_an_io_error(host_local: Runner, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    err = host_local("ADD", conf("1.0.0", blocker, {"subnet": "10.1.2.0/24"})).error
    assert err["code"] == 5


def test_no_traceback_ever_reaches_stdout(host_local: Runner, data_dir: Path) -> None:
    out = host_local("ADD", {"cniVersion": "1.0.0", "name": "x", "ipam": {"ranges": [[{"subnet": 7}]]}})
    assert out.error["code"] == 7
    assert "Traceback" not in out.stdout + out.stderr
    assert os.listdir(data_dir) == []
