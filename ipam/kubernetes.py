"""The Kubernetes lease store: one network's leases as objects in the cluster's own API, shared by its nodes.

The model (docs/design.md, "Leases in the Kubernetes API"): one small IPLease object
(``ipleases.cni-macvlan.io/v1``, deploy/kubernetes-ipam.yaml) per leased address, named after the
network and the address, so the API server's uniqueness of names is the uniqueness of addresses:
  - reserve = POST the object; 201 means it is ours, 409 AlreadyExists means taken (unless the
    holder in its spec is this very attachment: an earlier try of the same reservation that timed
    out after it was applied, or a repeated ADD). No lock, no shared object that every ADD rewrites.
  - the holder is the attachment (container ID + ifname) in ``spec``, never the pod's name; labels
    (network, attachment hash, node) let DEL, CHECK and GC select with one LIST.
  - release = DELETE with preconditions on the object's uid and resourceVersion as listed: a late
    retry or a slow GC never deletes a lease someone took after it looked.
  - GC releases this node's leases whose attachment is not in the runtime's valid list; the sweep
    (with GC) releases this node's leases whose pod no longer exists, but only leases older than the
    pod list it compares with (their resourceVersion is below the list's): a pod created after
    the list was read can't be missing from it to free its lease.
  - where to start looking: after the newest lease of the range set (the highest resourceVersion:
    round robin across the cluster, no immediate reuse of a freed address); an ADD that loses an
    address to another passes over a few (allocator.conflict_skip), so that ADDs running at once
    scatter instead of racing for each next address in turn.

Rule of membership: the mapping between leases and API objects (pure functions at the top) and the
store's verbs over ipam/kube_client.py.
"""

from __future__ import annotations

from cni.ip import AddressError, format_ip, parse_ip

from .kube_client import Client, Refused, Unavailable
from .store import Lease, Store, StoreRefused, StoreUnavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


GROUP = "cni-macvlan.io"
VERSION = "v1"
PLURAL = "ipleases"
KIND = "IPLease"
LABEL_NETWORK = f"{GROUP}/network"
LABEL_ATTACHMENT = f"{GROUP}/attachment"
LABEL_NODE = f"{GROUP}/node"
# a LIST of metadata only (the pods' specs are of no use to the sweep, and big)
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
CRD_HINT = "apply deploy/kubernetes-ipam.yaml (the IPLease CRD and the plugin's RBAC)"


def _sha256(data: bytes) -> str:
    try:
        from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]  # 3.12 and later
    except ImportError:
        from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    return str(sha256(data).hexdigest())


def _slug(text: str, most: int) -> str:
    """``text`` in lower-case letters, digits and single dashes, at most ``most`` long (maybe empty)."""
    out: list[str] = []
    for ch in text.lower():
        ok = ch.isascii() and ch.isalnum()
        if ok or (out and out[-1] != "-"):
            out.append(ch if ok else "-")
    return "".join(out)[:most].strip("-")


def network_label(network: str) -> str:
    """The network as a label value (at most 63: a slug of its name and a hash of it, exact)."""
    return (_slug(network, 52) or "net") + "-" + _sha256(network.encode())[:10]


def label_value(text: str) -> str:
    """``text`` itself when it is a valid label value, else a slug of it with a hash."""
    ok = len(text) <= 63 and all(c.isascii() and (c.isalnum() or c in "-_.") for c in text)
    if ok and (not text or (text[0].isalnum() and text[-1].isalnum())):
        return text
    return (_slug(text, 52) or "x") + "-" + _sha256(text.encode())[:10]


def attachment_label(container_id: str, ifname: str) -> str:
    return _sha256(f"{container_id.strip()}\0{ifname}".encode())[:40]


def address_part(family: int, value: int) -> str:
    """The address in a name: ``10-1-2-3`` or the 32 hex digits of an IPv6 address."""
    if family == 4:
        return format_ip(4, value).replace(".", "-")
    return f"{value:032x}"


def object_name(network: str, family: int, value: int) -> str:
    """The lease's object name: unique per (network, address), a valid DNS subdomain."""
    return network_label(network) + "." + address_part(family, value)


def lease_object(
    network: str,
    container_id: str,
    ifname: str,
    family: int,
    value: int,
    range_id: str,
    node: str,
    pod: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "network": network,
        "address": format_ip(family, value),
        "containerID": container_id.strip(),
        "ifname": ifname,
        "rangeSet": range_id,
        "node": node,
    }
    if pod:
        spec["pod"] = pod
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": object_name(network, family, value),
            "labels": {
                LABEL_NETWORK: network_label(network),
                LABEL_ATTACHMENT: attachment_label(container_id, ifname),
                LABEL_NODE: label_value(node),
            },
        },
        "spec": spec,
    }


