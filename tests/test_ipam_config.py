"""IPAM config parsing: upstream config_test.go cases plus ipRange, exclude and inferred gateways."""

from __future__ import annotations

from typing import Any

import pytest

from cni.errors import INVALID_CONFIG, CNIError
from cni.ip import format_ip, parse_ip
from ipam.config import load


def net(ipam: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "mynet",
        "type": "macvlan",
        "ipam": {"type": "host-local", **ipam},
        **top,
    }


def ranges_of(conf: Any) -> list[list[str]]:
    return [[f"{r.subnet} {r} gw {format_ip(r.family, r.gateway)}" for r in rs.ranges] for rs in conf.range_sets]


def test_old_style_config() -> None:
    conf = load(
        net(
            {
                "subnet": "10.1.2.0/24",
                "rangeStart": "10.1.2.9",
                "rangeEnd": "10.1.2.20",
                "gateway": "10.1.2.30",
            }
        ),
        {},
        "0.3.1",
    )
    assert conf.name == "mynet"
    assert ranges_of(conf) == [["10.1.2.0/24 10.1.2.9-10.1.2.20 gw 10.1.2.30"]]
    assert conf.data_dir == "/var/lib/cni/networks"


def test_new_style_config() -> None:
    conf = load(
        net(
            {
                "ranges": [
                    [
                        {
                            "subnet": "10.1.2.0/24",
                            "rangeStart": "10.1.2.9",
                            "rangeEnd": "10.1.2.20",
                            "gateway": "10.1.2.30",
                        }
                    ],
                    [{"subnet": "11.1.2.0/24"}],
                    [{"subnet": "2001:db8:1::/64"}],
                ]
            }
        ),
        {},
        "0.3.1",
    )
    assert ranges_of(conf) == [
        ["10.1.2.0/24 10.1.2.9-10.1.2.20 gw 10.1.2.30"],
        ["11.1.2.0/24 11.1.2.1-11.1.2.254 gw 11.1.2.1"],
        ["2001:db8:1::/64 2001:db8:1::1-2001:db8:1:0:ffff:ffff:ffff:ffff gw 2001:db8:1::1"],
    ]


def test_mixed_config_with_runtime_args_prepends_runtime_ranges_then_legacy() -> None:
    conf = load(
        net(
            {"subnet": "10.1.2.0/24", "ranges": [[{"subnet": "2001:db8:1::/64"}]]},
            runtimeConfig={"ipRanges": [[{"subnet": "12.1.3.0/24"}]]},
        ),
        {},
        "0.3.1",
    )
    assert [rs.ranges[0].subnet for rs in conf.range_sets] == [
        "12.1.3.0/24",
        "10.1.2.0/24",
        "2001:db8:1::/64",
    ]
    assert conf.sources == ["runtimeConfig.ipRanges[0]", "ipam (subnet)", "ipam.ranges[0]"]


@pytest.mark.parametrize("ip_arg", ["10.1.2.10", "10.1.2.11/24"])
def test_cni_args_ip_with_and_without_prefix(ip_arg: str) -> None:
    conf = load(net({"subnet": "10.1.2.0/24"}), {"IP": ip_arg}, "0.3.1")
    assert conf.requested == [parse_ip(ip_arg.split("/")[0])]


@pytest.mark.parametrize("ip_arg", ["10.1.2.10", "10.1.2.11/24", "2001:db8:1::88"])
def test_config_args_with_and_without_prefix(ip_arg: str) -> None:
    conf = load(net({"subnet": "10.1.2.0/24"}, args={"cni": {"ips": [ip_arg]}}), {}, "0.3.1")
    assert conf.requested == [parse_ip(ip_arg.split("/")[0])]


def test_custom_ips_from_runtime_configuration_and_all_sources_are_unioned() -> None:
    conf = load(
        net(
            {"subnet": "10.1.2.0/24"},
            args={"cni": {"ips": ["10.1.2.20"]}},
            runtimeConfig={"ips": ["10.1.2.30/24"]},
        ),
        {"IP": "10.1.2.10"},
        "0.3.1",
    )
    assert conf.requested == [parse_ip("10.1.2.10"), parse_ip("10.1.2.20"), parse_ip("10.1.2.30")]


def test_runtime_config_key_is_matched_case_insensitively_like_go() -> None:
    conf = load(net({"subnet": "10.1.2.0/24"}, RuntimeConfig={"ips": ["10.1.2.30"]}), {}, "1.0.0")
    assert conf.requested == [parse_ip("10.1.2.30")]


def expect_invalid(
    config: dict[str, Any], message: str, version: str = "0.3.1", args: dict[str, str] | None = None
) -> CNIError:
    with pytest.raises(CNIError) as e:
        load(config, args or {}, version)
    assert e.value.code == INVALID_CONFIG
    assert message in e.value.msg, e.value.msg
    return e.value


