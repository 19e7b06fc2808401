"""Address parsing and formatting, checked against netaddr as an independent oracle."""

from __future__ import annotations

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cni.ip import (
    AddressError,
    format_ip,
    last_address,
    network,
    parse_cidr,
    parse_ip,
    parse_ip_or_cidr,
)


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_ipv4_round_trip_matches_netaddr(value: int) -> None:
    text = format_ip(4, value)
    assert text == str(netaddr.IPAddress(value, 4))
    assert parse_ip(text) == (4, value)


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_ipv6_round_trip(value: int) -> None:
    text = format_ip(6, value)
    assert parse_ip(text) == (6, value)
    if value >> 32 != 0xFFFF and value >> 32 != 0:  # netaddr prints mapped/compatible forms dotted
        assert text == str(netaddr.IPAddress(value, 6))


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"),
        ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),  # the longer run wins
        ("1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"),  # a single zero group is not compressed
        ("FD11::3", "fd11::3"),
        ("::", "::"),
    ],
)
def test_ipv6_formatting_follows_rfc5952(text: str, expected: str) -> None:
    assert format_ip(*parse_ip(text)) == expected


@pytest.mark.parametrize(
    "bad", ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "fe80::1%eth0", "abc", "1.2.3.4 ", "::g"]
)
def test_invalid_addresses_are_refused(bad: str) -> None:
    with pytest.raises(AddressError):
        parse_ip(bad)


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "not-a-subnet", "10.0.0.0/", "10.0.0.0/08", "::/129", "10.0.0.0"])
def test_invalid_cidrs_are_refused_with_the_upstream_message(bad: str) -> None:
    with pytest.raises(AddressError, match="invalid CIDR address"):
        parse_cidr(bad)


def test_cidr_keeps_host_bits_and_prefix_math() -> None:
    family, value, prefix = parse_cidr("10.1.100.5/16")
    assert (family, prefix) == (4, 16)
    assert format_ip(4, network(family, value, prefix)) == "10.1.0.0"
    assert format_ip(4, last_address(family, value, prefix)) == "10.1.255.255"
    assert parse_ip_or_cidr("10.1.2.11/24") == (4, parse_ip("10.1.2.11")[1], 24)
    assert parse_ip_or_cidr("10.1.2.11") == (4, parse_ip("10.1.2.11")[1], None)


@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=0, max_value=32))
def test_prefix_math_matches_netaddr(value: int, prefix: int) -> None:
    net = netaddr.IPNetwork(f"{format_ip(4, value)}/{prefix}")
    assert network(4, value, prefix) == net.network.value
    assert last_address(4, value, prefix) == net.broadcast.value if prefix < 31 else True
