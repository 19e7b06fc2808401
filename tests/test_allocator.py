"""The allocator over an in-memory store: upstream allocator_test.go cases and properties."""

from __future__ import annotations

import netaddr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cni.ip import parse_ip
from ipam.allocator import AllocationError, allocate
from ipam.ranges import Exclusions, RangeSet, parse_range_set
from tests.support.memstore import MemStore

NONE = Exclusions()


def store_with(ipmap: dict[str, str], last: str = "") -> MemStore:
    store = MemStore()
    for text, cid in ipmap.items():
        store.files[parse_ip(text)] = (cid, "eth0")
    if last:
        store.last["0"] = parse_ip(last)
    return store


@pytest.mark.parametrize(
    "subnets,ipmap,last,expected",
    [
        # fresh start
        (["10.0.0.0/29"], {}, "", "10.0.0.2"),
        (["2001:db8:1::0/64"], {}, "", "2001:db8:1::2"),
        (["10.0.0.0/30"], {}, "", "10.0.0.2"),
        (["10.0.0.0/29"], {"10.0.0.2": "id"}, "", "10.0.0.3"),
        # next ip of last reserved ip
        (["10.0.0.0/29"], {}, "10.0.0.5", "10.0.0.6"),
        (["10.0.0.0/29"], {"10.0.0.4": "id", "10.0.0.5": "id"}, "10.0.0.3", "10.0.0.6"),
        # round robin to the beginning
        (["10.0.0.0/29"], {"10.0.0.6": "id"}, "10.0.0.5", "10.0.0.2"),
        # lastIP is out of range
        (["10.0.0.0/29"], {"10.0.0.2": "id"}, "10.0.0.128", "10.0.0.3"),
        # subnet is completely full except for lastip: wrap around and reserve lastIP
        (
            ["10.0.0.0/29"],
            {"10.0.0.2": "id", "10.0.0.4": "id", "10.0.0.5": "id", "10.0.0.6": "id"},
            "10.0.0.3",
            "10.0.0.3",
        ),
        # allocate from multiple subnets
        (["10.0.0.0/30", "10.0.1.0/30"], {}, "", "10.0.0.2"),
        # advance to next subnet
        (["10.0.0.0/30", "10.0.1.0/30"], {}, "10.0.0.2", "10.0.1.2"),
        # roll to start subnet
        (["10.0.0.0/30", "10.0.1.0/30", "10.0.2.0/30"], {}, "10.0.2.2", "10.0.0.2"),
    ],
)
def test_allocates_ips_in_round_robin(subnets: list[str], ipmap: dict[str, str], last: str, expected: str) -> None:
    rs = parse_range_set([{"subnet": s} for s in subnets])
    store = store_with(ipmap, last)
    got = allocate(store, rs, "0", "ID", "eth0", NONE)
    assert got.address.split("/")[0] == expected
    assert store.files[parse_ip(expected)] == ("ID", "eth0")
    assert store.last["0"] == parse_ip(expected)


def mkalloc() -> tuple[MemStore, RangeSet]:
    return MemStore(), parse_range_set([{"subnet": "192.168.1.0/29"}])


def test_does_not_allocate_the_broadcast_address() -> None:
    store, rs = mkalloc()
    got = [allocate(store, rs, "0", f"ID{i}", "eth0", NONE).address.split("/")[0] for i in range(5)]
    assert got == [f"192.168.1.{i}" for i in (2, 3, 4, 5, 6)]
    with pytest.raises(AllocationError, match="no IP addresses available in range set: 192.168.1.1-192.168.1.6"):
        allocate(store, rs, "0", "ID5", "eth0", NONE)


def test_allocates_in_a_round_robin_fashion_after_release() -> None:
    store, rs = mkalloc()
    first = allocate(store, rs, "0", "ID", "eth0", NONE)
    assert first.address.split("/")[0] == "192.168.1.2"
    store.release_by_attachment("ID", "eth0")
    assert allocate(store, rs, "0", "ID", "eth0", NONE).address.split("/")[0] == "192.168.1.3"


def test_allocates_the_requested_ip() -> None:
    store, rs = mkalloc()
    got = allocate(store, rs, "0", "ID", "eth0", NONE, parse_ip("192.168.1.5"))
    assert (got.address, got.gateway_text) == ("192.168.1.5/29", "192.168.1.1")


