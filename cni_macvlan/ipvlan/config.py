"""What an ipvlan network config means: upstream's keys (``master``, ``mode``, ``mtu``,
``linkInContainer``, ``ipam``), Docker's ``ipvlan_flag`` as ``flag``, and ours (``stateDir``,
``dns``); every rule that needs no kernel, in one place.

Rule of membership: pure, as macvlan/config.py: the request in, an ``IpvlanConf`` out or a CNIError
(code 7; code 4 for CNI_ARGS) naming the key, the value and the fix. The parents are macvlan's
(attach/config.py, links/parents.py): ``<parent>.<vid>`` created and owned, a dummy when ``master`` is
omitted, one record for both plugins. Chained (an ADD with prevResult), a ``master`` left out is
prevResult's single interface, as upstream.
"""

from __future__ import annotations

from cni import cniargs
from cni.errors import INTERNAL, CNIError
from cni.result import parse

from ..attach import config as common
from ..attach.config import LinkConf
from ..links.netlink import IPVLAN_FLAGS, IPVLAN_MODES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cni.request import Request

CNI_ARGS_KEYS = frozenset({"IP"})  # for the IPAM; an ipvlan has its parent's MAC


class IpvlanConf(LinkConf):
    """An ipvlan network config, checked: what ADD and CHECK need."""

    __slots__ = ("flag",)

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.mode = "l2"
        self.flag = "bridge"


def load(req: Request) -> IpvlanConf:
    """The config of an ADD or CHECK, checked."""
    config = req.config
    cniargs.parse(req.args, CNI_ARGS_KEYS)
    conf = IpvlanConf(config["name"])
    conf.master = common.master(config)
    conf.mode = common.choice(config, "mode", "l2", IPVLAN_MODES, "ipvlan")
    conf.flag = common.choice(config, "flag", "bridge", IPVLAN_FLAGS, "ipvlan")
    conf.mtu = common.mtu(config)
    conf.link_in_container = common.link_in_container(config)
    conf.ipam_type = common.ipam_type(config)
    conf.dns = common.dns(config)
    if not conf.master and req.command == "ADD" and config.get("prevResult"):
        conf.master = _chained_master(config["prevResult"], req.version)
    common.finish(conf, config)
    return conf


def _chained_master(prev: object, version: str) -> str:
    interfaces = parse(prev, version).interfaces
    if len(interfaces) != 1 or not interfaces[0].name:
        raise CNIError(INTERNAL, "chained master failure. PrevResult lacks a single named interface")
    return interfaces[0].name