def test_overlap_between_range_sets_is_refused() -> None:
    err = expect_invalid(
        net(
            {
                "ranges": [
                    [{"subnet": "10.1.2.0/24"}],
                    [{"subnet": "10.1.4.0/24"}],
                    [{"subnet": "10.1.2.0/26"}],
                ]
            }
        ),
        "range set 0 overlaps with 2",
    )
    assert "ipam.ranges[0]" in err.details and "ipam.ranges[2]" in err.details


def test_overlap_within_a_range_set_is_refused() -> None:
    expect_invalid(
        net({"ranges": [[{"subnet": "10.1.2.0/24"}, {"subnet": "10.1.2.0/26"}]]}),
        "subnets 10.1.2.1-10.1.2.254 and 10.1.2.1-10.1.2.62 overlap",
    )


def test_range_sets_with_different_families_are_refused() -> None:
    expect_invalid(
        net({"ranges": [[{"subnet": "10.1.2.0/24"}, {"subnet": "2001:db8:5::/64"}]]}),
        "mixed address families",
    )


def test_too_many_ranges_for_0_2_0_are_refused() -> None:
    expect_invalid(
        net({"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "11.1.2.0/24"}]]}),
        "CNI version 0.2.0 does not support more than 1 address per family",
        version="0.2.0",
    )


def test_one_v4_and_one_v6_range_are_allowed_for_0_2_0() -> None:
    conf = load(net({"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8:1::/64"}]]}), {}, "0.2.0")
    assert len(conf.range_sets) == 2


@pytest.mark.parametrize(
    "ipam,message",
    [
        ({}, "no IP ranges specified"),
        ({"subnet": "10.1.100.0/16"}, "the network address is 10.1.0.0"),
        ({"subnet": "10.77.0.0/33"}, "invalid CIDR address: 10.77.0.0/33"),
        ({"subnet": "not-a-subnet"}, "invalid CIDR address: not-a-subnet"),
        ({"ranges": "10.0.0.0/24"}, "ipam.ranges must be a list"),
        ({"ranges": [[{"subnet": "10.0.0.0/24"}]], "exclude": "10.0.0.5"}, "exclude must be a list"),
        ({"ranges": [[{"subnet": "10.0.0.0/24"}]], "exclude": ["10.0.0.300"]}, "exclude entry '10.0.0.300'"),
        (
            {"ranges": [[{"subnet": "10.0.0.0/24"}]], "routes": [{"gw": "10.0.0.1"}]},
            'ipam.routes[0] must be an object with a "dst"',
        ),
        (
            {"ranges": [[{"subnet": "10.0.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0", "gw": "fd00::1"}]},
            "not of the family",
        ),
        ({"ranges": [[{"subnet": "10.0.0.0/24"}]], "dataDir": 5}, "ipam.dataDir must be a directory path"),
    ],
)
def test_invalid_configs_name_the_key(ipam: dict[str, Any], message: str) -> None:
    expect_invalid(net(ipam), message)


def test_missing_ipam_key() -> None:
    expect_invalid({"cniVersion": "1.0.0", "name": "x"}, "IPAM config missing 'ipam' key")


def test_bad_requested_ip_names_its_source() -> None:
    expect_invalid(net({"subnet": "10.1.2.0/24"}, args={"cni": {"ips": ["10.1.2"]}}), "args.cni.ips")
    expect_invalid(net({"subnet": "10.1.2.0/24"}), "CNI_ARGS IP", args={"IP": "x"})


def test_the_gateway_is_inferred_for_both_families() -> None:
    conf = load(
        net(
            {
                "ranges": [
                    [{"subnet": "192.168.136.0/24", "ipRange": "192.168.136.0/25"}],
                    [{"subnet": "fd11::/64"}],
                ]
            }
        ),
        {},
        "1.0.0",
    )
    assert [format_ip(rs.family, rs.ranges[0].gateway) for rs in conf.range_sets] == [
        "192.168.136.1",
        "fd11::1",
    ]


def test_exclude_accepts_addresses_and_cidrs() -> None:
    conf = load(net({"subnet": "10.0.0.0/24", "exclude": ["10.0.0.250", "10.0.0.16/30", "fd11::2"]}), {}, "1.0.0")
    assert parse_ip("10.0.0.250") in conf.exclude
    assert parse_ip("10.0.0.18") in conf.exclude
    assert parse_ip("fd11::2") in conf.exclude
    assert parse_ip("10.0.0.20") not in conf.exclude


def test_an_address_asked_for_twice_counts_once_like_go() -> None:
    """Multus passes a pod's ``ips`` as both args.cni.ips and runtimeConfig.ips; upstream keeps requests in a
    map by address, so the same address from several sources is one request (a second would find no range
    set left and fail the ADD)."""
    conf = load(
        net(
            {"subnet": "10.1.2.0/24"},
            args={"cni": {"ips": ["10.1.2.30/24"]}},
            runtimeConfig={"ips": ["10.1.2.30/24"]},
        ),
        {"IP": "10.1.2.30"},
        "1.0.0",
    )
    assert conf.requested == [parse_ip("10.1.2.30")]
