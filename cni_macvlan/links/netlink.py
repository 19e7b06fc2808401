"""A small rtnetlink client: the link, address and route requests the plugins make, and setns.

Rule of membership: every byte that goes to or comes from the kernel's routing socket is encoded
and decoded here, and nothing here decides anything. Built on ``_socket`` and ``struct`` only:
pyroute2 costs about 100 ms of imports per exec (docs/design.md, "What stays off the exec path"),
this module nothing measurable. pyroute2 stays in the tests (tests/support/kernel.py), where it reads back independently
the kernel state this module leaves.

A Netlink object is bound to the network namespace its process was in when it was opened; open one
before and one after ``setns`` to work in two namespaces at once.
"""

from __future__ import annotations

import os
from _socket import socket
from struct import Struct

# message types
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
# flags
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND = 0x200, 0x400, 0x800
# link attributes
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_OPERSTATE = 1, 3, 4, 5, 16
IFLA_LINKINFO, IFLA_NET_NS_FD = 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_MACVLAN_MODE, IFLA_MACVLAN_BC_QUEUE_LEN = 1, 7
IFLA_IPVLAN_MODE, IFLA_IPVLAN_FLAGS = 1, 2
IFLA_VLAN_ID = 1
IFF_UP, IFF_LOOPBACK = 0x1, 0x8
IF_OPER_UP = 6
# address attributes and flags
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 4, 8
IFA_F_DADFAILED, IFA_F_TENTATIVE = 0x08, 0x40
# route attributes
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_METRICS, RTA_TABLE = 1, 4, 5, 6, 8, 15
RTAX_MTU, RTAX_ADVMSS = 2, 8
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253

AF_UNSPEC, AF_INET, AF_INET6 = 0, 2, 10
FAMILY = {4: AF_INET, 6: AF_INET6}
CLONE_NEWNET = 0x40000000

MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8}
MACVLAN_MODE_NAMES = {v: k for k, v in MACVLAN_MODES.items()}
IPVLAN_MODES = {"l2": 0, "l3": 1, "l3s": 2}
IPVLAN_MODE_NAMES = {v: k for k, v in IPVLAN_MODES.items()}
IPVLAN_FLAGS = {"bridge": 0, "private": 1, "vepa": 2}
IPVLAN_FLAG_NAMES = {v: k for k, v in IPVLAN_FLAGS.items()}
_U16 = Struct("=H")

_HDR = Struct("=IHHII")
_ATTR = Struct("=HH")
_IFINFO = Struct("=BxHiII")
_IFADDR = Struct("=BBBBi")
_RTMSG = Struct("=BBBBBBBBI")
_U32 = Struct("=I")
_I32 = Struct("=i")


class NetlinkError(OSError):
    """The kernel refused a request; ``errno`` is set, ``strerror`` reads like ip(8)'s messages."""


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return _ATTR.pack(length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, _U32.pack(value))


def _str(kind: int, value: str) -> bytes:
    return _attr(kind, value.encode() + b"\0")


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    attrs: dict[int, bytes] = {}
    end = len(data)
    while offset + 4 <= end:
        length, kind = _ATTR.unpack_from(data, offset)
        if length < 4:
            break
        attrs[kind & 0x3FFF] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return attrs


def mac_to_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def mac_to_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


