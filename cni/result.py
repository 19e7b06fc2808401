"""The CNI result: one in-memory model, rendered in and parsed from every spec version's schema.

Rule of membership: everything that depends on which schema a version uses lives in this file.
The model is the 1.1.0 shape (interfaces, ips pointing at interfaces, routes, dns). Rendering to
0.3.x/0.4.0 adds ``ips[].version``; rendering to 0.1.0/0.2.0 keeps the first IPv4 and the first
IPv6 address as ``ip4``/``ip6`` and sorts routes between them by family, and fails with
``cannot convert: no valid IP addresses`` when there is none (libcni's conversion does the same).
The 1.x schema prints as libcni 1.2 and later prints it (upstream's plugins since v1.6.0): the result
goes through a map, so every object's keys are in byte order and an empty ``dns`` is left out; 0.x
results keep Go's field order and print ``"dns": {}``.

Addresses are typed once (cni/ip.py's integers): the allocator's values go to netlink as they are,
and text is read (``parse``, a config) or printed (``render``) only here at the JSON's edge. A
result whose address text can't be read raises AddressError, as reading it anywhere else did.
"""

from __future__ import annotations

from .errors import DECODING_FAILURE, INCOMPATIBLE_VERSION, CNIError
from .ip import format_cidr, format_ip, parse_cidr, parse_ip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# schema name -> versions rendered with it
SCHEMA: dict[str, str] = {
    "0.1.0": "020",
    "0.2.0": "020",
    "0.3.0": "040",
    "0.3.1": "040",
    "0.4.0": "040",
    "1.0.0": "100",
    "1.1.0": "100",
}

# optional keys per object, in Go's field order, for the 1.x schema (the 0.x schemas use a prefix)
_IFACE_KEYS_100 = ("mac", "mtu", "sandbox", "socketPath", "pciID")
_IFACE_KEYS_040 = ("mac", "sandbox")
_ROUTE_KEYS_100 = ("gw", "mtu", "advmss", "priority", "table", "scope")
_ROUTE_KEYS_040 = ("gw",)
_DNS_KEYS = ("nameservers", "domain", "search", "options")


