"""The container side: the macvlan link in the container's netns, its addresses, routes and checks.

Rule of membership: everything done inside a container's network namespace lives here. Links are
created from the node's namespace straight into the container's (IFLA_NET_NS_FD on the create
request: moving a link afterwards costs about 16 ms of kernel time), under a temporary name, then
renamed inside. Each function takes the netlink sockets it needs; the plugin decides the order.
"""

from __future__ import annotations

import os
import time

from .cni.errors import INTERNAL, INVALID_ENVIRONMENT, CNIError
from .cni.ip import format_ip, parse_cidr, parse_ip
from .cni.result import Result
from .netlink import Link, Netlink, NetlinkError, NetNS, RouteEntry, setns, write_sysctl

DAD_TIMEOUT = 5.0
DAD_POLL = 0.05


def open_netns(path: str) -> int:
    """An fd of the namespace at CNI_NETNS, checked to really be a network namespace."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise CNIError(
            INVALID_ENVIRONMENT, f'CNI_NETNS "{path}": cannot open the network namespace: {e.strerror}'
        ) from None
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd)  # EINVAL when the file is not a network namespace
        setns(home)
    except OSError:
        os.close(fd)
        raise CNIError(INVALID_ENVIRONMENT, f'CNI_NETNS "{path}" is not a network namespace') from None
    finally:
        os.close(home)
    return fd


def temporary_name() -> str:
    # a random name: the kernel may refuse a name that collides with one on the node (upstream's note)
    return "mv" + os.urandom(5).hex()


def create_macvlan(
    creator: Netlink,
    container: Netlink,
    netns_fd: int,
    parent: Link,
    ifname: str,
    mode: str,
    mtu: int,
    mac: str,
    bcqueuelen: int,
    in_container: bool,
) -> Link:
    """Create the macvlan on ``parent`` inside the container and name it ``ifname``.

    ``creator`` is the socket in the parent's namespace (the container's own when the parent lives
    there); ``container`` must be a socket in the container's namespace.
    """
    tmp = temporary_name()
    try:
        creator.create_macvlan(
            tmp, parent.index, mode, -1 if in_container else netns_fd, mtu=mtu, mac=mac, bcqueuelen=bcqueuelen
        )
    except NetlinkError as e:
        hint = _create_hint(e.errno or 0, parent, mode)
        msg = f"failed to create macvlan: {e.strerror}"
        raise CNIError(INTERNAL, f"{msg}: {hint}" if hint else msg) from None
    link = container.get_link(tmp)
    if link is None:
        raise CNIError(INTERNAL, f"failed to create macvlan: {tmp} did not appear in the container")
    if container.get_link(ifname) is not None:
        container.delete_link(link.index)
        raise CNIError(
            INTERNAL,
            f'failed to rename macvlan to "{ifname}": file exists',
            f"the container already has an interface named {ifname}",
        )
    try:
        container.rename(link.index, ifname)
    except NetlinkError as e:
        container.delete_link(link.index)
        raise CNIError(INTERNAL, f'failed to rename macvlan to "{ifname}": {e.strerror}') from None
    renamed = container.get_link(index=link.index)
    assert renamed is not None
    return renamed


def _create_hint(errno: int, parent: Link, mode: str) -> str:
    """What the kernel's bare errno means here (the config was validated before: MTU, MAC, mode)."""
    if errno == 22 and mode == "passthru":  # EINVAL: the parent already has macvlan links
        return (
            f'master "{parent.name}" already carries macvlan links (of this or another network): '
            "passthru needs the parent to itself; use a free parent, or mode bridge"
        )
    if errno == 22:  # EINVAL: a passthru macvlan holds the parent
        return (
            f'master "{parent.name}" is held by a passthru macvlan (of this or another network), '
            "which allows no other link on it; use another parent"
        )
    if errno == 16:  # EBUSY
        return f'master "{parent.name}" is in use by a link that excludes macvlan (ipvlan, or a bridge port)'
    if errno == 99:  # EADDRNOTAVAIL
        return "the MAC address is not usable"
    return ""


def delete_link(netns_fd: int, ifname: str) -> bool:
    """Delete ``ifname`` in the namespace; False if it was not there."""
    with NetNS(netns_fd), Netlink() as nl:
        link = nl.get_link(ifname)
        if link is None:
            return False
        try:
            nl.delete_link(link.index)
        except NetlinkError as e:
            if e.errno != 19:  # ENODEV: gone meanwhile
                raise
        return True


