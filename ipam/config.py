"""The IPAM config: every upstream host-local form, plus ``ipRange``, ``exclude`` and inferred gateways.

Pure: a dict (the whole network config) and the CNI_ARGS pairs in, an IPAMConfig out, or a
CNIError (code 7) whose message names the key, the value and the fix. Range sets are gathered as
upstream does: ``runtimeConfig.ipRanges`` first, then the legacy single-range keys, then ``ranges``.
Every key read here (of ipam, its ranges, routes and store) is matched as Go's JSON decoder matches
struct fields: exactly, else ignoring case (cni/keys.get). The requested-address rules (inside a
range set, not taken, not the gateway, not excluded) are the allocator's and the ADD verb's.
"""

from __future__ import annotations

import os

from cni import versions
from cni.errors import INVALID_CONFIG, CNIError
from cni.ip import AddressError, parse_ip_or_cidr
from cni.keys import directory, fields, get
from cni.result import Route

from .ranges import RANGE_KEYS, Exclusions, RangeError, RangeSet, parse_range_set

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_DATA_DIR = "/var/lib/cni/networks"
# the ipam keys load() reads in one pass: the legacy single range (a range's keys, in ipam itself) and
# the rest (dataDir and store have readers of their own, which DEL and GC use too)
IPAM_KEYS = (*RANGE_KEYS, "ranges", "exclude", "routes", "resolvConf")
ROUTE_KEYS = ("dst", "gw", "mtu", "advmss", "priority", "table", "scope")
DEFAULT_ETCD_PREFIX = "/cni-macvlan"
TLS_KEYS = ("certFile", "keyFile", "trustedCAFile")
DEFAULT_KUBE_NAMESPACE = "kube-system"
MAX_NAME_BYTES = 255  # a file name


def _invalid(msg: str, details: str = "") -> CNIError:
    return CNIError(INVALID_CONFIG, msg, details)


class StoreConfig:
    """Where the leases live: ``disk`` (the default, dataDir), ``etcd`` (shared by the nodes) or
    ``kubernetes`` (objects in the cluster's API, shared by the nodes)."""

    __slots__ = (
        "context",
        "deadline",
        "endpoints",
        "kind",
        "kubeconfig",
        "namespace",
        "node",
        "prefix",
        "sweep",
        "timeout",
        "tls",
    )

    def __init__(self, kind: str = "disk") -> None:
        self.kind = kind
        self.endpoints: list[str] = []
        self.prefix = DEFAULT_ETCD_PREFIX
        self.timeout = 0.5  # per try, seconds
        self.deadline = 5.0  # for all the tries of one request, seconds
        self.tls: dict[str, str] = {}
        # kubernetes
        self.kubeconfig = ""  # empty: the pod's service account
        self.context = ""  # empty: the kubeconfig's current context
        self.namespace = DEFAULT_KUBE_NAMESPACE
        self.node = ""  # empty: this host's name
        self.sweep = True  # GC also releases this node's leases whose pod is gone


