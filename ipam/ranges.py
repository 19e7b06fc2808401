"""Address ranges and range sets: canonical form, membership, overlap, and the round-robin order.

Rule of membership: every rule about which addresses of a range may be handed out lives here (the
allocator checks a requested address against them). A Range is one subnet with an inclusive
[start, end] window and a gateway; a RangeSet is a pool of same-family ranges that yields one
address per ADD. The window excludes the network address
(start >= network + 1) and, for IPv4, the broadcast (end <= broadcast - 1); the gateway and the
ipam-level exclusions are skipped while iterating. ``ipRange`` (ours, Docker's --ip-range) narrows the
window to a CIDR inside the subnet; allocation then starts at its first usable address.
"""

from __future__ import annotations

from cni.ip import (
    AddressError,
    format_cidr,
    format_ip,
    last_address,
    network,
    parse_cidr,
    parse_ip,
)
from cni.keys import fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


RANGE_KEYS = ("subnet", "rangeStart", "rangeEnd", "gateway", "ipRange")


class RangeError(ValueError):
    """A range or range set that can't be used; the message names the key and value, ``where`` the range
    of its set ("range 1") when it is one range's fault."""

    def __init__(self, msg: str, where: str = "") -> None:
        super().__init__(msg)
        self.where = where


class Range:
    __slots__ = ("end", "family", "gateway", "network", "prefix", "start")

    def __init__(self, family: int, network: int, prefix: int, start: int, end: int, gateway: int) -> None:
        self.family = family
        self.network = network
        self.prefix = prefix
        self.start = start
        self.end = end
        self.gateway = gateway

    @property
    def subnet(self) -> str:
        return format_cidr(self.family, self.network, self.prefix)

    def contains(self, family: int, value: int) -> bool:
        return family == self.family and self.start <= value <= self.end

    def overlaps(self, other: Range) -> bool:
        return self.family == other.family and self.start <= other.end and other.start <= self.end

    def __str__(self) -> str:
        return f"{format_ip(self.family, self.start)}-{format_ip(self.family, self.end)}"

    def __repr__(self) -> str:
        return f"Range({self.subnet} {self})"


def _ip_in_subnet(key: str, text: Any, family: int, net: int, prefix: int, subnet: str) -> int:
    try:
        fam, value = parse_ip(text)
    except AddressError as e:
        raise RangeError(f"{key} {text!r}: {e}") from None
    if fam != family or network(fam, value, prefix) != net:
        raise RangeError(f"{key} {text} not in network {subnet}")
    return value


def parse_range(obj: Any) -> Range:
    """One range object ({subnet, rangeStart, rangeEnd, gateway, ipRange}) in canonical form."""
    if not isinstance(obj, dict):
        raise RangeError(f"a range must be an object with a subnet, got {obj!r}")
    found = fields(obj, RANGE_KEYS)
    subnet_text = found.get("subnet")
    if not subnet_text:
        raise RangeError('range has no subnet: add "subnet": "<network>/<prefix>"')
    try:
        family, value, prefix = parse_cidr(subnet_text)
    except AddressError as e:
        raise RangeError(str(e)) from None
    bits = 32 if family == 4 else 128
    net = network(family, value, prefix)
    if net != value:
        proper = format_cidr(family, net, prefix)
        raise RangeError(
            f"Network has host bits set. For a subnet mask of length {prefix} the network address is "
            f"{format_ip(family, net)} (subnet {subnet_text!r}: write {proper!r})"
        )
    if prefix > bits - 2:
        raise RangeError(f"Network {subnet_text} too small to allocate from")
    subnet = format_cidr(family, net, prefix)
    last = last_address(family, net, prefix)
    start, end = net + 1, last - 1 if family == 4 else last

    ip_range = found.get("ipRange")
    range_start, range_end, gateway_text = found.get("rangeStart"), found.get("rangeEnd"), found.get("gateway")
    if ip_range:
        if range_start or range_end:
            raise RangeError(f"range {subnet}: use either ipRange or rangeStart/rangeEnd, not both")
        try:
            rfam, rvalue, rprefix = parse_cidr(ip_range)
        except AddressError as e:
            raise RangeError(f"ipRange: {e}") from None
        if network(rfam, rvalue, rprefix) != rvalue:
            proper = format_cidr(rfam, network(rfam, rvalue, rprefix), rprefix)
            raise RangeError(f"ipRange {ip_range} has host bits set: write {proper!r}")
        if rfam != family or rprefix < prefix or network(rfam, rvalue, prefix) != net:
            raise RangeError(f"ipRange {ip_range} not in network {subnet}")
        start = max(start, rvalue)
        end = min(end, last_address(rfam, rvalue, rprefix))
        if start > end:
            raise RangeError(f"ipRange {ip_range} has no usable address in {subnet}")
    if range_start:
        start = _ip_in_subnet("RangeStart", range_start, family, net, prefix, subnet)
    if range_end:
        end = _ip_in_subnet("RangeEnd", range_end, family, net, prefix, subnet)
    if start > end:
        raise RangeError(
            f"range {subnet}: rangeStart {format_ip(family, start)} is after rangeEnd {format_ip(family, end)}"
        )
    if gateway_text:
        gateway = _ip_in_subnet("gateway", gateway_text, family, net, prefix, subnet)
    else:
        gateway = net + 1  # Docker and upstream both infer the first address of the subnet
    return Range(family, net, prefix, start, end, gateway)


