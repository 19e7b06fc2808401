"""Result rendering per CNI version, checked against the spec's schemas (tests/support/cni_schema.py)."""

from __future__ import annotations

import pytest

from cni.errors import CNIError
from cni.result import Interface, IPConfig, Result, Route, parse, render
from tests.support.cni_schema import validate_result
from tests.support.layouts import ALL_VERSIONS


def full() -> Result:
    return Result(
        interfaces=[Interface("eth0", "c2:11:22:33:44:55", "/var/run/netns/x")],
        ips=[
            IPConfig.text("10.1.2.2/24", "10.1.2.1", 0),
            IPConfig.text("10.1.3.2/24", "10.1.3.1", 0),
            IPConfig.text("2001:db8:1::2/64", "2001:db8:1::1", 0),
        ],
        routes=[
            Route.text("0.0.0.0/0"),
            Route.text("::/0", "2001:db8:1::1"),
            Route.text("192.168.0.0/16", "10.1.2.254"),
        ],
        dns={"nameservers": ["192.0.2.3"], "search": [], "domain": ""},
    )


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_every_version_renders_its_own_schema(version: str) -> None:
    out = render(full(), version)
    validate_result(out)
    assert out["cniVersion"] == version
    assert out["dns"] == {"nameservers": ["192.0.2.3"]}


def test_0_2_0_keeps_the_first_address_of_each_family_and_splits_routes() -> None:
    out = render(full(), "0.2.0")
    assert out["ip4"] == {
        "ip": "10.1.2.2/24",
        "gateway": "10.1.2.1",
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.1.2.254"}],
    }
    assert out["ip6"] == {
        "ip": "2001:db8:1::2/64",
        "gateway": "2001:db8:1::1",
        "routes": [{"dst": "::/0", "gw": "2001:db8:1::1"}],
    }
    assert "interfaces" not in out


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0"])
def test_0_3_and_0_4_carry_the_ip_version(version: str) -> None:
    out = render(full(), version)
    assert [ip["version"] for ip in out["ips"]] == ["4", "4", "6"]
    assert list(out) == ["cniVersion", "interfaces", "ips", "routes", "dns"]


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_1_x_has_no_ip_version(version: str) -> None:
    out = render(full(), version)
    assert all("version" not in ip for ip in out["ips"])
    assert out["interfaces"] == [{"name": "eth0", "mac": "c2:11:22:33:44:55", "sandbox": "/var/run/netns/x"}]


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_1_x_prints_every_object_s_keys_in_byte_order_as_libcni_1_2_does(version: str) -> None:
    """libcni 1.2+ (upstream's plugins since v1.6.0) prints a 1.x result through a map: keys sorted at every
    level, an empty dns left out (tests/test_upstream.py compares the bytes with upstream's)."""
    out = render(full(), version)
    assert list(out) == ["cniVersion", "dns", "interfaces", "ips", "routes"]
    assert list(out["interfaces"][0]) == ["mac", "name", "sandbox"]
    assert list(out["ips"][0]) == ["address", "gateway", "interface"]
    empty = render(Result(ips=[IPConfig.text("10.0.0.2/24")]), version)
    assert empty == {"cniVersion": version, "ips": [{"address": "10.0.0.2/24"}]}


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_an_l2_result_cannot_be_rendered_as_0_1_or_0_2(version: str) -> None:
    with pytest.raises(CNIError, match="cannot convert: no valid IP addresses"):
        render(Result(interfaces=[Interface("eth0")]), version)


def test_routes_keep_the_1_1_fields_only_in_1_x() -> None:
    r = Result(
        ips=[IPConfig.text("10.0.0.2/24")], routes=[Route.text("0.0.0.0/0", "10.0.0.1", {"priority": 100, "mtu": 1400})]
    )
    assert render(r, "1.1.0")["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.0.0.1", "mtu": 1400, "priority": 100}]
    assert render(r, "0.4.0")["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_parse_reads_back_what_render_wrote(version: str) -> None:
    out = render(full(), version)
    back = render(parse(out), version)
    assert back == out


@pytest.mark.parametrize(
    "data,message",
    [
        ([], "must be a JSON object"),
        ({"cniVersion": "1.0.0", "ips": [{"gateway": "1.2.3.4"}]}, "ips[0].address"),
        (
            {"cniVersion": "1.0.0", "ips": [{"address": "1.2.3.4/24", "interface": -1}]},
            "interface must be a non-negative",
        ),
        ({"cniVersion": "1.0.0", "routes": [{}]}, "routes[0].dst"),
        ({"cniVersion": "7.0.0"}, "incompatible CNI versions"),
    ],
)
def test_parse_refuses_malformed_results(data: object, message: str) -> None:
    with pytest.raises(CNIError) as e:
        parse(data)
    assert message in e.value.msg + e.value.details