def test_fails_when_the_requested_ip_is_allocated() -> None:
    store, rs = mkalloc()
    allocate(store, rs, "0", "ID", "eth0", NONE, parse_ip("192.168.1.5"))
    with pytest.raises(AllocationError) as e:
        allocate(store, rs, "0", "ID2", "eth0", NONE, parse_ip("192.168.1.5"))
    assert str(e.value) == "requested IP address 192.168.1.5 is not available in range set 192.168.1.1-192.168.1.6"


@pytest.mark.parametrize("requested", ["192.168.1.50", "192.168.1.2"])
def test_a_requested_ip_outside_start_end_is_refused(requested: str) -> None:
    store = MemStore()
    rs = parse_range_set([{"subnet": "192.168.1.0/24", "rangeStart": "192.168.1.10", "rangeEnd": "192.168.1.20"}])
    with pytest.raises(AllocationError, match=f"{requested} not in range set 192.168.1.10-192.168.1.20"):
        allocate(store, rs, "0", "ID", "eth0", NONE, parse_ip(requested))
    assert store.files == {}


def test_the_gateway_and_excluded_addresses_are_refused_when_requested() -> None:
    store, rs = mkalloc()
    with pytest.raises(AllocationError, match="is subnet's gateway"):
        allocate(store, rs, "0", "ID", "eth0", NONE, parse_ip("192.168.1.1"))
    with pytest.raises(AllocationError, match="excluded"):
        allocate(store, rs, "0", "ID", "eth0", Exclusions.parse(["192.168.1.4"]), parse_ip("192.168.1.4"))
    assert store.files == {}


def test_a_second_allocation_for_the_same_attachment_is_refused() -> None:
    store, rs = mkalloc()
    allocate(store, rs, "0", "ID", "eth0", NONE)
    with pytest.raises(AllocationError, match="192.168.1.2 has been allocated to ID, duplicate allocation"):
        allocate(store, rs, "0", "ID", "eth0", NONE)
    assert allocate(store, rs, "0", "ID", "net1", NONE).address.split("/")[0] == "192.168.1.3"


def test_the_first_ip_of_the_next_range_follows_the_end_of_a_range() -> None:
    rs = parse_range_set(
        [
            {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.5", "rangeEnd": "10.0.0.6"},
            {"subnet": "10.0.1.0/24", "rangeStart": "10.0.1.7", "rangeEnd": "10.0.1.9"},
        ]
    )
    store = store_with({}, "10.0.0.6")
    assert allocate(store, rs, "0", "ID", "eth0", NONE).address.split("/")[0] == "10.0.1.7"
    store = store_with({}, "10.0.1.9")
    assert allocate(store, rs, "0", "ID", "eth0", NONE).address.split("/")[0] == "10.0.0.5"


# ---- properties: never a duplicate, never network/broadcast/gateway/excluded ----


@settings(max_examples=60, deadline=None)
@given(
    prefix=st.integers(24, 29),
    base=st.integers(0, 2**24 - 1),
    gw_offset=st.integers(1, 6),
    excluded=st.lists(st.integers(0, 255), max_size=6),
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 40)), min_size=1, max_size=80),
)
def test_allocation_properties(
    prefix: int, base: int, gw_offset: int, excluded: list[int], ops: list[tuple[bool, int]]
) -> None:
    net = netaddr.IPNetwork(f"{netaddr.IPAddress(base << 8)}/{prefix}").cidr
    gateway = net[gw_offset]
    excl = [str(net[i % net.size]) for i in excluded]
    rs = parse_range_set([{"subnet": str(net), "gateway": str(gateway)}])
    ex = Exclusions.parse(excl)
    store = MemStore()
    forbidden = {str(net.network), str(net.broadcast), str(gateway), *excl}
    usable = {str(a) for a in net} - forbidden
    live: dict[str, str] = {}
    for is_add, n in ops:
        cid = f"c{n}"
        if is_add:
            if cid in live:
                continue
            try:
                got = allocate(store, rs, "0", cid, "eth0", ex).address.split("/")[0]
            except AllocationError as e:
                assert "no IP addresses available" in str(e)
                assert len(live) == len(usable), "refused while addresses were free"
                continue
            assert got not in forbidden
            assert got not in live.values(), "address handed out twice"
            live[cid] = got
        else:
            released = store.release_by_attachment(cid, "eth0")
            assert len(released) == (1 if cid in live else 0)
            live.pop(cid, None)
        assert {f"{netaddr.IPAddress(v, f)}" for f, v in store.files} == set(live.values())
