"""The macvlan plugin's network config: upstream's keys, validated, with the MAC precedence rule.

Pure: the config dict and the CNI_ARGS pairs in, a NetConf out, or a CNIError (code 7) that names
the key, the value and the fix. Whether ``master`` exists and its MTU are the kernel's to say, so
those checks live with the netlink work in plugin.py.
"""

from __future__ import annotations

from .cni.errors import INVALID_CONFIG, CNIError
from .cni.keys import get
from .netlink import MACVLAN_MODES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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


class NetConf:
    __slots__ = (
        "bcqueuelen",
        "dns",
        "ipam_type",
        "link_in_container",
        "mac",
        "master",
        "mode",
        "mtu",
        "name",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.master = ""
        self.mode = "bridge"
        self.mtu = 0
        self.mac = ""
        self.link_in_container = False
        self.bcqueuelen = 0
        self.ipam_type = ""  # empty: L2 only
        self.dns: dict[str, Any] = {}


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


def _int(config: dict[str, Any], key: str, low: int, high: int) -> int:
    value = get(config, key, 0)
    if value is None:
        return 0
    if type(value) is not int:
        raise _invalid(f"{key} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise _invalid(f"invalid {key} {value}, must be [{low}, {high}]")
    return value


def load(config: dict[str, Any], cni_args: dict[str, str]) -> NetConf:
    conf = NetConf(config["name"])
    master = get(config, "master", "") or ""
    if not isinstance(master, str):
        raise _invalid(f"master must be an interface name, got {master!r}")
    conf.master = master

    mode = get(config, "mode", "") or "bridge"
    if not isinstance(mode, str) or mode not in MACVLAN_MODES:
        raise _invalid(f'unknown macvlan mode: "{mode}"', f"mode is one of {', '.join(MACVLAN_MODES)}")
    conf.mode = mode
    mtu = get(config, "mtu", 0)
    if type(mtu) is int and mtu < 0:
        raise _invalid(f"invalid MTU {mtu}, must be [0, master MTU]")
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
    return conf
