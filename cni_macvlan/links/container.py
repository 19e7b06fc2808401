"""The container side: the link in the container's network namespace, its addresses, routes and checks.

Rule of membership: everything done inside a container's network namespace lives here, and nothing
else enters one. A ``Container`` is opened once per verb: it proves CNI_NETNS is a network namespace
and opens a netlink socket inside it (a socket stays bound to the namespace it was opened in), so
its work needs no further entering but for the per-interface sysctls of ``configure``. Links are
created from the parent's namespace straight into the container's (IFLA_NET_NS_FD on the create
request: moving a link afterwards costs about 16 ms of kernel time), under a temporary name, then
renamed inside.
"""

from __future__ import annotations

import errno
import os
import time

from cni.errors import INTERNAL, INVALID_CONFIG, INVALID_ENVIRONMENT, CNIError
from cni.ip import format_ip
from cni.result import Result

from .netlink import (
    IF_OPER_UP,
    IFA_F_DADFAILED,
    IFA_F_TENTATIVE,
    Link,
    Netlink,
    NetlinkError,
    NetNS,
    NewLink,
    RouteEntry,
    read_sysctl,
    write_sysctl,
)

DAD_TIMEOUT = 5.0
DAD_POLL = 0.05


def temporary_name() -> str:
    # a random name: the kernel may refuse a name that collides with one on the node (upstream's note)
    return "mv" + os.urandom(5).hex()


