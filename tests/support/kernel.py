"""The kernel's state read through pyroute2: an independent view of what the plugins left.

The plugins speak rtnetlink through their own small client (cni_macvlan/links/netlink.py) and the
lab builds with iproute2; pyroute2 is a third implementation, so a fact seen here was not read
back by the code that wrote it. Test-only: pyroute2 costs about 100 ms of imports, which is why the
plugins don't use it (docs/design.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class LinkFacts:
    name: str
    index: int
    kind: str
    mode: str  # a macvlan's mode, else ""
    mac: str
    mtu: int
    addresses: list[str]  # "address/prefix", scope global only


def link(netns: str, ifname: str) -> LinkFacts | None:
    """What the kernel says of ``ifname`` in the namespace (a name or a /run/netns path); None if absent."""
    from pyroute2 import NetNS

    with NetNS(os.path.basename(netns)) as ns:
        found = ns.link("get", ifname=ifname) if ns.link_lookup(ifname=ifname) else []
        if not found:
            return None
        msg = found[0]
        info = msg.get("IFLA_LINKINFO")
        kind = info.get("IFLA_INFO_KIND") if info else ""
        data = info.get("IFLA_INFO_DATA") if info else None
        mode = str(data.get("IFLA_MACVLAN_MODE")) if kind == "macvlan" and data else ""  # pyroute2 names it
        addresses = [
            f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}" for a in ns.get_addr(index=msg["index"]) if a["scope"] == 0
        ]
        return LinkFacts(
            msg.get("IFLA_IFNAME"),
            msg["index"],
            kind or "",
            mode,
            msg.get("IFLA_ADDRESS"),
            msg.get("IFLA_MTU"),
            addresses,
        )
