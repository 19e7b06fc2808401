"""The macvlan plugin, in one place: what its network config means, the link it makes on the parent
(bridge, private, vepa, passthru; a MAC of its own), and upstream's words when CHECK finds something
else. The shared verbs (attach/verbs.py) drive it.

Config: pure. The request in, a ``NetConf`` out with everything a verb needs already checked (the
parent plan by Docker's rules, the state directory, the IPAM's type, the CNI_ARGS pairs, the MAC by
upstream's precedence), or a CNIError that names the key, the value and the fix (code 7; code 4 for
CNI_ARGS). The keys macvlan shares with ipvlan are read by attach/config.py; what only the kernel
can tell (does ``master`` exist, is it a loopback, its MTU) is checked by the verbs in one named
step (attach/verbs.py, ``_master``) and by ``links/parents.acquire``.
"""

from __future__ import annotations

from cni import cniargs, skel
from cni.keys import fields, get

from .attach import config as common
from .attach.config import LinkConf, invalid
from .attach.verbs import LinkPlugin, Verbs
from .links import netlink
from .links.netlink import MACVLAN_MODES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cni.request import Request

# IP= is for the IPAM; the macvlan plugin accepts it so that CNI_ARGS can carry both
CNI_ARGS_KEYS = frozenset({"MAC", "IP"})
_HEX = frozenset("0123456789abcdefABCDEF")


def parse_mac(value: Any, source: str) -> str:
    """'C2:11:22:33:44:55' or with '-' -> 'c2:11:22:33:44:55'; unicast only."""
    if not isinstance(value, str):
        raise invalid(f"{source}: MAC address must be a string, got {value!r}")
    parts = value.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 and set(p) <= _HEX for p in parts):
        raise invalid(
            f"invalid args {value} for MAC addr: {source}",
            "a MAC address is six hex pairs separated by ':', like c2:11:22:33:44:55",
        )
    mac = ":".join(parts).lower()
    if int(parts[0], 16) & 1:
        raise invalid(f"{source}: {mac} is a multicast MAC address", "use a unicast address (even first byte)")
    return mac


class NetConf(LinkConf):
    """A macvlan network config, checked: what ADD and CHECK need."""

    __slots__ = ("bcqueuelen", "mac")

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.mode = "bridge"
        self.mac = ""
        self.bcqueuelen = 0


KEYS = (*common.KEYS, "bcqueuelen", "mac", "runtimeConfig")


def load(req: Request) -> NetConf:
    """The config of an ADD or CHECK, checked."""
    config = req.config
    cni_args = cniargs.parse(req.args, CNI_ARGS_KEYS)
    found = fields(config, KEYS)
    conf = NetConf(config["name"])
    conf.master = common.master(found.get("master"))
    conf.mode = common.choice("mode", found.get("mode"), "bridge", MACVLAN_MODES, "macvlan")
    conf.mtu = common.mtu(found.get("mtu"))
    conf.bcqueuelen = common.integer("bcqueuelen", found.get("bcqueuelen"), 0, 2**32 - 1)
    conf.link_in_container = common.link_in_container(found.get("linkInContainer", False))
    conf.mac = mac(found.get("mac"), cni_args.get("MAC"), found.get("runtimeConfig"))
    conf.ipam_type = common.ipam_type(found.get("ipam"))
    conf.dns = common.dns(found.get("dns"))
    common.finish(conf, config, found.get("stateDir"))
    return conf


def mac(config_mac: Any, args_mac: str | None, runtime: Any) -> str:
    """The MAC: runtimeConfig.mac over CNI_ARGS MAC= over the config's ``mac`` (upstream's precedence),
    each checked when given."""
    chosen = ""
    if config_mac:
        chosen = parse_mac(config_mac, "mac")
    if args_mac:
        chosen = parse_mac(args_mac, "CNI_ARGS MAC")
    runtime_mac = get(runtime, "mac") if isinstance(runtime, dict) else None
    if runtime_mac:
        chosen = parse_mac(runtime_mac, "runtimeConfig.mac")
    return chosen


class Macvlan(LinkPlugin):
    kind = "macvlan"
    words = {
        **LinkPlugin.words,
        "not_found": "container Interface name in prevResult: {ifname} not found",
        "not_kind": "error: Container interface {ifname} not of type macvlan",
        "mode": "container macvlan mode {have} does not match expected value: {want}",
        "mac": "interface {ifname} Mac {mac} doesn't match container Mac: {have}",
    }

    def load(self, req: Request) -> NetConf:
        return load(req)

    def new_link(self, conf: LinkConf) -> netlink.NewLink:
        assert isinstance(conf, NetConf)
        return netlink.macvlan(conf.mode, conf.mtu, conf.mac, conf.bcqueuelen)


PLUGIN = skel.Plugin("macvlan", Verbs(Macvlan()).table())
