"""The etcd lease store: one network's leases shared by every node that uses it.

Keys under ``<prefix>/<network>/``:
  ``ip/<ip>``                     the lease, value ``<containerID>\\r\\n<ifname>`` (the disk store's content)
  ``att/<containerID>/<ifname>/<ip>``  the index by attachment: DEL and CHECK find an attachment's
                                  leases with one prefix read, never a scan of the network
  ``last_reserved_ip.<n>``        the last address reserved in range set n (round robin across nodes)

A reservation is one transaction: *if the lease key does not exist* put it, its index key and
last_reserved_ip, else read who holds it. It is atomic across nodes. A try that timed out may have
been applied; the retry then finds the address held by this very attachment and counts that as
success, so a reservation is idempotent. Releases compare the holder before deleting, so a late
retry never frees an address someone else took meanwhile.

There is no lock (``lock`` and ``unlock`` do nothing): etcd's transactions do the work a flock does
for the disk store.
"""

from __future__ import annotations

from cni.ip import AddressError, format_ip, parse_ip

from .etcd_client import Client, Refused, Unavailable, b64, prefix_end, unb64
from .store import Lease, Store, StoreRefused, StoreUnavailable, lease_content, parse_lease


def _holder(container_id: str, ifname: str) -> bytes:
    return lease_content(container_id, ifname).encode()


class EtcdStore(Store):
    where = "etcd"

    def __init__(self, client: Client, prefix: str, network: str) -> None:
        self.client = client
        self.base = f"{prefix.rstrip('/')}/{network}/".encode()

    def _call(self, path: str, body: dict) -> dict:  # type: ignore[type-arg]
        """The client's call, its failures as the store interface's (StoreUnavailable, StoreRefused)."""
        try:
            return self.client.call(path, body)
        except Unavailable as e:
            raise StoreUnavailable(str(e)) from None
        except Refused as e:
            raise StoreRefused(str(e)) from None

    # the keys
    def _ip_key(self, family: int, value: int) -> bytes:
        return self.base + b"ip/" + format_ip(family, value).encode()

    def _att_prefix(self, container_id: str, ifname: str) -> bytes:
        return self.base + f"att/{container_id.strip()}/{ifname}/".encode()

    def _last_key(self, range_id: str) -> bytes:
        return self.base + f"last_reserved_ip.{range_id}".encode()

    def lock(self) -> None:
        pass  # every write is a transaction

    def unlock(self) -> None:
        pass

    def close(self) -> None:
        pass

    def reserve(self, container_id: str, ifname: str, family: int, value: int, range_id: str) -> bool:
        key, holder = self._ip_key(family, value), _holder(container_id, ifname)
        ip = format_ip(family, value).encode()
        answer = self._call(
            "kv/txn",
            {
                "compare": [{"key": b64(key), "result": "EQUAL", "target": "CREATE", "create_revision": "0"}],
                "success": [
                    {"request_put": {"key": b64(key), "value": b64(holder)}},
                    {"request_put": {"key": b64(self._att_prefix(container_id, ifname) + ip), "value": ""}},
                    {"request_put": {"key": b64(self._last_key(range_id)), "value": b64(ip)}},
                ],
                "failure": [{"request_range": {"key": b64(key)}}],
            },
        )
        if answer.get("succeeded"):
            return True
        kvs = _kvs(((answer.get("responses") or [{}])[0] or {}).get("response_range", {}))
        # held already: by us, when an earlier try of this very reservation was applied after all
        return bool(kvs) and unb64(kvs[0].get("value", "")) == holder

    def last_reserved(self, range_id: str) -> tuple[int, int] | None:
        kvs = _kvs(self._call("kv/range", {"key": b64(self._last_key(range_id))}))
        try:
            return parse_ip(unb64(kvs[0].get("value", "")).decode()) if kvs else None
        except (AddressError, UnicodeDecodeError):
            return None

    def _range(self, start: bytes, keys_only: bool = False) -> list[tuple[int, int, dict]]:  # type: ignore[type-arg]
        """(family, value, kv) of every key under ``start`` whose remainder is an address."""
        request: dict[str, object] = {"key": b64(start), "range_end": b64(prefix_end(start))}
        if keys_only:
            request["keys_only"] = True
        found = []
        for kv in _kvs(self._call("kv/range", request)):
            try:
                family, value = parse_ip(unb64(kv["key"])[len(start) :].decode())
            except (AddressError, UnicodeDecodeError, KeyError):
                continue
            found.append((family, value, kv))
        return found

    def leases(self) -> list[Lease]:
        leases = []
        for family, value, kv in self._range(self.base + b"ip/"):
            cid, ifname = parse_lease(unb64(kv.get("value", "")).decode(errors="replace"))
            leases.append(Lease(family, value, cid, ifname))
        return leases

    def get_by_attachment(self, container_id: str, ifname: str) -> list[Lease]:
        """From the index: one prefix read, whatever the size of the network."""
        start = self._att_prefix(container_id, ifname)
        return [Lease(family, value, container_id, ifname) for family, value, _ in self._range(start, keys_only=True)]

    def release(self, family: int, value: int) -> None:
        """Drop the lease on one address and its index key (absent is fine)."""
        key = self._ip_key(family, value)
        kvs = _kvs(self._call("kv/range", {"key": b64(key)}))
        if not kvs:
            return
        holder = unb64(kvs[0].get("value", ""))
        cid, ifname = parse_lease(holder.decode(errors="replace"))
        self._release_held(family, value, holder, cid, ifname or "")

    def release_by_attachment(self, container_id: str, ifname: str) -> list[Lease]:
        leases = self.get_by_attachment(container_id, ifname)
        holder = _holder(container_id, ifname)
        for lease in leases:
            self._release_held(lease.family, lease.value, holder, container_id, ifname)
        return leases

    def _release_held(self, family: int, value: int, holder: bytes, container_id: str, ifname: str) -> None:
        """Delete the lease if ``holder`` still holds it, and its index key either way."""
        key = self._ip_key(family, value)
        index = self._att_prefix(container_id, ifname) + format_ip(family, value).encode()
        self._call(
            "kv/txn",
            {
                "compare": [{"key": b64(key), "result": "EQUAL", "target": "VALUE", "value": b64(holder)}],
                "success": [
                    {"request_delete_range": {"key": b64(key)}},
                    {"request_delete_range": {"key": b64(index)}},
                ],
                "failure": [{"request_delete_range": {"key": b64(index)}}],
            },
        )

    def probe(self) -> None:
        """A linearizable read: it needs a leader and a quorum, as every write does."""
        self._call("kv/range", {"key": b64(self.base), "limit": "1", "keys_only": True})

    def tidy(self) -> None:
        """Nothing to tidy: every write is one transaction, so a killed plugin leaves no half."""


def _kvs(answer: dict) -> list[dict]:  # type: ignore[type-arg]
    """The key-values of a range answer: the gateway leaves ``kvs`` out when nothing matches."""
    kvs = answer.get("kvs")
    return kvs if isinstance(kvs, list) else []
