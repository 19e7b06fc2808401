"""The macvlan plugin: what is its own for the shared verbs (attach/verbs.py): its config
(config.py), its link made on the parent (bridge, private, vepa, passthru; a MAC of its own), and
upstream's words when CHECK finds something else."""

from __future__ import annotations

from cni import skel

from ..attach.verbs import LinkPlugin, Verbs
from . import config

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cni.result import Result

    from ..attach.config import LinkConf
    from ..links.container import Container
    from ..links.netlink import Link, Netlink

WORDS = {
    "not_found": "container Interface name in prevResult: {ifname} not found",
    "not_kind": "error: Container interface {ifname} not of type macvlan",
    "mode": "container macvlan mode {have} does not match expected value: {want}",
    "mac": "interface {ifname} Mac {mac} doesn't match container Mac: {have}",
}


def _create(ct: Container, creator: Netlink | None, master: Link, ifname: str, conf: LinkConf) -> Link:
    assert isinstance(conf, config.NetConf)
    return ct.create_macvlan(creator, master, ifname, conf.mode, conf.mtu, conf.mac, conf.bcqueuelen)


def _check(ct: Container, ifname: str, conf: LinkConf, mac: str, prev: Result) -> None:
    ct.check(ifname, "macvlan", conf.mode, mac, prev, WORDS)


MACVLAN = LinkPlugin("macvlan", config.load, _create, _check)
PLUGIN = skel.Plugin("macvlan", Verbs(MACVLAN).table())