class Interface:
    __slots__ = ("extra", "mac", "name", "sandbox")

    def __init__(self, name: str, mac: str = "", sandbox: str = "", extra: dict[str, Any] | None = None):
        self.name = name
        self.mac = mac
        self.sandbox = sandbox
        self.extra = extra or {}  # mtu, socketPath, pciID (1.1.0)

    def to_dict(self, keys: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        values = {"mac": self.mac, "sandbox": self.sandbox, **self.extra}
        for key in keys:
            if values.get(key):
                out[key] = values[key]
        return out


Address = tuple[int, int]  # (family, value): cni/ip.py's form


class IPConfig:
    """One address of a result, typed: the address (``family`` 4 or 6, ``value``, and ``prefix``, its
    subnet's length) and its ``gateway`` (family, value) or None. Text only at the edges: ``text``
    reads it (JSON, a config), ``address`` and ``gateway_text`` print it."""

    __slots__ = ("family", "gateway", "interface", "prefix", "value")

    def __init__(
        self, family: int, value: int, prefix: int, gateway: Address | None = None, interface: int | None = None
    ) -> None:
        self.family = family
        self.value = value
        self.prefix = prefix
        self.gateway = gateway
        self.interface = interface

    @classmethod
    def text(cls, address: str, gateway: str = "", interface: int | None = None) -> IPConfig:
        """From "10.1.2.3/24" and "10.1.2.1" (AddressError when they are not addresses)."""
        return cls(*parse_cidr(address), parse_ip(gateway) if gateway else None, interface)

    @property
    def address(self) -> str:
        return format_cidr(self.family, self.value, self.prefix)

    @property
    def gateway_text(self) -> str:
        return format_ip(*self.gateway) if self.gateway is not None else ""


class Route:
    """One route of a result, typed: its destination (``family``, ``dst``, ``dst_len``), its ``gw``
    (family, value) or None, and the 1.1.0 keys as given (``extra``). Text at the edges, as IPConfig."""

    __slots__ = ("dst", "dst_len", "extra", "family", "gw")

    def __init__(
        self, family: int, dst: int, dst_len: int, gw: Address | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        self.family = family
        self.dst = dst
        self.dst_len = dst_len
        self.gw = gw
        self.extra = extra or {}  # mtu, advmss, priority, table, scope (1.1.0)

    @classmethod
    def text(cls, dst: str, gw: str = "", extra: dict[str, Any] | None = None) -> Route:
        """From "0.0.0.0/0" and "10.1.2.1" (AddressError when they are not addresses)."""
        return cls(*parse_cidr(dst), parse_ip(gw) if gw else None, extra)

    @property
    def dst_text(self) -> str:
        return format_cidr(self.family, self.dst, self.dst_len)

    @property
    def gw_text(self) -> str:
        return format_ip(*self.gw) if self.gw is not None else ""

    def to_dict(self, keys: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {"dst": self.dst_text}
        values = {"gw": self.gw_text, **self.extra}
        for key in keys:
            value = values.get(key)
            if value or (key == "scope" and value == 0 and "scope" in self.extra):
                out[key] = value
        return out


class Result:
    __slots__ = ("dns", "interfaces", "ips", "routes")

    def __init__(
        self,
        interfaces: list[Interface] | None = None,
        ips: list[IPConfig] | None = None,
        routes: list[Route] | None = None,
        dns: dict[str, Any] | None = None,
    ):
        self.interfaces = interfaces or []
        self.ips = ips or []
        self.routes = routes or []
        self.dns = dns or {}


def _dns(dns: dict[str, Any]) -> dict[str, Any]:
    return {k: dns[k] for k in _DNS_KEYS if dns.get(k)}


def render(result: Result, version: str) -> dict[str, Any]:
    """The result as the dict that version's schema prints."""
    schema = SCHEMA.get(version)
    if schema is None:
        raise CNIError(INCOMPATIBLE_VERSION, "incompatible CNI versions", f'unknown version "{version}"')
    out: dict[str, Any] = {"cniVersion": version}
    if schema == "020":
        ip4 = next((ip for ip in result.ips if ip.family == 4), None)
        ip6 = next((ip for ip in result.ips if ip.family == 6), None)
        if ip4 is None and ip6 is None:
            raise CNIError(
                INCOMPATIBLE_VERSION,
                "cannot convert: no valid IP addresses",
                f"a result without addresses can't be expressed in CNI {version}; use 0.3.0 or later",
            )
        for key, ipc in (("ip4", ip4), ("ip6", ip6)):
            if ipc is None:
                continue
            entry: dict[str, Any] = {"ip": ipc.address}
            if ipc.gateway is not None:
                entry["gateway"] = ipc.gateway_text
            routes = [r.to_dict(_ROUTE_KEYS_040) for r in result.routes if r.family == ipc.family]
            if routes:
                entry["routes"] = routes
            out[key] = entry
        out["dns"] = _dns(result.dns)
        return out

    iface_keys, route_keys = (
        (_IFACE_KEYS_100, _ROUTE_KEYS_100) if schema == "100" else (_IFACE_KEYS_040, _ROUTE_KEYS_040)
    )
    if result.interfaces:
        out["interfaces"] = [i.to_dict(iface_keys) for i in result.interfaces]
    if result.ips:
        ips = []
        for ipc in result.ips:
            entry = {"version": str(ipc.family)} if schema == "040" else {}
            if ipc.interface is not None:
                entry["interface"] = ipc.interface
            entry["address"] = ipc.address
            if ipc.gateway is not None:
                entry["gateway"] = ipc.gateway_text
            ips.append(entry)
        out["ips"] = ips
    if result.routes:
        out["routes"] = [r.to_dict(route_keys) for r in result.routes]
    dns = _dns(result.dns)
    if schema == "040":
        out["dns"] = dns
        return out
    if dns:
        out["dns"] = dns
    ordered: dict[str, Any] = _by_key(out)
    return ordered


def _by_key(obj: Any) -> Any:
    """obj with the keys of every object in byte order (Go's encoding of a map)."""
    if isinstance(obj, dict):
        return {k: _by_key(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [_by_key(v) for v in obj]
    return obj


def _bad(what: str) -> CNIError:
    return CNIError(DECODING_FAILURE, f"failed to parse result: {what}")


def _str(obj: dict[str, Any], key: str, where: str, required: bool = False) -> str:
    value = obj.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str) or (required and not value):
        raise _bad(f"{where}.{key} must be a {'non-empty ' if required else ''}string, got {value!r}")
    return value


def _route(obj: Any, where: str) -> Route:
    if not isinstance(obj, dict):
        raise _bad(f"{where} must be an object")
    extra = {k: obj[k] for k in _ROUTE_KEYS_100[1:] if k in obj}
    return Route.text(_str(obj, "dst", where, required=True), _str(obj, "gw", where), extra)


def parse(data: Any, version: str | None = None) -> Result:
    """A result dict of any version (a plugin's output, a prevResult) as the model.

    ``version`` is used when the dict carries no ``cniVersion`` (libcni treats it as the config's).
    """
    if not isinstance(data, dict):
        raise _bad("a result must be a JSON object")
    version = data.get("cniVersion") or version or "0.1.0"
    schema = SCHEMA.get(version) if isinstance(version, str) else None
    if schema is None:
        raise CNIError(INCOMPATIBLE_VERSION, "incompatible CNI versions", f"result version {version!r}")
    dns = data.get("dns") or {}
    if not isinstance(dns, dict):
        raise _bad("dns must be an object")
    result = Result(dns=dns)
    if schema == "020":
        for key in ("ip4", "ip6"):
            entry = data.get(key)
            if entry is None:
                continue
            if not isinstance(entry, dict):
                raise _bad(f"{key} must be an object")
            result.ips.append(IPConfig.text(_str(entry, "ip", key, True), _str(entry, "gateway", key)))
            for i, r in enumerate(entry.get("routes") or []):
                result.routes.append(_route(r, f"{key}.routes[{i}]"))
        return result
    for i, obj in enumerate(data.get("interfaces") or []):
        where = f"interfaces[{i}]"
        if not isinstance(obj, dict):
            raise _bad(f"{where} must be an object")
        extra = {k: obj[k] for k in ("mtu", "socketPath", "pciID") if k in obj}
        result.interfaces.append(
            Interface(_str(obj, "name", where, True), _str(obj, "mac", where), _str(obj, "sandbox", where), extra)
        )
    for i, obj in enumerate(data.get("ips") or []):
        where = f"ips[{i}]"
        if not isinstance(obj, dict):
            raise _bad(f"{where} must be an object")
        index = obj.get("interface")
        if index is not None and (type(index) is not int or index < 0):
            raise _bad(f"{where}.interface must be a non-negative integer, got {index!r}")
        result.ips.append(IPConfig.text(_str(obj, "address", where, True), _str(obj, "gateway", where), index))
    for i, obj in enumerate(data.get("routes") or []):
        result.routes.append(_route(obj, f"routes[{i}]"))
    return result