def lease_of(obj: Any, network: str) -> Lease | None:
    """The lease an object holds, if it is a well-formed lease of ``network`` (else None)."""
    spec = obj.get("spec") if isinstance(obj, dict) else None
    if not isinstance(spec, dict) or spec.get("network") != network:
        return None
    cid, ifname, address = spec.get("containerID"), spec.get("ifname"), spec.get("address")
    if not (isinstance(cid, str) and isinstance(ifname, str) and isinstance(address, str)):
        return None
    try:
        family, value = parse_ip(address)
    except AddressError:
        return None
    if obj.get("metadata", {}).get("name") != object_name(network, family, value):
        return None  # not made by this store: never trusted as a lease
    return Lease(family, value, cid, ifname)


def resource_version(obj: dict[str, Any]) -> int:
    """An object's resourceVersion as a number (the etcd revision of its last write; kube-apiserver's
    are decimal, and comparable since Kubernetes 1.35's KEP-5504); -1 when it is not a number."""
    rv = obj.get("metadata", {}).get("resourceVersion", "")
    return int(rv) if isinstance(rv, str) and rv.isdigit() else -1


def newest(objects: list[dict[str, Any]], range_id: str) -> dict[str, Any] | None:
    """The lease of range set ``range_id`` written last (the highest resourceVersion)."""
    best = None
    for obj in objects:
        if obj.get("spec", {}).get("rangeSet") == range_id and (
            best is None or resource_version(obj) > resource_version(best)
        ):
            best = obj
    return best


def sweepable(
    objects: list[dict[str, Any]], pods: list[dict[str, Any]], pods_rv: int, node: str
) -> list[dict[str, Any]]:
    """The lease objects of ``node`` whose pod is not among ``pods`` (the node's pods, listed at
    resourceVersion ``pods_rv``) and that were written before that list: never one made after it.
    A lease names its pod by uid (K8S_POD_UID) and namespace/name; one naming none is kept."""
    if pods_rv < 0:
        return []
    uids, names = set(), set()
    for pod in pods:
        meta = pod.get("metadata", {})
        uids.add(meta.get("uid"))
        names.add((meta.get("namespace"), meta.get("name")))
    gone = []
    for obj in objects:
        spec = obj.get("spec", {})
        pod = spec.get("pod")
        if spec.get("node") != node or not isinstance(pod, dict):
            continue
        rv = resource_version(obj)
        if rv < 0 or rv >= pods_rv:
            continue
        # gone: neither its uid nor its name is there (a static pod's mirror has a uid of its own;
        # a name reused by a new pod keeps the lease: kept too long, never freed wrongly)
        named = bool(pod.get("namespace") and pod.get("name"))
        if (
            (pod.get("uid") or named)
            and pod.get("uid") not in uids
            and (not named or (pod["namespace"], pod["name"]) not in names)
        ):
            gone.append(obj)
    return gone


def _query(**params: str) -> str:
    out = []
    for key, value in params.items():
        encoded = "".join(c if c.isalnum() or c in "-_.~" else "%" + f"{ord(c):02X}" for c in value)
        out.append(f"{key}={encoded}")
    return "?" + "&".join(out)


