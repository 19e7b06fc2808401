"""Ranges and range sets: upstream range_test.go / range_set_test.go cases, plus ipRange and exclude."""

from __future__ import annotations

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cni.ip import format_ip, parse_ip
from ipam.ranges import Exclusions, RangeError, RangeSet, parse_range, parse_range_set, round_robin


def ip(text: str) -> int:
    return parse_ip(text)[1]


def test_sane_defaults_for_ipv4_with_a_clean_prefix() -> None:
    r = parse_range({"subnet": "192.0.2.0/24"})
    assert r.subnet == "192.0.2.0/24"
    assert str(r) == "192.0.2.1-192.0.2.254"
    assert format_ip(4, r.gateway) == "192.0.2.1"


def test_sane_defaults_for_a_smaller_ipv4_subnet() -> None:
    r = parse_range({"subnet": "192.0.2.0/25"})
    assert str(r) == "192.0.2.1-192.0.2.126"
    assert format_ip(4, r.gateway) == "192.0.2.1"


def test_sane_defaults_for_ipv6_with_a_clean_prefix() -> None:
    r = parse_range({"subnet": "2001:DB8:1::/64"})
    assert r.subnet == "2001:db8:1::/64"
    assert str(r) == "2001:db8:1::1-2001:db8:1:0:ffff:ffff:ffff:ffff"
    assert format_ip(6, r.gateway) == "2001:db8:1::1"


@pytest.mark.parametrize(
    "subnet,network",
    [
        ("192.0.2.12/24", "192.0.2.0"),
        ("2001:db8:1::12/64", "2001:db8:1::"),
        ("10.1.100.0/16", "10.1.0.0"),
    ],
)
def test_host_bits_set_is_refused_naming_the_network(subnet: str, network: str) -> None:
    with pytest.raises(RangeError, match="Network has host bits set") as e:
        parse_range({"subnet": subnet})
    assert f"the network address is {network}" in str(e.value)


@pytest.mark.parametrize("subnet", ["192.0.2.0/31", "192.0.2.0/32", "2001:db8::/127", "2001:db8::/128"])
def test_a_network_that_is_too_small_is_refused(subnet: str) -> None:
    with pytest.raises(RangeError, match="too small to allocate from"):
        parse_range({"subnet": subnet})


@pytest.mark.parametrize(
    "obj,message",
    [
        (
            {"subnet": "192.0.2.0/24", "rangeStart": "192.0.3.0"},
            "RangeStart 192.0.3.0 not in network 192.0.2.0/24",
        ),
        (
            {"subnet": "192.0.2.0/24", "rangeEnd": "192.0.4.0"},
            "RangeEnd 192.0.4.0 not in network 192.0.2.0/24",
        ),
        (
            {"subnet": "192.0.2.0/24", "rangeStart": "192.0.2.50", "rangeEnd": "192.0.2.40"},
            "is after rangeEnd",
        ),
        ({"subnet": "192.0.2.0/24", "gateway": "192.0.3.1"}, "gateway 192.0.3.1 not in network"),
        ({"subnet": "192.0.2.0/24", "rangeStart": "2001::1"}, "not in network"),
        ({}, "range has no subnet"),
    ],
)
def test_invalid_start_end_and_gateway_are_refused(obj: dict[str, str], message: str) -> None:
    with pytest.raises(RangeError, match=message):
        parse_range(obj)


def test_all_fields_are_parsed() -> None:
    r = parse_range(
        {
            "subnet": "192.0.2.0/24",
            "rangeStart": "192.0.2.40",
            "rangeEnd": "192.0.2.50",
            "gateway": "192.0.2.254",
        }
    )
    assert str(r) == "192.0.2.40-192.0.2.50"
    assert format_ip(4, r.gateway) == "192.0.2.254"


def test_v4_ips_in_range_are_accepted_and_out_of_range_refused() -> None:
    r = parse_range({"subnet": "192.0.2.0/24", "rangeStart": "192.0.2.40", "rangeEnd": "192.0.2.50"})
    assert not r.contains(4, ip("192.0.3.0"))
    assert not r.contains(4, ip("192.0.2.39"))
    assert r.contains(4, ip("192.0.2.40"))
    assert r.contains(4, ip("192.0.2.50"))
    assert not r.contains(4, ip("192.0.2.51"))
    assert not r.contains(6, ip("192.0.2.45"))