class IPAMConfig:
    __slots__ = (
        "data_dir",
        "exclude",
        "name",
        "range_sets",
        "requested",
        "resolv_conf",
        "routes",
        "sources",
        "store",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.data_dir = DEFAULT_DATA_DIR
        self.store = StoreConfig()
        self.range_sets: list[RangeSet] = []
        self.sources: list[str] = []  # where each range set came from, for messages
        self.routes: list[Route] = []
        self.exclude = Exclusions()
        self.requested: list[tuple[int, int]] = []
        self.resolv_conf = ""


def ipam_section(config: dict[str, Any]) -> dict[str, Any]:
    ipam = get(config, "ipam")
    if ipam is None:
        raise _invalid("IPAM config missing 'ipam' key")
    if not isinstance(ipam, dict):
        raise _invalid(f"ipam must be an object, got {ipam!r}")
    return ipam


def data_dir(ipam: dict[str, Any]) -> str:
    return directory("ipam.dataDir", get(ipam, "dataDir") or DEFAULT_DATA_DIR)


def _string_list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(f"{key} must be a list of strings, got {value!r}")
    return value


def _requested_ips(args: Any, runtime: dict[str, Any], cni_args: dict[str, str]) -> list[tuple[int, int]]:
    """CNI_ARGS IP=, args.cni.ips and runtimeConfig.ips, all of them, as upstream host-local; an address asked
    for in several (Multus passes a pod's ``ips`` as both args.cni.ips and runtimeConfig.ips) counts once."""
    sources: list[tuple[str, str]] = []
    if cni_args.get("IP"):
        sources.append(("CNI_ARGS IP", cni_args["IP"]))
    cni = get(args, "cni") if isinstance(args, dict) else None
    if isinstance(cni, dict):
        sources.extend(("args.cni.ips", ip) for ip in _string_list(get(cni, "ips"), "args.cni.ips"))
    sources.extend(("runtimeConfig.ips", ip) for ip in _string_list(runtime.get("ips"), "runtimeConfig.ips"))
    requested = []
    for key, text in sources:
        try:
            family, value, _prefix = parse_ip_or_cidr(text.strip())
        except AddressError as e:
            raise _invalid(f"{key}: {e}", "a requested address is an IP, optionally with /prefix") from None
        if (family, value) not in requested:
            requested.append((family, value))
    return requested


def _routes(value: Any) -> list[Route]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(f"ipam.routes must be a list of {{dst, gw}} objects, got {value!r}")
    routes = []
    for i, obj in enumerate(value):
        key = f"ipam.routes[{i}]"
        found = fields(obj, ROUTE_KEYS) if isinstance(obj, dict) else {}
        dst = found.get("dst")
        if not isinstance(dst, str):
            raise _invalid(f'{key} must be an object with a "dst" CIDR, got {obj!r}')
        gw = found.get("gw") or ""
        try:
            route = Route.text(dst, gw, {k: found[k] for k in ROUTE_KEYS[2:] if found.get(k) is not None})
        except AddressError as e:
            raise _invalid(f"{key}: {e}") from None
        if route.gw is not None and route.gw[0] != route.family:
            raise _invalid(f"{key}: gw {gw} is not of the family of dst {dst}")
        routes.append(route)
    return routes


def _seconds(raw: dict[str, Any], key: str, default: float, most: float) -> float:
    value = get(raw, key, default)
    if type(value) not in (int, float) or not 0 < value <= most:
        raise _invalid(f"ipam.store.{key} must be a number of seconds in (0, {most:g}], got {value!r}")
    return float(value)


def store_config(ipam: dict[str, Any]) -> StoreConfig:
    """``ipam.store``: absent or ``{"type": "disk"}`` for the disk store, or ``{"type": "etcd",
    "endpoints": [...], "prefix", "timeout", "deadline", "tls": {certFile, keyFile, trustedCAFile}}``."""
    raw = get(ipam, "store")
    if raw is None:
        return StoreConfig()
    if not isinstance(raw, dict):
        raise _invalid(f'ipam.store must be an object like {{"type": "etcd", "endpoints": [...]}}, got {raw!r}')
    kind = get(raw, "type", "disk")
    if kind == "disk":
        return StoreConfig()
    if kind == "kubernetes":
        return kube_store_config(raw)
    if kind != "etcd":
        raise _invalid(f'ipam.store.type "{kind}" is unknown', 'use "disk" (the default), "etcd" or "kubernetes"')
    from .etcd_client import Endpoint

    store = StoreConfig("etcd")
    endpoints = get(raw, "endpoints")
    if not isinstance(endpoints, list) or not endpoints or not all(isinstance(e, str) for e in endpoints):
        raise _invalid(
            f"ipam.store.endpoints must be a non-empty list of URLs, got {endpoints!r}",
            'for example ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]',
        )
    for url in endpoints:
        try:
            Endpoint(url)
        except ValueError as e:
            raise _invalid(f"ipam.store.endpoints: {e}") from None
    store.endpoints = endpoints
    prefix = get(raw, "prefix", DEFAULT_ETCD_PREFIX)
    if not isinstance(prefix, str) or not prefix.startswith("/") or "\0" in prefix:
        raise _invalid(f"ipam.store.prefix must be a key prefix starting with /, got {prefix!r}")
    store.prefix = prefix
    store.timeout = _seconds(raw, "timeout", store.timeout, 60)
    store.deadline = _seconds(raw, "deadline", store.deadline, 300)
    raw_tls = get(raw, "tls", {})
    known = {k.lower() for k in TLS_KEYS}
    if not isinstance(raw_tls, dict) or any(
        k.lower() not in known or not isinstance(v, str) for k, v in raw_tls.items()
    ):
        raise _invalid(f"ipam.store.tls must be an object of {', '.join(TLS_KEYS)} (file paths), got {raw_tls!r}")
    tls = {k: get(raw_tls, k) for k in TLS_KEYS if get(raw_tls, k) is not None}
    if tls and not any(e.startswith("https://") for e in endpoints):
        raise _invalid("ipam.store.tls is set but no endpoint is https://")
    store.tls = tls
    return store


def _dns_name(raw: dict[str, Any], key: str, default: str, most: int) -> str:
    """A Kubernetes name (namespace: a DNS label; node: a DNS subdomain), lower case."""
    value = get(raw, key, default)
    allowed = "abcdefghijklmnopqrstuvwxyz0123456789-" + ("." if most > 63 else "")
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= most
        or value.strip(allowed)
        or not value[0].isalnum()
        or not value[-1].isalnum()
    ):
        raise _invalid(
            f"ipam.store.{key} must be a Kubernetes name (lower case letters, digits and '-', at most {most}), "
            f"got {value!r}"
        )
    return value