class KubernetesStore(Store):
    where = "kubernetes"
    repeat_add_returns_lease = True
    spread_on_conflict = True

    def __init__(
        self,
        client: Client,
        namespace: str,
        network: str,
        node: str,
        pod: dict[str, str] | None = None,
        sweep: bool = True,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.network = network
        self.node = node
        self.pod = pod
        self.sweep_pods = sweep
        self.where = f"kubernetes namespace {namespace}"
        self.base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
        self._listed: dict[tuple[int, int], dict[str, Any]] = {}  # the last LIST's objects by address
        self._whole = False  # ``_listed`` holds the whole network's leases (leases()), not one node's (gc_leases())

    # the client's failures as the store interface's
    def _call(
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201), accept: str = ""
    ) -> tuple[int, Any]:
        try:
            return self.client.request(method, path, body, ok, accept)
        except Unavailable as e:
            raise StoreUnavailable(str(e)) from None
        except Refused as e:
            if e.status == 404 and e.reason in ("NotFound", "") and path.startswith(self.base):
                raise StoreRefused(f"{e}; is the CRD installed? {CRD_HINT}") from None
            if e.status in (401, 403):
                raise StoreRefused(f"{e}; {CRD_HINT}, and bind its ClusterRole to this plugin's user") from None
            raise StoreRefused(str(e)) from None

    def _list(self, selector: str) -> list[dict[str, Any]]:
        _, answer = self._call("GET", self.base + _query(labelSelector=selector))
        items = answer.get("items")
        return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []

    def _network_selector(self) -> str:
        return f"{LABEL_NETWORK}={network_label(self.network)}"

    def _leases_of(self, objects: list[dict[str, Any]]) -> list[tuple[Lease, dict[str, Any]]]:
        found = []
        for obj in objects:
            lease = lease_of(obj, self.network)
            if lease is not None:
                found.append((lease, obj))
        return found

    def lock(self) -> None:
        pass  # every write is one request the API server makes atomic

    def unlock(self) -> None:
        pass

    def close(self) -> None:
        self.client.close()

    def reserve(self, container_id: str, ifname: str, family: int, value: int, range_id: str) -> bool:
        obj = lease_object(self.network, container_id, ifname, family, value, range_id, self.node, self.pod)
        name = obj["metadata"]["name"]
        for _ in range(3):
            status, _ = self._call("POST", self.base, obj, ok=(201, 409))
            if status == 201:
                return True
            if self._whole and self.client.tries == 1 and (family, value) not in self._listed:
                # free in the LIST, taken since: by another attachment, as this POST was sent once (no earlier
                # try of it can have been applied); no GET of the holder needed
                return False
            held, found = self._call("GET", f"{self.base}/{name}", ok=(200, 404))
            if held == 404:
                continue  # released in between: try again
            lease = lease_of(found, self.network)
            # held already: by us, when an earlier try of this very reservation was applied after all
            return lease is not None and lease.belongs_to(container_id.strip(), ifname)
        return False

    def last_reserved(self, range_id: str) -> tuple[int, int] | None:
        obj = newest(list(self._listed.values()), range_id)
        lease = lease_of(obj, self.network) if obj is not None else None
        return (lease.family, lease.value) if lease is not None else None

    def leases(self) -> list[Lease]:
        found = self._leases_of(self._list(self._network_selector()))
        self._listed = {(lease.family, lease.value): obj for lease, obj in found}
        self._whole = True
        return [lease for lease, _ in found]

    def gc_leases(self) -> list[Lease]:
        """This node's leases: another node's runtime knows nothing of its attachments."""
        selector = f"{self._network_selector()},{LABEL_NODE}={label_value(self.node)}"
        listed = self._leases_of(self._list(selector))
        found = [(lease, obj) for lease, obj in listed if obj["spec"].get("node") == self.node]
        self._listed = {(lease.family, lease.value): obj for lease, obj in found}
        self._whole = False
        return [lease for lease, _ in found]

    def _attachment(self, container_id: str, ifname: str) -> list[tuple[Lease, dict[str, Any]]]:
        selector = f"{self._network_selector()},{LABEL_ATTACHMENT}={attachment_label(container_id, ifname)}"
        cid = container_id.strip()
        return [(lease, obj) for lease, obj in self._leases_of(self._list(selector)) if lease.belongs_to(cid, ifname)]

    def get_by_attachment(self, container_id: str, ifname: str) -> list[Lease]:
        """One LIST by the attachment's label, whatever the size of the network."""
        return [lease for lease, _ in self._attachment(container_id, ifname)]

    def release_by_attachment(self, container_id: str, ifname: str) -> list[Lease]:
        found = self._attachment(container_id, ifname)
        for _, obj in found:
            self._delete(obj)
        return [lease for lease, _ in found]

    def release(self, family: int, value: int) -> None:
        """Drop the lease on one address (absent is fine): the object as listed, else as it is now."""
        obj = self._listed.pop((family, value), None)
        if obj is None:
            status, obj = self._call("GET", f"{self.base}/{object_name(self.network, family, value)}", ok=(200, 404))
            if status == 404:
                return
        self._delete(obj)

    def _delete(self, obj: dict[str, Any]) -> None:
        """DELETE if the object is still the one we saw (its uid and resourceVersion): 404 (gone) and
        409 (replaced or changed since) both mean it is not ours to delete any more."""
        meta = obj.get("metadata", {})
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")},
        }
        self._call("DELETE", f"{self.base}/{meta.get('name')}", body, ok=(200, 202, 404, 409))

    def sweep(self) -> list[Lease]:
        """Release this node's leases whose pod no longer exists (GC calls it when ``sweep`` is on)."""
        if not self.sweep_pods:
            return []
        # the pods first: a lease written after this list has a higher resourceVersion and is kept
        _, answer = self._call(
            "GET", "/api/v1/pods" + _query(fieldSelector=f"spec.nodeName={self.node}"), accept=METADATA_ONLY
        )
        items = answer.get("items")
        pods = [pod for pod in items if isinstance(pod, dict)] if isinstance(items, list) else []
        pods_rv = resource_version({"metadata": answer.get("metadata", {})})
        selector = f"{self._network_selector()},{LABEL_NODE}={label_value(self.node)}"
        objects = [obj for _, obj in self._leases_of(self._list(selector))]
        gone = sweepable(objects, pods, pods_rv, self.node)
        released = []
        for obj in gone:
            self._delete(obj)
            lease = lease_of(obj, self.network)
            if lease is not None:
                released.append(lease)
        return released

    def probe(self) -> None:
        """A LIST of one: the API server answers, the CRD is there, this user may read leases."""
        self._call("GET", self.base + _query(limit="1"))

    def tidy(self) -> None:
        """Nothing to tidy: every write is one request, so a killed plugin leaves no half."""