class Link:
    """What RTM_GETLINK tells about one interface."""

    __slots__ = ("flags", "index", "ipvlan_flag", "kind", "link", "mac", "mode", "mtu", "name", "operstate", "vlan_id")

    def __init__(self, index: int, flags: int, attrs: dict[int, bytes]) -> None:
        self.index = index
        self.flags = flags
        self.name = attrs.get(IFLA_IFNAME, b"\0")[:-1].decode()
        self.mac = mac_to_str(attrs[IFLA_ADDRESS]) if IFLA_ADDRESS in attrs else ""
        self.mtu = _U32.unpack(attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0
        self.link = _U32.unpack(attrs[IFLA_LINK])[0] if IFLA_LINK in attrs else 0  # parent index
        self.operstate = attrs[IFLA_OPERSTATE][0] if IFLA_OPERSTATE in attrs else 0  # RFC 2863: 6 is up
        self.kind = ""
        self.mode = ""  # a macvlan's or an ipvlan's
        self.ipvlan_flag = ""
        self.vlan_id = 0
        if IFLA_LINKINFO in attrs:
            info = parse_attrs(attrs[IFLA_LINKINFO])
            self.kind = info.get(IFLA_INFO_KIND, b"\0").rstrip(b"\0").decode()
            data = parse_attrs(info.get(IFLA_INFO_DATA, b""))
            if self.kind in ("macvlan", "macvtap") and IFLA_MACVLAN_MODE in data:
                self.mode = MACVLAN_MODE_NAMES.get(_U32.unpack(data[IFLA_MACVLAN_MODE])[0], "unknown")
            if self.kind == "ipvlan":
                self.mode = IPVLAN_MODE_NAMES.get(_U16.unpack(data.get(IFLA_IPVLAN_MODE, b"\0\0")[:2])[0], "unknown")
                self.ipvlan_flag = IPVLAN_FLAG_NAMES.get(_U16.unpack(data.get(IFLA_IPVLAN_FLAGS, b"\0\0")[:2])[0], "?")
            if self.kind == "vlan" and IFLA_VLAN_ID in data:
                self.vlan_id = int.from_bytes(data[IFLA_VLAN_ID][:2], "little")

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


class NewLink:
    """A link to create: its kind, its IFLA_INFO_DATA, the MTU and MAC when set (0, "": the kernel's),
    and its mode's name (for messages)."""

    __slots__ = ("data", "kind", "mac", "mode", "mtu")

    def __init__(self, kind: str, data: bytes = b"", mtu: int = 0, mac: str = "", mode: str = "") -> None:
        self.kind = kind
        self.data = data
        self.mtu = mtu
        self.mac = mac
        self.mode = mode


def macvlan(mode: str, mtu: int = 0, mac: str = "", bcqueuelen: int = 0) -> NewLink:
    data = _u32(IFLA_MACVLAN_MODE, MACVLAN_MODES[mode])
    if bcqueuelen:
        data += _u32(IFLA_MACVLAN_BC_QUEUE_LEN, bcqueuelen)
    # no txqueuelen: the kernel's default, as upstream since v1.6.0 (before, its netlink library sent 0)
    return NewLink("macvlan", data, mtu, mac, mode)


def ipvlan(mode: str, flag: str, mtu: int = 0) -> NewLink:
    data = _attr(IFLA_IPVLAN_MODE, _U16.pack(IPVLAN_MODES[mode])) + _attr(
        IFLA_IPVLAN_FLAGS, _U16.pack(IPVLAN_FLAGS[flag])
    )
    return NewLink("ipvlan", data, mtu, mode=mode)


class Addr:
    __slots__ = ("family", "flags", "prefix", "value")

    def __init__(self, family: int, prefix: int, flags: int, value: int) -> None:
        self.family = family  # 4 or 6
        self.prefix = prefix
        self.flags = flags
        self.value = value


class RouteEntry:
    __slots__ = ("dst", "dst_len", "family", "gateway", "oif", "table")

    def __init__(self, family: int, dst: int, dst_len: int, gateway: int | None, oif: int, table: int) -> None:
        self.family = family
        self.dst = dst
        self.dst_len = dst_len
        self.gateway = gateway
        self.oif = oif
        self.table = table


def _ipbytes(family: int, value: int) -> bytes:
    return value.to_bytes(4 if family == 4 else 16, "big")


class Netlink:
    """One NETLINK_ROUTE socket in the namespace the process is in now."""

    def __init__(self) -> None:
        self.sock = socket(16, 3, 0)  # AF_NETLINK, SOCK_RAW, NETLINK_ROUTE
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, kind: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        """Send one request; return the (type, payload) replies; raise NetlinkError on a NACK."""
        self.seq += 1
        seq = self.seq
        self.sock.send(_HDR.pack(16 + len(body), kind, flags | NLM_F_REQUEST, seq, 0) + body)
        replies: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, mtype, mflags, mseq, _ = _HDR.unpack_from(data, offset)
                payload = data[offset + 16 : offset + length]
                offset += (length + 3) & ~3
                if mseq != seq:
                    continue
                if mtype == NLMSG_ERROR:
                    error = -_I32.unpack_from(payload)[0]
                    if error:
                        raise NetlinkError(error, os.strerror(error))
                    return replies
                if mtype == NLMSG_DONE:
                    return replies
                replies.append((mtype, payload))
                if not mflags & NLM_F_MULTI and not flags & NLM_F_ACK:
                    return replies

    # ---- links ----

    def get_link(self, name: str | None = None, index: int = 0) -> Link | None:
        """The link of that name (or index); None if there is none."""
        body = _IFINFO.pack(AF_UNSPEC, 0, index, 0, 0) + (_str(IFLA_IFNAME, name) if name else b"")
        try:
            replies = self._request(RTM_GETLINK, 0, body)
        except NetlinkError as e:
            if e.errno in (19, 22):  # ENODEV; EINVAL for a name the kernel can't hold
                return None
            raise
        for mtype, payload in replies:
            if mtype == RTM_NEWLINK:
                _, _, idx, flags, _ = _IFINFO.unpack_from(payload)
                return Link(idx, flags, parse_attrs(payload, _IFINFO.size))
        return None

    def create_link(self, name: str, new: NewLink, parent: int = 0, netns_fd: int = -1, index: int = 0) -> None:
        """RTM_NEWLINK create; with ``netns_fd`` the link is born in that namespace (no move); with
        ``index``, under that ifindex (free, or the kernel refuses)."""
        attrs = _str(IFLA_IFNAME, name)
        if parent:
            attrs += _u32(IFLA_LINK, parent)
        if netns_fd >= 0:
            attrs += _u32(IFLA_NET_NS_FD, netns_fd)
        if new.mtu:
            attrs += _u32(IFLA_MTU, new.mtu)
        if new.mac:
            attrs += _attr(IFLA_ADDRESS, mac_to_bytes(new.mac))
        info = _str(IFLA_INFO_KIND, new.kind) + (_attr(IFLA_INFO_DATA, new.data) if new.data else b"")
        attrs += _attr(IFLA_LINKINFO, info)
        body = _IFINFO.pack(AF_UNSPEC, 0, index, 0, 0) + attrs
        self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, body)

    def create_vlan(self, name: str, parent: int, vlan_id: int, index: int = 0) -> None:
        self.create_link(name, NewLink("vlan", _attr(IFLA_VLAN_ID, vlan_id.to_bytes(2, "little"))), parent, index=index)

    def create_dummy(self, name: str, index: int = 0) -> None:
        self.create_link(name, NewLink("dummy"), index=index)

    def rename(self, index: int, name: str) -> None:
        self._request(RTM_NEWLINK, NLM_F_ACK, _IFINFO.pack(AF_UNSPEC, 0, index, 0, 0) + _str(IFLA_IFNAME, name))

    def set_up(self, index: int) -> None:
        self._request(RTM_NEWLINK, NLM_F_ACK, _IFINFO.pack(AF_UNSPEC, 0, index, IFF_UP, IFF_UP))

    def delete_link(self, index: int) -> None:
        self._request(RTM_DELLINK, NLM_F_ACK, _IFINFO.pack(AF_UNSPEC, 0, index, 0, 0))

    # ---- addresses ----

    def add_address(self, index: int, family: int, value: int, prefix: int) -> None:
        raw = _ipbytes(family, value)
        attrs = _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw)
        if family == 4 and prefix < 31:
            attrs += _attr(IFA_BROADCAST, _ipbytes(4, value | ((1 << (32 - prefix)) - 1)))
        body = _IFADDR.pack(FAMILY[family], prefix, 0, RT_SCOPE_UNIVERSE, index) + attrs
        self._request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, body)

    def addresses(self, index: int = 0) -> list[Addr]:
        out = []
        for mtype, payload in self._request(RTM_GETADDR, NLM_F_DUMP, _IFADDR.pack(AF_UNSPEC, 0, 0, 0, 0)):
            if mtype != RTM_NEWADDR:
                continue
            fam, prefix, flags, _, idx = _IFADDR.unpack_from(payload)
            if index and idx != index:
                continue
            attrs = parse_attrs(payload, _IFADDR.size)
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw is None or fam not in (AF_INET, AF_INET6):
                continue
            if IFA_FLAGS in attrs:
                flags = _U32.unpack(attrs[IFA_FLAGS])[0]
            out.append(Addr(4 if fam == AF_INET else 6, prefix, flags, int.from_bytes(raw, "big")))
        return out

    # ---- routes ----

    def add_route(
        self,
        index: int,
        family: int,
        dst: int,
        dst_len: int,
        gateway: int | None,
        priority: int = 0,
        table: int = 0,
        scope: int | None = None,
        mtu: int = 0,
        advmss: int = 0,
    ) -> None:
        if scope is None:
            scope = RT_SCOPE_UNIVERSE if gateway is not None else RT_SCOPE_LINK
        tbl = table if 0 < table < 256 else RT_TABLE_MAIN
        body = _RTMSG.pack(FAMILY[family], dst_len, 0, 0, tbl, RTPROT_BOOT, scope, RTN_UNICAST, 0)
        body += _attr(RTA_DST, _ipbytes(family, dst)) + _u32(RTA_OIF, index)
        if gateway is not None:
            body += _attr(RTA_GATEWAY, _ipbytes(family, gateway))
        if priority:
            body += _u32(RTA_PRIORITY, priority)
        if table >= 256:
            body += _u32(RTA_TABLE, table)
        metrics = (_u32(RTAX_MTU, mtu) if mtu else b"") + (_u32(RTAX_ADVMSS, advmss) if advmss else b"")
        if metrics:
            body += _attr(RTA_METRICS, metrics)
        # append, as upstream's RouteAddEcmp: a second interface's default route is added beside the first
        self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, body)

    def routes(self, family: int = 0) -> list[RouteEntry]:
        """Every route of ``family`` (4 or 6; 0: both, IPv4's first, in the kernel's order), of every table."""
        out = []
        body = _RTMSG.pack(FAMILY.get(family, AF_UNSPEC), 0, 0, 0, 0, 0, 0, 0, 0)
        for mtype, payload in self._request(RTM_GETROUTE, NLM_F_DUMP, body):
            if mtype != RTM_NEWROUTE:
                continue
            fam, dst_len, _, _, table, _, _, _, _ = _RTMSG.unpack_from(payload)
            if fam not in (AF_INET, AF_INET6):
                continue
            attrs = parse_attrs(payload, _RTMSG.size)
            dst = int.from_bytes(attrs[RTA_DST], "big") if RTA_DST in attrs else 0
            gw = int.from_bytes(attrs[RTA_GATEWAY], "big") if RTA_GATEWAY in attrs else None
            oif = _U32.unpack(attrs[RTA_OIF])[0] if RTA_OIF in attrs else 0
            if RTA_TABLE in attrs:
                table = _U32.unpack(attrs[RTA_TABLE])[0]
            out.append(RouteEntry(4 if fam == AF_INET else 6, dst, dst_len, gw, oif, table))
        return out

    def default_route_link(self) -> Link | None:
        """The interface of the first default route (0.0.0.0/0 or ::/0) of the main table, of either
        family (IPv4's are listed first), as upstream's plugins pick a master; None when there is none."""
        for route in self.routes():
            if route.table == RT_TABLE_MAIN and route.dst_len == 0 and route.dst == 0 and route.oif:
                link = self.get_link(index=route.oif)
                if link is not None:
                    return link
        return None


