"""The lease store interface the allocator talks to (upstream's ``backend.Store``).

A lease ties one address to one attachment (container ID, ifname). Implementations: ``disk.DiskStore``
(the default, byte-compatible with the Go plugin), ``etcd.EtcdStore`` (shared by the nodes) and the
in-memory store of the tests; ``stores.open_store`` picks one. The verbs call every method but
``lock``/``close`` with the lock held; a store whose writes are atomic on their own (etcd's
transactions) makes ``lock`` a no-op.
"""

from __future__ import annotations

LINE_BREAK = "\r\n"


def lease_content(container_id: str, ifname: str) -> str:
    """What a lease holds, in every store: ``<containerID>\\r\\n<ifname>`` (upstream's file content)."""
    return container_id.strip() + LINE_BREAK + ifname


def parse_lease(content: str) -> tuple[str, str | None]:
    """A lease's content -> (container ID, ifname or None for a legacy one holding only the ID);
    whitespace is tolerated."""
    text = content.strip()
    cid, sep, ifname = text.partition("\n")
    if not sep:
        return text, None
    return cid.strip(), ifname.strip()


class Lease:
    __slots__ = ("container_id", "family", "ifname", "value")

    def __init__(self, family: int, value: int, container_id: str, ifname: str | None) -> None:
        self.family = family
        self.value = value
        self.container_id = container_id
        self.ifname = ifname  # None for legacy files that hold only the container ID

    def belongs_to(self, container_id: str, ifname: str) -> bool:
        return self.container_id == container_id and self.ifname == ifname

    def __repr__(self) -> str:
        return f"Lease({self.family}, {self.value}, {self.container_id!r}, {self.ifname!r})"


def of_attachment(leases: list[Lease], container_id: str, ifname: str) -> list[Lease]:
    """The attachment's leases; legacy container-ID-only leases count when there is no exact match
    (as upstream's ReleaseByID does)."""
    cid = container_id.strip()
    exact = [lease for lease in leases if lease.belongs_to(cid, ifname)]
    if exact:
        return exact
    return [lease for lease in leases if lease.ifname is None and lease.container_id == cid]


class StoreUnavailable(Exception):
    """The store did not answer in time (etcd down, no quorum, unreachable): try again later."""


class StoreRefused(Exception):
    """The store refused a request (not worth retrying as it is)."""


class Store:
    """Abstract lease store; subclasses implement every method. Besides OSError, a store raises
    StoreUnavailable or StoreRefused. ``where`` names it in messages. ``repeat_add_returns_lease``:
    an ADD of an attachment that holds a lease in a range set gets that lease again (the Kubernetes
    store: a runtime retrying an ADD whose answer it lost) instead of upstream's "duplicate
    allocation" error. ``spread_on_conflict``: after losing an address to a concurrent ADD, the
    allocator passes over a few free ones (allocator.conflict_skip), for stores shared by nodes."""

    where = ""
    repeat_add_returns_lease = False
    spread_on_conflict = False

    def lock(self) -> None:
        raise NotImplementedError

    def unlock(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def reserve(self, container_id: str, ifname: str, family: int, value: int, range_id: str) -> bool:
        """Take the address for the attachment; False if it is already taken. Records it as the
        last reserved address of range set ``range_id``."""
        raise NotImplementedError

    def last_reserved(self, range_id: str) -> tuple[int, int] | None:
        raise NotImplementedError

    def leases(self) -> list[Lease]:
        """Every lease in the store."""
        raise NotImplementedError

    def release(self, family: int, value: int) -> None:
        """Drop the lease on one address (absent is fine)."""
        raise NotImplementedError

    def probe(self) -> None:
        """Raise OSError unless a lease could be written now (STATUS)."""
        raise NotImplementedError

    def tidy(self) -> None:
        """Remove what a writer killed mid-write left behind (with the lock held; DEL and GC)."""
        raise NotImplementedError

    # Derived operations: one definition of "which leases belong to an attachment".

    def gc_leases(self) -> list[Lease]:
        """The leases GC judges against the runtime's valid list: every lease, in a node's own store."""
        return self.leases()

    def sweep(self) -> list[Lease]:
        """GC's second pass, for stores that can tell a lease's pod is gone; the leases released."""
        return []

    def get_by_attachment(self, container_id: str, ifname: str) -> list[Lease]:
        return of_attachment(self.leases(), container_id, ifname)

    def release_by_attachment(self, container_id: str, ifname: str) -> list[Lease]:
        released = self.get_by_attachment(container_id, ifname)
        for lease in released:
            self.release(lease.family, lease.value)
        return released

    def __enter__(self) -> Store:
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()
