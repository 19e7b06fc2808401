"""What a macvlan network config means: every rule of it that needs no kernel, in one place.

Rule of membership: pure. The request in, a ``NetConf`` out with everything a verb needs already
checked (the parent plan by Docker's rules, the state directory, the IPAM's type, the CNI_ARGS
pairs, the MAC by upstream's precedence), or a CNIError that names the key, the value and the fix
(code 7; code 4 for CNI_ARGS). What only the kernel can tell (does ``master`` exist, is it a
loopback, its MTU) is checked by the verbs in one named step, ``plugin._master``, and by
``links/parents.acquire``.

DEL, GC and STATUS must work on a config that ADD would refuse (a network being torn down after an
upgrade tightened a rule): ``load_teardown`` reads only what they need.
"""

from __future__ import annotations

from ..cni import cniargs
from ..cni.errors import INVALID_CONFIG, CNIError
from ..cni.keys import directory, get
from ..links import parents
from ..links.netlink import MACVLAN_MODES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..cni.request import Request

DEFAULT_STATE_DIR = "/var/lib/cni/cni-macvlan"
# IP= is for the IPAM; the macvlan plugin accepts it so that CNI_ARGS can carry both
CNI_ARGS_KEYS = frozenset({"MAC", "IP"})
_HEX = frozenset("0123456789abcdefABCDEF")


def _invalid(msg: str, details: str = "") -> CNIError:
    return CNIError(INVALID_CONFIG, msg, details)


def parse_mac(value: Any, source: str) -> str:
    """'C2:11:22:33:44:55' or with '-' -> 'c2:11:22:33:44:55'; unicast only."""
    if not isinstance(value, str):
        raise _invalid(f"{source}: MAC address must be a string, got {value!r}")
    parts = value.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 and set(p) <= _HEX for p in parts):
        raise _invalid(
            f"invalid args {value} for MAC addr: {source}",
            "a MAC address is six hex pairs separated by ':', like c2:11:22:33:44:55",
        )
    mac = ":".join(parts).lower()
    if int(parts[0], 16) & 1:
        raise _invalid(f"{source}: {mac} is a multicast MAC address", "use a unicast address (even first byte)")
    return mac


class Teardown:
    """What DEL, GC and STATUS need: where the parents' record is, and which IPAM to call."""

    __slots__ = ("ipam_type", "state_dir")

    def __init__(self, ipam_type: str, state_dir: str) -> None:
        self.ipam_type = ipam_type  # "": L2 only, no IPAM
        self.state_dir = state_dir


class NetConf(Teardown):
    """A macvlan network config, checked: what ADD and CHECK need."""

    __slots__ = ("bcqueuelen", "dns", "link_in_container", "mac", "master", "mode", "mtu", "name", "parent", "prev")

    def __init__(self, name: str) -> None:
        super().__init__("", "")
        self.name = name
        self.master = ""
        self.parent = parents.ParentSpec("", "link")  # what master asks for (links/parents.plan)
        self.mode = "bridge"
        self.mtu = 0
        self.mac = ""
        self.link_in_container = False
        self.bcqueuelen = 0
        self.dns: dict[str, Any] = {}
        self.prev: Any = None  # prevResult as given (CHECK)


def ipam_type(config: dict[str, Any]) -> str:
    """The delegated IPAM's type, '' for an L2-only network (``ipam`` absent or ``{}``)."""
    ipam = get(config, "ipam")
    if ipam is None or ipam == {}:
        return ""
    if not isinstance(ipam, dict):
        raise _invalid(f"ipam must be an object, got {ipam!r}")
    kind = ipam.get("type", "")
    if not isinstance(kind, str):
        raise _invalid(f"ipam.type must be a plugin name, got {kind!r}")
    return kind


def state_dir(config: dict[str, Any]) -> str:
    return directory("stateDir", config.get("stateDir") or DEFAULT_STATE_DIR)


def load_teardown(req: Request) -> Teardown:
    return Teardown(ipam_type(req.config), state_dir(req.config))


def _int(config: dict[str, Any], key: str, low: int, high: int) -> int:
    value = get(config, key, 0)
    if value is None:
        return 0
    if type(value) is not int:
        raise _invalid(f"{key} must be an integer, got {value!r}")
    if key == "mtu" and value < 0:  # upstream's words for it
        raise _invalid(f"invalid MTU {value}, must be [0, master MTU]")
    if not low <= value <= high:
        raise _invalid(f"invalid {key} {value}, must be [{low}, {high}]")
    return value


def load(req: Request) -> NetConf:
    """The config of an ADD or CHECK, checked."""
    config = req.config
    cni_args = cniargs.parse(req.args, CNI_ARGS_KEYS)
    conf = NetConf(config["name"])
    master = get(config, "master", "") or ""
    if not isinstance(master, str):
        raise _invalid(f"master must be an interface name, got {master!r}")
    conf.master = master

    mode = get(config, "mode", "") or "bridge"
    if not isinstance(mode, str) or mode not in MACVLAN_MODES:
        raise _invalid(f'unknown macvlan mode: "{mode}"', f"mode is one of {', '.join(MACVLAN_MODES)}")
    conf.mode = mode
    conf.mtu = _int(config, "mtu", 0, 65535)
    conf.bcqueuelen = _int(config, "bcqueuelen", 0, 2**32 - 1)

    lic = get(config, "linkInContainer", False)
    if not isinstance(lic, bool):
        raise _invalid(f"linkInContainer must be true or false, got {lic!r}")
    conf.link_in_container = lic

    # MAC: runtimeConfig.mac over CNI_ARGS MAC= over the config's mac (upstream's precedence)
    mac = get(config, "mac")
    if mac:
        conf.mac = parse_mac(mac, "mac")
    if cni_args.get("MAC"):
        conf.mac = parse_mac(cni_args["MAC"], "CNI_ARGS MAC")
    runtime = get(config, "runtimeConfig") or {}
    if isinstance(runtime, dict) and get(runtime, "mac"):
        conf.mac = parse_mac(get(runtime, "mac"), "runtimeConfig.mac")

    conf.ipam_type = ipam_type(config)
    dns = get(config, "dns") or {}
    if not isinstance(dns, dict):
        raise _invalid(f"dns must be an object, got {dns!r}")
    conf.dns = dns

    conf.parent = parents.plan(master, conf.name)
    if conf.link_in_container and conf.parent.kind != "link":
        raise _invalid(
            "linkInContainer needs an existing master in the container's namespace",
            'parents are created on the node only: name the container\'s interface in "master"',
        )
    conf.state_dir = state_dir(config)
    conf.prev = config.get("prevResult")
    return conf