def configure(nl: Netlink, link: Link, result: Result) -> None:
    """Addresses, sysctls, up, DAD wait (only with an IPv6 gateway) and routes; in the container's netns."""
    ifname = link.name
    has_v6 = any(":" in ip.address for ip in result.ips)
    _sysctl(f"net/ipv4/conf/{ifname}/arp_notify", "1")
    if has_v6:
        _sysctl(f"net/ipv6/conf/{ifname}/ndisc_notify", "1")
        for dev in ("lo", ifname):
            _sysctl(f"net/ipv6/conf/{dev}/disable_ipv6", "0")
        _sysctl(f"net/ipv6/conf/{ifname}/keep_addr_on_down", "1")
    gateways: dict[int, int] = {}
    for ipc in result.ips:
        family, value, prefix = parse_cidr(ipc.address)
        try:
            nl.add_address(link.index, family, value, prefix)
        except NetlinkError as e:
            raise CNIError(INTERNAL, f'failed to add IP addr {ipc.address} to "{ifname}": {e.strerror}') from None
        if ipc.gateway and family not in gateways:
            gateways[family] = parse_ip(ipc.gateway)[1]
    nl.set_up(link.index)
    if 6 in gateways:
        _settle_addresses(nl, link)
    for route in result.routes:
        family, dst, dst_len = parse_cidr(route.dst)
        gw = parse_ip(route.gw)[1] if route.gw else gateways.get(family)
        extra = route.extra
        try:
            nl.add_route(
                link.index,
                family,
                dst,
                dst_len,
                gw,
                priority=int(extra.get("priority") or 0),
                table=int(extra.get("table") or 0),
                scope=extra.get("scope"),
                mtu=int(extra.get("mtu") or 0),
                advmss=int(extra.get("advmss") or 0),
            )
        except NetlinkError as e:
            if e.errno == 17:  # EEXIST: this very route exists (the kernel made it for the address)
                continue
            via = format_ip(family, gw) if gw is not None else "<nil>"
            msg = f"failed to add route '{route.dst} via {via} dev {ifname}': {e.strerror}"
            raise CNIError(INTERNAL, msg) from None


def _sysctl(path: str, value: str) -> None:
    try:
        write_sysctl(path, value)
    except OSError:
        pass  # as upstream: a missing knob (IPv6 disabled in the kernel) is not fatal


def _settle_addresses(nl: Netlink, link: Link) -> None:
    """Wait until IPv6 duplicate address detection is over (5 s at most), as upstream does."""
    deadline = time.monotonic() + DAD_TIMEOUT
    while True:
        tentative = False
        for addr in nl.addresses(link.index):
            if addr.flags & 0x08:  # IFA_F_DADFAILED
                raise CNIError(
                    INTERNAL, f"link {link.name} has address {format_ip(addr.family, addr.value)} in DADFAILED state"
                )
            if addr.flags & 0x40:  # IFA_F_TENTATIVE
                tentative = True
        if not tentative:
            return
        if time.monotonic() > deadline:
            raise CNIError(INTERNAL, f"link {link.name} still has tentative addresses after {int(DAD_TIMEOUT)} seconds")
        time.sleep(DAD_POLL)


# ---- CHECK ----


def check_interface(nl: Netlink, ifname: str, mode: str, mac: str) -> Link:
    link = nl.get_link(ifname)
    if link is None:
        raise CNIError(INTERNAL, f"Container Interface name in prevResult: {ifname} not found")
    if link.kind != "macvlan":
        raise CNIError(INTERNAL, f"error: Container interface {ifname} not of type macvlan")
    if link.mode != mode:
        raise CNIError(INTERNAL, f"container macvlan mode {link.mode} does not match expected value: {mode}")
    if mac and link.mac != mac.lower():
        raise CNIError(INTERNAL, f"interface {ifname} Mac {mac} doesn't match container Mac: {link.mac}")
    return link


def check_addresses(nl: Netlink, link: Link, result: Result) -> None:
    have = {(a.family, a.value, a.prefix) for a in nl.addresses(link.index)}
    for ipc in result.ips:
        if ipc.interface is not None and ipc.interface != 0:
            continue
        if parse_cidr(ipc.address) not in have:
            raise CNIError(INTERNAL, f"Failed to match addr {ipc.address} on interface {link.name}")


def check_routes(nl: Netlink, link: Link, result: Result) -> None:
    tables: dict[int, list[RouteEntry]] = {}  # one dump per family, not one per route
    for route in result.routes:
        family, dst, dst_len = parse_cidr(route.dst)
        gw = parse_ip(route.gw)[1] if route.gw else None
        if family not in tables:
            tables[family] = nl.routes(family)
        found = any(
            r.dst == dst and r.dst_len == dst_len and r.oif == link.index and (gw is None or r.gateway == gw)
            for r in tables[family]
        )
        if not found:
            via = f" via {route.gw}" if route.gw else ""
            raise CNIError(INTERNAL, f"Failed to match route {route.dst}{via} on interface {link.name}")