class RangeSet:
    """Same-family ranges that together give one address per attachment."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: list[Range]) -> None:
        self.ranges = ranges

    @property
    def family(self) -> int:
        return self.ranges[0].family

    def range_for(self, family: int, value: int) -> Range | None:
        for r in self.ranges:
            if r.contains(family, value):
                return r
        return None

    def contains(self, family: int, value: int) -> bool:
        return self.range_for(family, value) is not None

    def overlaps(self, other: RangeSet) -> bool:
        return any(a.overlaps(b) for a in self.ranges for b in other.ranges)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.ranges)


def parse_range_set(obj: Any) -> RangeSet:
    if not isinstance(obj, list) or not obj:
        raise RangeError(f"a range set must be a non-empty list of ranges, got {obj!r}")
    ranges = []
    for i, item in enumerate(obj):
        try:
            ranges.append(parse_range(item))
        except RangeError as e:
            raise RangeError(str(e), f"range {i}") from None
    if any(r.family != ranges[0].family for r in ranges):
        raise RangeError("mixed address families")
    for i, a in enumerate(ranges):
        for b in ranges[i + 1 :]:
            if a.overlaps(b):
                raise RangeError(f"subnets {a} and {b} overlap")
    return RangeSet(ranges)


class Exclusions:
    """Addresses never handed out (ipam ``exclude``): sorted, merged [lo, hi] intervals per family."""

    __slots__ = ("intervals",)

    def __init__(self, entries: list[tuple[int, int, int]] | None = None) -> None:
        merged: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for family, lo, hi in sorted(entries or []):
            spans = merged[family]
            if spans and lo <= spans[-1][1] + 1:
                spans[-1] = (spans[-1][0], max(spans[-1][1], hi))
            else:
                spans.append((lo, hi))
        self.intervals = merged

    @classmethod
    def parse(cls, items: Any) -> Exclusions:
        if items is None:
            return cls()
        if not isinstance(items, list):
            raise RangeError(f"exclude must be a list of IP addresses or CIDRs, got {items!r}")
        entries = []
        for item in items:
            try:
                if isinstance(item, str) and "/" in item:
                    family, value, prefix = parse_cidr(item)
                    lo = network(family, value, prefix)
                    entries.append((family, lo, last_address(family, value, prefix)))
                else:
                    family, value = parse_ip(item)
                    entries.append((family, value, value))
            except AddressError as e:
                raise RangeError(f"exclude entry {item!r}: {e}") from None
        return cls(entries)

    def __contains__(self, address: tuple[int, int]) -> bool:
        family, value = address
        return any(lo <= value <= hi for lo, hi in self.intervals[family])

    def subtract(self, family: int, lo: int, hi: int) -> Iterator[tuple[int, int]]:
        """The parts of [lo, hi] that are not excluded, in ascending order."""
        for xlo, xhi in self.intervals[family]:
            if xhi < lo:
                continue
            if xlo > hi:
                break
            if xlo > lo:
                yield lo, xlo - 1
            lo = xhi + 1
            if lo > hi:
                return
        yield lo, hi


def round_robin(rs: RangeSet, last: tuple[int, int] | None, exclude: Exclusions) -> Iterator[tuple[Range, int]]:
    """Every allocatable address of the set once, in upstream host-local's order.

    Start just after ``last`` (the set's last reserved address) when it lies in the set, else at the
    first range's start; walk each range to its end, wrap to the next range, and finish with
    ``last`` itself, so a freed address comes back only after the whole set has been used.
    Each range's gateway and the excluded addresses are skipped.
    """
    ranges = rs.ranges
    first = 0
    pivot: int | None = None
    if last is not None:
        for i, r in enumerate(ranges):
            if r.contains(*last):
                first, pivot = i, last[1]
                break
    n = len(ranges)
    segments: list[tuple[Range, int, int]] = []
    if pivot is None:
        segments = [(r, r.start, r.end) for r in ranges]
    else:
        r0 = ranges[first]
        segments.append((r0, pivot + 1, r0.end))
        for k in range(1, n):
            r = ranges[(first + k) % n]
            segments.append((r, r.start, r.end))
        segments.append((r0, r0.start, pivot))
    for r, lo, hi in segments:
        for a, b in exclude.subtract(r.family, lo, hi):
            for value in range(a, b + 1):
                if value != r.gateway:
                    yield r, value
