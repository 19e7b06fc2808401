"""The config keys every link plugin shares, and the rules they follow: pure, no kernel.

``master`` (the parent, planned by Docker's rules in links/parents.plan), ``mtu``, ``linkInContainer``,
``ipam``, ``dns``, ``stateDir`` (the parents' record), ``prevResult``. A plugin's module (macvlan.py,
ipvlan.py) takes its keys and these from the config in one pass (cni/keys.fields: Go's rule for every
key) and checks them in the order its upstream does, each key by its one function here (a plugin's
own keys by its own); ``finish`` makes the checks that need the whole config. Every mistake is a
CNIError (code 7) naming the key, the value and the fix.

DEL, GC and STATUS must work on a config that ADD would refuse (a network being torn down after an
upgrade tightened a rule): ``load_teardown`` reads only what they need.
"""

from __future__ import annotations

from cni.errors import INVALID_CONFIG, CNIError
from cni.keys import directory, fields

from ..links import parents

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection
    from typing import Any

    from cni.request import Request

DEFAULT_STATE_DIR = "/var/lib/cni/cni-macvlan"


def invalid(msg: str, details: str = "") -> CNIError:
    return CNIError(INVALID_CONFIG, msg, details)


class Teardown:
    """What DEL, GC and STATUS need: where the parents' record is, and which IPAM to call."""

    __slots__ = ("ipam_type", "state_dir")

    def __init__(self, ipam_type: str, state_dir: str) -> None:
        self.ipam_type = ipam_type  # "": no IPAM (L2 only, or addresses from prevResult)
        self.state_dir = state_dir


class LinkConf(Teardown):
    """The shared part of a link plugin's config, checked: what ADD and CHECK need of it."""

    __slots__ = ("dns", "link_in_container", "master", "mode", "mtu", "name", "parent", "prev")

    def __init__(self, name: str) -> None:
        super().__init__("", "")
        self.name = name
        self.master = ""
        self.parent = parents.ParentSpec("", "link")  # what master asks for (links/parents.plan)
        self.mode = ""  # the plugin's own modes
        self.mtu = 0
        self.link_in_container = False
        self.dns: dict[str, Any] = {}
        self.prev: Any = None  # prevResult as given (CHECK; chained ADD)


# the keys every link plugin reads; a plugin reads them with its own in one pass (keys.fields)
KEYS = ("master", "mode", "mtu", "linkInContainer", "ipam", "dns", "stateDir")


def ipam_type(ipam: Any) -> str:
    """``ipam``: the delegated IPAM's type, '' for none (``ipam`` absent or ``{}``)."""
    if ipam is None or ipam == {}:
        return ""
    if not isinstance(ipam, dict):
        raise invalid(f"ipam must be an object, got {ipam!r}")
    kind = ipam.get("type", "")
    if not isinstance(kind, str):
        raise invalid(f"ipam.type must be a plugin name, got {kind!r}")
    return kind


def state_dir(value: Any) -> str:
    """``stateDir``: where the record of owned parents lives."""
    return directory("stateDir", value or DEFAULT_STATE_DIR)


def load_teardown(req: Request) -> Teardown:
    found = fields(req.config, ("ipam", "stateDir"))
    return Teardown(ipam_type(found.get("ipam")), state_dir(found.get("stateDir")))


def master(value: Any) -> str:
    """``master``, as written (what it asks for: links/parents.plan, in ``finish``)."""
    value = value or ""
    if not isinstance(value, str):
        raise invalid(f"master must be an interface name, got {value!r}")
    return value


def choice(key: str, value: Any, default: str, allowed: Collection[str], driver: str) -> str:
    """A key whose value is one of a few words (mode, flag), in upstream's words when it is not."""
    value = value or default
    if not isinstance(value, str) or value not in allowed:
        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        raise invalid(f"unknown {driver} {key}: {shown}", f"{key} is one of {', '.join(allowed)}")
    return value


def integer(key: str, value: Any, low: int, high: int) -> int:
    """A key whose value is an integer in [low, high]; absent or null is 0."""
    if value is None:
        return 0
    if type(value) is not int:
        raise invalid(f"{key} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise invalid(f"invalid {key} {value}, must be [{low}, {high}]")
    return value


def mtu(value: Any) -> int:
    """``mtu``: 0 (the kernel's default) up to 65535 here; the parent's MTU bounds it too (fits_master)."""
    if type(value) is int and value < 0:  # upstream's words for it
        raise invalid(f"invalid MTU {value}, must be [0, master MTU]")
    return integer("mtu", value, 0, 65535)


def fits_master(mtu: int, master_mtu: int) -> None:
    """``mtu`` against the parent's, once the kernel has told it (attach/verbs.py, ``_master``)."""
    if mtu > master_mtu:
        raise invalid(f"invalid MTU {mtu}, must be [0, master MTU({master_mtu})]")


def link_in_container(value: Any) -> bool:
    """``linkInContainer`` (absent: false)."""
    if not isinstance(value, bool):
        raise invalid(f"linkInContainer must be true or false, got {value!r}")
    return value


def dns(value: Any) -> dict[str, Any]:
    """``dns``: copied into the result."""
    value = value or {}
    if not isinstance(value, dict):
        raise invalid(f"dns must be an object, got {value!r}")
    return value


def finish(conf: LinkConf, config: dict[str, Any], state: Any) -> None:
    """The checks that need the whole config: the parent plan (links/parents.plan: on the node, by
    Docker's rules, or the container's interface with linkInContainer), the state directory; and
    prevResult kept. ``state``: the stateDir key's value."""
    conf.parent = parents.plan(conf.master, conf.name, conf.link_in_container)
    conf.state_dir = state_dir(state)
    conf.prev = config.get("prevResult")
