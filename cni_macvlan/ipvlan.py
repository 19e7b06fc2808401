"""The ipvlan plugin, in one place: what its network config means, its link on the parent (modes l2,
l3, l3s; flags bridge, private, vepa; the parent's MAC on every link), its routes by mode as Docker's
ipvlan driver sets them, and upstream's words when CHECK finds something else. The shared verbs
(attach/verbs.py) drive it.

Config: upstream's keys (``master``, ``mode``, ``mtu``, ``linkInContainer``, ``ipam``), Docker's
``ipvlan_flag`` as ``flag``, and ours (``stateDir``, ``dns``); pure, as macvlan.py's: the request in,
an ``IpvlanConf`` out or a CNIError (code 7; code 4 for CNI_ARGS) naming the key, the value and the
fix. The parents are macvlan's (attach/config.py, links/parents.py): ``<parent>.<vid>`` created and
owned, a dummy when ``master`` is omitted, one record for both plugins. Chained (an ADD with
prevResult), a ``master`` left out is prevResult's single interface, as upstream.

Routes: in L2 mode as macvlan's (a route without ``gw`` goes through the family's gateway). In L3 and
L3S the node routes: every address's gateway is dropped, every route is a route over the device,
and each family with an address gets a default route over the device (Docker's ipvlan L3).
"""

from __future__ import annotations

from cni import cniargs, skel
from cni.errors import INTERNAL, CNIError
from cni.keys import fields
from cni.result import Route, parse

from .attach import config as common
from .attach.config import LinkConf
from .attach.verbs import LinkPlugin, Verbs
from .links import netlink
from .links.netlink import IPVLAN_FLAGS, IPVLAN_MODES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cni.request import Request
    from cni.result import Result

CNI_ARGS_KEYS = frozenset({"IP"})  # for the IPAM; an ipvlan has its parent's MAC


class IpvlanConf(LinkConf):
    """An ipvlan network config, checked: what ADD and CHECK need."""

    __slots__ = ("flag",)

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.mode = "l2"
        self.flag = "bridge"


KEYS = (*common.KEYS, "flag")


def load(req: Request) -> IpvlanConf:
    """The config of an ADD or CHECK, checked."""
    config = req.config
    cniargs.parse(req.args, CNI_ARGS_KEYS)
    found = fields(config, KEYS)
    conf = IpvlanConf(config["name"])
    conf.master = common.master(found.get("master"))
    conf.mode = common.choice("mode", found.get("mode"), "l2", IPVLAN_MODES, "ipvlan")
    conf.flag = common.choice("flag", found.get("flag"), "bridge", IPVLAN_FLAGS, "ipvlan")
    conf.mtu = common.mtu(found.get("mtu"))
    conf.link_in_container = common.link_in_container(found.get("linkInContainer", False))
    conf.ipam_type = common.ipam_type(found.get("ipam"))
    conf.dns = common.dns(found.get("dns"))
    if not conf.master and req.command == "ADD" and config.get("prevResult"):
        conf.master = _chained_master(config["prevResult"], req.version)
    common.finish(conf, config, found.get("stateDir"))
    return conf


def _chained_master(prev: object, version: str) -> str:
    interfaces = parse(prev, version).interfaces
    if len(interfaces) != 1 or not interfaces[0].name:
        raise CNIError(INTERNAL, "chained master failure. PrevResult lacks a single named interface")
    return interfaces[0].name


class Ipvlan(LinkPlugin):
    kind = "ipvlan"
    chained = True
    words = {
        "not_kind": "Error: Container interface {ifname} not of type ipvlan",
        "mode": "Container IPVlan mode {have} does not match expected value: {want}",
        "mac": "Interface {ifname} Mac {mac} doesn't match container Mac: {have}",
        "prev_missing": "Required prevResult missing",
        "not_found": "Container Interface name in prevResult: {ifname} not found",
        "sandbox": "Sandbox in prevResult {have} doesn't match configured netns: {want}",
    }

    def load(self, req: Request) -> IpvlanConf:
        return load(req)

    def new_link(self, conf: LinkConf) -> netlink.NewLink:
        assert isinstance(conf, IpvlanConf)
        return netlink.ipvlan(conf.mode, conf.flag, conf.mtu)

    def check_link(self, link: netlink.Link, conf: LinkConf) -> None:
        assert isinstance(conf, IpvlanConf)
        if link.ipvlan_flag != conf.flag:
            raise CNIError(
                INTERNAL, f"container ipvlan flag {link.ipvlan_flag} does not match expected value: {conf.flag}"
            )

    def shape(self, conf: LinkConf, result: Result) -> None:
        """L3 and L3S: no gateway, routes over the device, a default route per family."""
        if conf.mode == "l2":
            return
        families = sorted({ip.family for ip in result.ips})
        for ipc in result.ips:
            ipc.gateway = None
        routes = [Route(r.family, r.dst, r.dst_len, None, r.extra) for r in result.routes]
        for family in families:
            if not any(r.family == family and r.dst == 0 and r.dst_len == 0 for r in routes):
                routes.append(Route(family, 0, 0))  # the default route, over the device
        result.routes = routes


PLUGIN = skel.Plugin("ipvlan", Verbs(Ipvlan()).table())
