"""The ipvlan plugin: what is its own for the shared verbs (attach/verbs.py): its config (config.py),
its link on the parent (modes l2, l3, l3s; flags bridge, private, vepa; the parent's MAC on every
link), its routes by mode as Docker's ipvlan driver sets them, upstream's words when CHECK finds
something else.

Routes: in L2 mode as macvlan's (a route without ``gw`` goes through the family's gateway). In L3 and
L3S the node routes: every address's gateway is dropped, every route is a route over the device,
and each family with an address gets a default route over the device (Docker's ipvlan L3).
"""

from __future__ import annotations

from cni import skel
from cni.errors import INTERNAL, CNIError
from cni.result import Route

from ..attach.verbs import LinkPlugin, Verbs
from . import config

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cni.result import Result

    from ..attach.config import LinkConf
    from ..links.container import Container
    from ..links.netlink import Link, Netlink

WORDS = {
    "not_kind": "Error: Container interface {ifname} not of type ipvlan",
    "mode": "Container IPVlan mode {have} does not match expected value: {want}",
    "mac": "Interface {ifname} Mac {mac} doesn't match container Mac: {have}",
    "prev_missing": "Required prevResult missing",
    "not_found": "Container Interface name in prevResult: {ifname} not found",
    "sandbox": "Sandbox in prevResult {have} doesn't match configured netns: {want}",
}
DEFAULT_ROUTE = {4: "0.0.0.0/0", 6: "::/0"}


def _create(ct: Container, creator: Netlink | None, master: Link, ifname: str, conf: LinkConf) -> Link:
    assert isinstance(conf, config.IpvlanConf)
    return ct.create_ipvlan(creator, master, ifname, conf.mode, conf.flag, conf.mtu)


def _check(ct: Container, ifname: str, conf: LinkConf, mac: str, prev: Result) -> None:
    assert isinstance(conf, config.IpvlanConf)
    link = ct.check(ifname, "ipvlan", conf.mode, mac, prev, WORDS)
    if link.ipvlan_flag != conf.flag:
        raise CNIError(INTERNAL, f"container ipvlan flag {link.ipvlan_flag} does not match expected value: {conf.flag}")


def _shape(conf: LinkConf, result: Result) -> None:
    """L3 and L3S: no gateway, routes over the device, a default route per family."""
    if conf.mode == "l2":
        return
    families = sorted({6 if ":" in ip.address else 4 for ip in result.ips})
    for ipc in result.ips:
        ipc.gateway = ""
    routes = [Route(r.dst, "", r.extra) for r in result.routes]
    for family in families:
        if not any(r.dst == DEFAULT_ROUTE[family] for r in routes):
            routes.append(Route(DEFAULT_ROUTE[family]))
    result.routes = routes


IPVLAN = LinkPlugin("ipvlan", config.load, _create, _check, _shape, chained=True, words=WORDS)
PLUGIN = skel.Plugin("ipvlan", Verbs(IPVLAN).table())