def kube_store_config(raw: dict[str, Any]) -> StoreConfig:
    """``{"type": "kubernetes", "kubeconfig", "context", "namespace", "node", "sweep", "timeout", "deadline"}``."""
    store = StoreConfig("kubernetes")
    for key in ("kubeconfig", "context"):
        value = get(raw, key, "")
        if not isinstance(value, str) or "\0" in value:
            raise _invalid(f"ipam.store.{key} must be a string, got {value!r}")
        setattr(store, key, value)
    if store.kubeconfig and not store.kubeconfig.startswith("/"):
        raise _invalid(f'ipam.store.kubeconfig "{store.kubeconfig}" must be an absolute path')
    store.namespace = _dns_name(raw, "namespace", DEFAULT_KUBE_NAMESPACE, 63)
    node = get(raw, "node")
    if node is None:  # the kubelet's default node name: the host name, lower case
        node = os.environ.get("NODE_NAME") or os.uname().nodename.lower()
    store.node = _dns_name({"node": node}, "node", "", 253)
    sweep = get(raw, "sweep", True)
    if not isinstance(sweep, bool):
        raise _invalid(f"ipam.store.sweep must be true or false, got {sweep!r}")
    store.sweep = sweep
    store.timeout = _seconds(raw, "timeout", 2.0, 60)
    store.deadline = _seconds(raw, "deadline", 10.0, 300)
    return store


def load(config: dict[str, Any], cni_args: dict[str, str], version: str) -> IPAMConfig:
    """The IPAM config of a network config, validated."""
    ipam = ipam_section(config)
    conf = IPAMConfig(config["name"])
    conf.data_dir = data_dir(ipam)
    conf.store = store_config(ipam)
    if len(conf.name.encode()) > MAX_NAME_BYTES:
        raise _invalid(
            f'name "{conf.name[:40]}...": {len(conf.name.encode())} bytes, at most {MAX_NAME_BYTES}',
            f"it names the lease directory in {conf.data_dir}",
        )
    top = fields(config, ("args", "runtimeConfig"))
    runtime = top.get("runtimeConfig")
    runtime = fields(runtime, ("ips", "ipRanges")) if isinstance(runtime, dict) else {}
    conf.requested = _requested_ips(top.get("args"), runtime, cni_args)

    found = fields(ipam, IPAM_KEYS)
    raw_sets: list[tuple[str, Any]] = []
    ip_ranges = runtime.get("ipRanges")
    if ip_ranges:
        if not isinstance(ip_ranges, list):
            raise _invalid(f"runtimeConfig.ipRanges must be a list of range sets, got {ip_ranges!r}")
        raw_sets.extend((f"runtimeConfig.ipRanges[{i}]", rs) for i, rs in enumerate(ip_ranges))
    if found.get("subnet"):
        legacy = {k: found[k] for k in RANGE_KEYS if found.get(k)}
        raw_sets.append(("ipam (subnet)", [legacy]))
    ranges = found.get("ranges")
    if ranges is not None:
        if not isinstance(ranges, list):
            raise _invalid(f"ipam.ranges must be a list of range sets (lists of ranges), got {ranges!r}")
        raw_sets.extend((f"ipam.ranges[{i}]", rs) for i, rs in enumerate(ranges))
    if not raw_sets:
        raise _invalid("no IP ranges specified", 'add "ranges": [[{"subnet": "<network>/<prefix>"}]] to ipam')

    for i, (source, raw) in enumerate(raw_sets):
        try:
            conf.range_sets.append(parse_range_set(raw))
        except RangeError as e:
            # upstream's words first ("invalid range set 0: gateway ... not in network ..."), then where
            where = f"in {source}" + (f", {e.where}" if e.where else "")
            raise _invalid(f"invalid range set {i}: {e}", where) from None
        conf.sources.append(source)
    families = [rs.family for rs in conf.range_sets]
    if (families.count(4) > 1 or families.count(6) > 1) and not versions.at_least(version, "0.3.0"):
        raise _invalid(
            f"CNI version {version} does not support more than 1 address per family",
            "use cniVersion 0.3.0 or later for several range sets of one family",
        )
    for i, a in enumerate(conf.range_sets):
        for j in range(i + 1, len(conf.range_sets)):
            if a.overlaps(conf.range_sets[j]):
                raise _invalid(
                    f"range set {i} overlaps with {j}",
                    f"{conf.sources[i]} ({a}) and {conf.sources[j]} ({conf.range_sets[j]})",
                )
    try:
        conf.exclude = Exclusions.parse(found.get("exclude"))
    except RangeError as e:
        raise _invalid(f"ipam.{e}") from None
    conf.routes = _routes(found.get("routes"))
    resolv = found.get("resolvConf") or ""
    if not isinstance(resolv, str):
        raise _invalid(f"ipam.resolvConf must be a file path, got {resolv!r}")
    conf.resolv_conf = resolv
    return conf
