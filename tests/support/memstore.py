"""An in-memory lease store for the allocator's tests: the same interface as the disk and etcd stores."""

from __future__ import annotations

from dataclasses import dataclass, field

from ipam.store import Lease, Store


@dataclass
class MemStore(Store):
    """An in-memory Store for allocator tests: the same interface as the disk store."""

    files: dict[tuple[int, int], tuple[str, str | None]] = field(default_factory=dict)
    last: dict[str, tuple[int, int]] = field(default_factory=dict)
    locked: bool = False

    def lock(self) -> None:
        assert not self.locked
        self.locked = True

    def unlock(self) -> None:
        self.locked = False

    def close(self) -> None:
        pass

    def reserve(self, container_id: str, ifname: str, family: int, value: int, range_id: str) -> bool:
        if (family, value) in self.files:
            return False
        self.files[(family, value)] = (container_id.strip(), ifname)
        self.last[range_id] = (family, value)
        return True

    def last_reserved(self, range_id: str) -> tuple[int, int] | None:
        return self.last.get(range_id)

    def leases(self) -> list[Lease]:
        return [Lease(f, v, cid, ifn) for (f, v), (cid, ifn) in self.files.items()]

    def release(self, family: int, value: int) -> None:
        self.files.pop((family, value), None)