def test_v6_ips_in_range_are_accepted_and_out_of_range_refused() -> None:
    r = parse_range({"subnet": "2001:db8:1::/64"})
    assert not r.contains(6, ip("2001:db8:2::1"))
    assert not r.contains(6, ip("2001:db8:1::"))
    assert r.contains(6, ip("2001:db8:1::1"))
    assert r.contains(6, ip("2001:db8:1::ffff:ffff:ffff:ffff"))


@pytest.mark.parametrize(
    "a,b,overlap",
    [
        ({"subnet": "10.0.0.0/24"}, {"subnet": "10.0.1.0/24"}, False),  # non-overlapping
        ({"subnet": "10.0.0.0/24"}, {"subnet": "2001:db8::/64"}, False),  # different families
        ({"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/24"}, True),  # identical
        ({"subnet": "10.0.0.0/20"}, {"subnet": "10.0.1.0/24"}, True),  # containing
        (  # same subnet, non overlapping start + end
            {"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.127"},
            {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.128"},
            False,
        ),
        (  # same subnet, overlapping start + end
            {"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.127"},
            {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.127"},
            True,
        ),
    ],
)
def test_detecting_overlap(a: dict[str, str], b: dict[str, str], overlap: bool) -> None:
    ra, rb = parse_range(a), parse_range(b)
    assert ra.overlaps(rb) is overlap
    assert rb.overlaps(ra) is overlap


def test_set_membership() -> None:
    rs = parse_range_set([{"subnet": "192.168.0.0/24"}, {"subnet": "172.16.1.0/24"}])
    assert rs.contains(4, ip("192.168.0.55"))
    assert not rs.contains(4, ip("192.168.1.55"))
    assert rs.contains(4, ip("172.16.1.55"))
    assert not rs.contains(6, ip("2001:db8::1"))


def test_overlaps_within_a_set_are_refused() -> None:
    with pytest.raises(RangeError, match="subnets 192.168.0.1-192.168.0.254 and 192.168.0.1-192.168.0.126 overlap"):
        parse_range_set([{"subnet": "192.168.0.0/24"}, {"subnet": "192.168.0.0/25"}])


def test_overlaps_between_sets_are_found() -> None:
    a = parse_range_set([{"subnet": "192.168.0.0/20"}])
    b = parse_range_set([{"subnet": "192.168.1.0/24"}])
    c = parse_range_set([{"subnet": "192.168.100.0/24"}])
    assert a.overlaps(b) and b.overlaps(a)
    assert not a.overlaps(c)


def test_mixed_families_in_a_set_are_refused() -> None:
    with pytest.raises(RangeError, match="mixed address families"):
        parse_range_set([{"subnet": "192.168.0.0/24"}, {"subnet": "2001:db8::/64"}])


# ---- ipRange (Docker's --ip-range) ----


def test_ip_range_starts_allocation_at_its_first_address() -> None:
    r = parse_range({"subnet": "192.168.32.0/24", "ipRange": "192.168.32.128/25", "gateway": "192.168.32.254"})
    assert str(r) == "192.168.32.128-192.168.32.254"


def test_ip_range_at_the_start_of_the_subnet_skips_the_network_address() -> None:
    r = parse_range({"subnet": "192.168.136.0/24", "ipRange": "192.168.136.0/25"})
    assert str(r) == "192.168.136.1-192.168.136.127"


@pytest.mark.parametrize(
    "obj,message",
    [
        ({"subnet": "10.0.0.0/24", "ipRange": "10.0.1.0/25"}, "not in network"),
        ({"subnet": "10.0.0.0/24", "ipRange": "10.0.0.0/16"}, "not in network"),
        ({"subnet": "10.0.0.0/24", "ipRange": "10.0.0.5/25"}, "host bits set"),
        ({"subnet": "10.0.0.0/24", "ipRange": "10.0.0.0/25", "rangeStart": "10.0.0.3"}, "not both"),
        ({"subnet": "10.0.0.0/24", "ipRange": "10.0.0.255/32"}, "no usable address"),
    ],
)
def test_bad_ip_ranges_are_refused(obj: dict[str, str], message: str) -> None:
    with pytest.raises(RangeError, match=message):
        parse_range(obj)


# ---- round-robin order (allocator_test.go RangeIter cases) ----


def order(rs: RangeSet, last: str | None = None, exclude: Exclusions | None = None) -> list[str]:
    start = parse_ip(last) if last else None
    return [format_ip(r.family, v) for r, v in round_robin(rs, start, exclude or Exclusions())]


SMALL = [{"subnet": "192.168.1.0/29"}]


def test_loops_correctly_from_the_beginning() -> None:
    assert order(parse_range_set(SMALL)) == [f"192.168.1.{i}" for i in (2, 3, 4, 5, 6)]


def test_loops_correctly_from_the_end() -> None:
    assert order(parse_range_set(SMALL), "192.168.1.6") == [f"192.168.1.{i}" for i in (2, 3, 4, 5, 6)]


def test_loops_correctly_from_the_middle() -> None:
    assert order(parse_range_set(SMALL), "192.168.1.3") == [f"192.168.1.{i}" for i in (4, 5, 6, 2, 3)]


def test_wraps_from_one_range_to_the_next() -> None:
    rs = parse_range_set([{"subnet": "10.0.0.0/30"}, {"subnet": "10.0.1.0/30"}, {"subnet": "10.0.2.0/30"}])
    assert order(rs) == ["10.0.0.2", "10.0.1.2", "10.0.2.2"]
    assert order(rs, "10.0.0.2") == ["10.0.1.2", "10.0.2.2", "10.0.0.2"]
    assert order(rs, "10.0.2.2") == ["10.0.0.2", "10.0.1.2", "10.0.2.2"]


def test_a_last_address_outside_the_set_starts_at_the_beginning() -> None:
    assert order(parse_range_set(SMALL), "10.0.0.128")[0] == "192.168.1.2"


def test_excluded_addresses_and_cidrs_are_skipped() -> None:
    ex = Exclusions.parse(["192.168.1.3", "192.168.1.4/31"])
    assert order(parse_range_set(SMALL), exclude=ex) == ["192.168.1.2", "192.168.1.6"]


def test_a_huge_excluded_block_is_jumped_not_walked() -> None:
    rs = parse_range_set([{"subnet": "2001:db8::/64"}])
    ex = Exclusions.parse(["2001:db8::/65"])
    it = iter(round_robin(rs, None, ex))
    assert format_ip(6, next(it)[1]) == "2001:db8:0:0:8000::"


@pytest.mark.parametrize("bad", ["nope", "10.0.0.0/33", 5])
def test_bad_exclude_entries_are_refused(bad: object) -> None:
    with pytest.raises(RangeError, match="exclude entry"):
        Exclusions.parse([bad])


# ---- properties ----

subnets = st.tuples(st.integers(0, 2**32 - 1), st.integers(22, 30)).map(
    lambda t: str(netaddr.IPNetwork(f"{format_ip(4, t[0])}/{t[1]}").cidr)
)


@given(subnets, st.lists(st.integers(0, 1023), max_size=8), st.one_of(st.none(), st.integers(0, 1023)))
def test_round_robin_visits_each_allocatable_address_once(subnet: str, excl: list[int], last: int | None) -> None:
    net = netaddr.IPNetwork(subnet)
    rs = parse_range_set([{"subnet": subnet}])
    excluded = [str(net[i % net.size]) for i in excl]
    got = order(rs, str(net[last % net.size]) if last is not None else None, Exclusions.parse(excluded))
    assert len(got) == len(set(got))
    expected = {str(a) for a in net.iter_hosts()} - {str(net[1])} - set(excluded)  # gateway is .1
    assert set(got) == expected
    assert str(net.network) not in got and str(net.broadcast) not in got
