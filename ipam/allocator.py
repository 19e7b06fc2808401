"""Allocation: one address per range set for an attachment, round robin, over any Store.

Pure logic over the Store interface: no file, lock or clock here (the caller holds the lock).
The order of candidates is ``ranges.round_robin``; a requested address is honoured when the set
contains it and it is neither the gateway, excluded, nor taken. Messages are upstream's where the
upstream tests pin them.
"""

from __future__ import annotations

from cni.ip import format_ip
from cni.result import IPConfig

from .ranges import Exclusions, Range, RangeSet, round_robin
from .store import Store, of_attachment


class AllocationError(Exception):
    pass


def _allocation(r: Range, value: int) -> IPConfig:
    """The address as the result carries it, typed: with its subnet's prefix and its range's gateway."""
    return IPConfig(r.family, value, r.prefix, (r.family, r.gateway))


def allocate(
    store: Store,
    rs: RangeSet,
    range_id: str,
    container_id: str,
    ifname: str,
    exclude: Exclusions,
    requested: tuple[int, int] | None = None,
) -> IPConfig:
    """Reserve one address of ``rs`` for (container_id, ifname) in ``store``."""
    if requested is not None:
        family, value = requested
        r = rs.range_for(family, value)
        if r is None:
            raise AllocationError(f"{format_ip(family, value)} not in range set {rs}")
        if value == r.gateway:
            raise AllocationError(f"requested ip {format_ip(family, value)} is subnet's gateway")
        if requested in exclude:
            raise AllocationError(f"requested ip {format_ip(family, value)} is excluded by the ipam exclude list")
        if not store.reserve(container_id, ifname, family, value, range_id):
            raise AllocationError(f"requested IP address {format_ip(family, value)} is not available in range set {rs}")
        return _allocation(r, value)

    leases = store.leases()
    for lease in of_attachment(leases, container_id, ifname):
        r = rs.range_for(lease.family, lease.value)
        if r is not None and store.repeat_add_returns_lease:
            return _allocation(r, lease.value)
        if r is not None:
            raise AllocationError(
                f"{format_ip(lease.family, lease.value)} has been allocated to {container_id}, "
                "duplicate allocation is not allowed"
            )
    # skip what is known to be taken; reserve() stays the atomic test for the rest
    taken = {(lease.family, lease.value) for lease in leases}
    deferred: list[tuple[Range, int]] = []
    skip = 0
    for r, value in round_robin(rs, store.last_reserved(range_id), exclude):
        if (r.family, value) in taken:
            continue
        if skip:
            skip -= 1
            deferred.append((r, value))
            continue
        if store.reserve(container_id, ifname, r.family, value, range_id):
            return _allocation(r, value)
        if store.spread_on_conflict:
            skip = conflict_skip(container_id, ifname, value)
    for r, value in deferred:  # what was skipped comes last, so that a set is full only when it is
        if store.reserve(container_id, ifname, r.family, value, range_id):
            return _allocation(r, value)
    raise AllocationError(f"no IP addresses available in range set: {rs}")


SPREAD = 64


def conflict_skip(container_id: str, ifname: str, value: int) -> int:
    """How many free candidates to pass over after losing ``value`` to another ADD (a shared store):
    ADDs that start from the same last reserved address, all at once, scatter over the next SPREAD
    addresses instead of queueing for each next one in turn. The same for the same attachment."""
    try:
        from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]  # 3.12 and later
    except ImportError:
        from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    digest = sha256(f"{container_id.strip()}\0{ifname}\0{value}".encode()).digest()
    return 1 + int(digest[0]) % SPREAD