# ---- namespaces ----

if hasattr(os, "setns"):  # Python 3.12+

    def setns(fd: int) -> None:
        os.setns(fd, CLONE_NEWNET)  # type: ignore[attr-defined,unused-ignore]

else:  # pragma: no cover - Python 3.11
    try:  # built into the fast layout's launcher (launcher/cni-macvlan.c)
        from _cni_launcher import setns as _launcher_setns  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # plain 3.11: ctypes costs about 2.5 ms more per exec
        _launcher_setns = None

    def setns(fd: int) -> None:
        if _launcher_setns is not None:
            _launcher_setns(fd, CLONE_NEWNET)
            return
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))


class NetNS:
    """Enter a network namespace for a block and come back to the one we were in (per thread: setns
    moves the calling thread only)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.home = -1

    def __enter__(self) -> NetNS:
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(self.fd)
        except BaseException:
            os.close(self.home)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            setns(self.home)
        finally:
            os.close(self.home)


def write_sysctl(path: str, value: str) -> None:
    """Write /proc/sys/<path> in the current namespace."""
    fd = os.open("/proc/sys/" + path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read_sysctl(path: str) -> str:
    """/proc/sys/<path> of the current namespace, stripped."""
    fd = os.open("/proc/sys/" + path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 4096).decode().strip()
    finally:
        os.close(fd)