class Container:
    """The network namespace at CNI_NETNS, for one verb: ``fd`` and ``nl``, a netlink socket in it.
    Raises CNIError (code 4) when the path can't be opened or is no network namespace."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise CNIError(
                INVALID_ENVIRONMENT, f'CNI_NETNS "{path}": cannot open the network namespace: {e.strerror}'
            ) from None
        try:
            with NetNS(self.fd):  # EINVAL when the file is not a network namespace
                self.nl = Netlink()
        except OSError:
            os.close(self.fd)
            raise CNIError(INVALID_ENVIRONMENT, f'CNI_NETNS "{path}" is not a network namespace') from None

    def close(self) -> None:
        self.nl.close()
        os.close(self.fd)

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- ADD ----

    def master(self, name: str) -> Link:
        """The parent for linkInContainer: an interface of the container's own; with ``name`` empty, the
        interface of the container's first default route of either family (upstream's rule)."""
        if not name:
            link = self.nl.default_route_link()
            if link is None:
                raise CNIError(
                    INVALID_CONFIG,
                    "no default route interface found",
                    "master is omitted and linkInContainer is set, but the container's namespace has no default "
                    'route: name the parent in "master"',
                )
            return link
        link = self.nl.get_link(name)
        if link is None:
            raise CNIError(INVALID_CONFIG, f'master "{name}" not found in the container\'s namespace', 'fix "master"')
        return link

    def create_link(self, creator: Netlink | None, parent: Link, ifname: str, new: NewLink) -> Link:
        """The link ``new`` on ``parent``, inside the container, named ``ifname``: one RTM_NEWLINK from
        ``creator`` (a socket in the parent's namespace, the node's; None when the parent is the
        container's own) under a temporary name, then renamed here."""
        tmp, kind = temporary_name(), new.kind
        try:
            (creator or self.nl).create_link(tmp, new, parent.index, -1 if creator is None else self.fd)
        except NetlinkError as e:
            hint = _create_hint(kind, e.errno or 0, parent, new.mode)
            msg = f"failed to create {kind}: {e.strerror}"
            raise CNIError(INTERNAL, f"{msg}: {hint}" if hint else msg) from None
        link = self.nl.get_link(tmp)
        if link is None:
            raise CNIError(INTERNAL, f"failed to create {kind}: {tmp} did not appear in the container")
        if self.nl.get_link(ifname) is not None:
            self.nl.delete_link(link.index)
            raise CNIError(
                INTERNAL,
                f'failed to rename {kind} to "{ifname}": file exists',
                f"the container already has an interface named {ifname}",
            )
        try:
            self.nl.rename(link.index, ifname)
        except NetlinkError as e:
            self.nl.delete_link(link.index)
            raise CNIError(INTERNAL, f'failed to rename {kind} to "{ifname}": {e.strerror}') from None
        renamed = self.nl.get_link(index=link.index)
        assert renamed is not None
        return renamed

    def set_up(self, link: Link) -> None:
        self.nl.set_up(link.index)

    def configure(self, link: Link, result: Result) -> None:
        """Sysctls, addresses, up, DAD wait (only with an IPv6 gateway) and routes, as upstream's
        ipam.ConfigureIface and the sysctls its macvlan and ipvlan set before it."""
        ifname = link.name
        has_v6 = any(ip.family == 6 for ip in result.ips)
        with NetNS(self.fd):  # /proc/sys/net is the namespace of whoever opens it
            _sysctl(f"net/ipv4/conf/{ifname}/arp_notify", "1")
            _sysctl(f"net/ipv6/conf/{ifname}/ndisc_notify", "1")
            if has_v6:
                _enable_ipv6(ifname)
        gateways: dict[int, int] = {}
        for ipc in result.ips:
            try:
                self.nl.add_address(link.index, ipc.family, ipc.value, ipc.prefix)
            except NetlinkError as e:
                raise CNIError(INTERNAL, f'failed to add IP addr {ipc.address} to "{ifname}": {e.strerror}') from None
            if ipc.gateway is not None and ipc.family not in gateways:
                gateways[ipc.family] = ipc.gateway[1]
        self.nl.set_up(link.index)
        if 6 in gateways:
            try:
                self._settle_addresses(link)
            except CNIError as e:
                e.msg = f'failed to settle addresses for "{ifname}": {e.msg}'
                raise
        for route in result.routes:
            family = route.family
            gw = route.gw[1] if route.gw is not None else gateways.get(family)
            extra = route.extra
            try:
                self.nl.add_route(
                    link.index,
                    family,
                    route.dst,
                    route.dst_len,
                    gw,
                    priority=int(extra.get("priority") or 0),
                    table=int(extra.get("table") or 0),
                    scope=extra.get("scope"),
                    mtu=int(extra.get("mtu") or 0),
                    advmss=int(extra.get("advmss") or 0),
                )
            except NetlinkError as e:
                if e.errno == errno.EEXIST:  # this very route exists (the kernel made it for the address)
                    continue
                via = format_ip(family, gw) if gw is not None else "<nil>"
                msg = f"failed to add route '{route.dst_text} via {via} dev {ifname}': {e.strerror}"
                raise CNIError(INTERNAL, msg) from None

    def _settle_addresses(self, link: Link) -> None:
        """Wait until IPv6 duplicate address detection is over (5 s at most), as upstream does; a link
        that is not up when the time is over (no carrier: DAD can't run) is no failure (upstream v1.9.0)."""
        deadline = time.monotonic() + DAD_TIMEOUT
        while True:
            tentative = False
            for addr in self.nl.addresses(link.index):
                if addr.flags & IFA_F_DADFAILED:
                    raise CNIError(
                        INTERNAL,
                        f"link {link.name} has address {format_ip(addr.family, addr.value)} in DADFAILED state",
                    )
                if addr.flags & IFA_F_TENTATIVE:
                    tentative = True
            if not tentative:
                return
            if time.monotonic() > deadline:
                now = self.nl.get_link(index=link.index)
                if now is not None and now.operstate != IF_OPER_UP:
                    return
                raise CNIError(
                    INTERNAL, f"link {link.name} still has tentative addresses after {int(DAD_TIMEOUT)} seconds"
                )
            time.sleep(DAD_POLL)

    def delete(self, ifname: str) -> bool:
        """Delete ``ifname``; False if it was not there."""
        link = self.nl.get_link(ifname)
        if link is None:
            return False
        try:
            self.nl.delete_link(link.index)
        except NetlinkError as e:
            if e.errno != errno.ENODEV:  # gone meanwhile
                raise
        return True

    # ---- CHECK ----

    def check(self, ifname: str, kind: str, mode: str, mac: str, prev: Result, words: dict[str, str]) -> Link:
        """Is the interface in ``prev`` the link we made (of ``kind``, in ``mode``, with ``mac``), with
        ``prev``'s addresses and routes? ``words``: the plugin's upstream messages (not_found, not_kind, mode, mac).
        The link, for the plugin's own checks."""
        link = self.nl.get_link(ifname)
        if link is None:
            raise CNIError(INTERNAL, words["not_found"].format(ifname=ifname))
        if link.kind != kind:
            raise CNIError(INTERNAL, words["not_kind"].format(ifname=ifname))
        if link.mode != mode:
            raise CNIError(INTERNAL, words["mode"].format(have=link.mode, want=mode))
        if mac and link.mac != mac.lower():
            raise CNIError(INTERNAL, words["mac"].format(ifname=ifname, mac=mac, have=link.mac))
        self._check_addresses(link, prev)
        self._check_routes(link, prev)
        return link

    def _check_addresses(self, link: Link, prev: Result) -> None:
        have = {(a.family, a.value, a.prefix) for a in self.nl.addresses(link.index)}
        for ipc in prev.ips:
            if ipc.interface is not None and ipc.interface != 0:
                continue
            if (ipc.family, ipc.value, ipc.prefix) not in have:
                raise CNIError(INTERNAL, f"Failed to match addr {ipc.address} on interface {link.name}")

    def _check_routes(self, link: Link, prev: Result) -> None:
        tables: dict[int, list[RouteEntry]] = {}  # one dump per family, not one per route
        for route in prev.routes:
            family = route.family
            gw = route.gw[1] if route.gw is not None else None
            if family not in tables:
                tables[family] = self.nl.routes(family)
            found = any(
                r.dst == route.dst
                and r.dst_len == route.dst_len
                and r.oif == link.index
                and (gw is None or r.gateway == gw)
                for r in tables[family]
            )
            if not found:
                via = f" via {route.gw_text}" if route.gw is not None else ""
                raise CNIError(INTERNAL, f"Failed to match route {route.dst_text}{via} on interface {link.name}")


def delete_link_at(path: str, ifname: str) -> None:
    """DEL: remove ``ifname`` from the namespace at ``path`` if both are still there. A namespace
    that is gone, or no longer one we can enter (torn down), holds nothing of ours: success."""
    try:
        container = Container(path)
    except CNIError:
        return
    with container:
        try:
            container.delete(ifname)
        except OSError:
            pass  # torn down under us: nothing of ours is left in it


def _sysctl(path: str, value: str) -> None:
    try:
        write_sysctl(path, value)
    except OSError:
        pass  # as upstream: arp_notify and ndisc_notify are best effort (no IPv6 in the kernel: no knob)


def _enable_ipv6(ifname: str) -> None:
    """Before the first IPv6 address, as upstream: disable_ipv6 0 on lo and the interface (a knob that
    can't be read is skipped; one that can't be written fails the ADD), and keep_addr_on_down 1 on the
    interface (fails the ADD if it can't be set: an address must outlive a down/up of the link)."""
    for dev in ("lo", ifname):
        knob = f"net/ipv6/conf/{dev}/disable_ipv6"
        try:
            value = read_sysctl(knob)
        except OSError:
            continue
        if value == "0":
            continue
        try:
            write_sysctl(knob, "0")
        except OSError as e:
            raise CNIError(
                INTERNAL, f'failed to enable IPv6 for interface "{dev}" ({knob}={value}): {e.strerror}'
            ) from None
    try:
        write_sysctl(f"net/ipv6/conf/{ifname}/keep_addr_on_down", "1")
    except OSError as e:
        raise CNIError(INTERNAL, f'failed to enable keep_addr_on_down for interface "{ifname}": {e.strerror}') from None


def _create_hint(kind: str, code: int, parent: Link, mode: str) -> str:
    """What the kernel's bare errno means here (the config was validated before: MTU, MAC, mode)."""
    if code == errno.EBUSY:  # the parent carries links of the other kind
        other = "macvlan" if kind == "ipvlan" else "ipvlan"
        return (
            f'master "{parent.name}" carries {other} links (or is a bridge port): a parent holds macvlan or'
            " ipvlan links, never both; use another parent (another VLAN of it, say)"
        )
    if kind == "ipvlan":
        return "this kernel has no ipvlan (modprobe ipvlan)" if code == errno.EOPNOTSUPP else ""
    if code == errno.EINVAL and mode == "passthru":  # the parent already has macvlan links
        return (
            f'master "{parent.name}" already carries macvlan links (of this or another network): '
            "passthru needs the parent to itself; use a free parent, or mode bridge"
        )
    if code == errno.EINVAL:  # a passthru macvlan holds the parent
        return (
            f'master "{parent.name}" is held by a passthru macvlan (of this or another network), '
            "which allows no other link on it; use another parent"
        )
    if code == errno.EADDRNOTAVAIL:
        return "the MAC address is not usable"
    return ""
