"""The CNI request: environment and stdin turned into one validated value, with libcni's rules.

Sans-IO: ``from_env`` takes the environment mapping and the stdin bytes and returns a Request or
raises CNIError; it never reads a file or a socket. The checks run in the order libcni's skel runs
them, so a runtime sees the same error for the same mistake.
"""

from __future__ import annotations

from . import jsonio, versions
from .errors import (
    DECODING_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    UNKNOWN_CONTAINER,
    CNIError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# verb -> environment variables libcni's skel requires for it (stricter than the spec text)
REQUIRED_ENV: dict[str, tuple[str, ...]] = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": ("CNI_PATH",),
    "STATUS": ("CNI_PATH",),
    "VERSION": (),
}

_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | frozenset("_.-")
_NAME_RULE = "it starts with a letter or digit and has only letters, digits, '_', '.' and '-'"
MAX_IFNAME = 15


def valid_name(text: str) -> bool:
    """libcni's ``^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$`` for network names and container IDs."""
    return bool(text) and text[0] in _NAME_FIRST and all(c in _NAME_REST for c in text)


def check_ifname(ifname: str) -> None:
    """libcni's ValidateInterfaceName, with the kernel's 15-character limit."""
    if not ifname:
        raise CNIError(INVALID_ENVIRONMENT, "interface name is empty")
    if len(ifname) > MAX_IFNAME:
        raise CNIError(
            INVALID_ENVIRONMENT,
            f'interface name is too long: "{ifname}"',
            f"interface name should be less than {MAX_IFNAME + 1} characters",
        )
    if ifname in (".", ".."):
        raise CNIError(INVALID_ENVIRONMENT, f'interface name is "{ifname}"', "'.' and '..' are not valid names")
    for c in ifname:
        if c in "/:" or c.isspace() or c == "\0":
            raise CNIError(
                INVALID_ENVIRONMENT,
                f"interface name contains an invalid character {c!r}: {ifname!r}",
                "interface names may not contain '/', ':' or whitespace",
            )


class Request:
    """One plugin invocation: the verb, the attachment it is about, and the network config."""

    __slots__ = ("args", "command", "config", "container_id", "ifname", "netns", "path", "stdin", "version")

    def __init__(
        self,
        command: str,
        config: dict[str, Any],
        version: str,
        stdin: bytes = b"",
        container_id: str = "",
        netns: str = "",
        ifname: str = "",
        args: str = "",
        path: tuple[str, ...] = (),
    ) -> None:
        self.command = command
        self.config = config
        self.version = version
        self.stdin = stdin
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.args = args  # raw CNI_ARGS; each plugin parses it with its own known keys
        self.path = path

    @property
    def network(self) -> str:
        name: str = self.config["name"]
        return name


def config_version(config: dict[str, Any]) -> str:
    """The config's cniVersion, checked against what we support (empty means 0.1.0, as in libcni)."""
    version = config.get("cniVersion") or "0.1.0"
    if not isinstance(version, str) or version not in versions.SUPPORTED:
        raise CNIError(
            INCOMPATIBLE_VERSION,
            "incompatible CNI versions",
            f'config is "{version}", plugin supports {versions.supported_list()}',
        )
    return version


def decode_config(stdin: bytes) -> dict[str, Any]:
    try:
        config = jsonio.loads(stdin)
    except jsonio.DecodeError as e:
        raise CNIError(DECODING_FAILURE, f"error parsing network config: {e}") from None
    if not isinstance(config, dict):
        raise CNIError(DECODING_FAILURE, "error parsing network config: the config must be a JSON object")
    return config


def from_env(env: Mapping[str, str], stdin: bytes) -> Request:
    """Validate the environment and the config for the verb in CNI_COMMAND."""
    command = env.get("CNI_COMMAND", "")
    required = REQUIRED_ENV.get(command)
    if required is None:
        raise CNIError(INVALID_ENVIRONMENT, f"unknown CNI_COMMAND: {command}")
    missing = [name for name in required if not env.get(name)]
    if missing:
        raise CNIError(INVALID_ENVIRONMENT, f"required env variables [{','.join(missing)}] missing")

    config = decode_config(stdin)
    version = config_version(config)
    try:
        return _validated(command, required, env, config, version, stdin)
    except CNIError as e:
        e.cni_version = version  # report in the config's version from here on
        raise


def _validated(
    command: str,
    required: tuple[str, ...],
    env: Mapping[str, str],
    config: dict[str, Any],
    version: str,
    stdin: bytes,
) -> Request:
    if not versions.at_least(version, versions.VERB_SINCE[command]):
        raise CNIError(
            INCOMPATIBLE_VERSION,
            f"config version does not allow {command}",
            f'{command} needs cniVersion {versions.VERB_SINCE[command]} or later, the config has "{version}"',
        )
    name = config.get("name")
    if not name:
        raise CNIError(INVALID_CONFIG, "missing network name")
    if not isinstance(name, str) or not valid_name(name):
        raise CNIError(
            INVALID_CONFIG,
            f"invalid characters found in network name {name!r}",
            f"a network name: {_NAME_RULE}",
        )
    request = Request(
        command,
        config,
        version,
        stdin,
        env.get("CNI_CONTAINERID", ""),
        env.get("CNI_NETNS", ""),
        env.get("CNI_IFNAME", ""),
        env.get("CNI_ARGS", ""),
        tuple(p for p in env.get("CNI_PATH", "").split(":") if p),
    )
    if "CNI_CONTAINERID" in required:
        if not request.container_id:
            raise CNIError(UNKNOWN_CONTAINER, "missing containerID")
        if not valid_name(request.container_id):
            raise CNIError(
                INVALID_ENVIRONMENT,
                f"invalid characters in containerID {request.container_id!r}",
                f"a container ID: {_NAME_RULE}",
            )
    if "CNI_IFNAME" in required:
        check_ifname(request.ifname)
    return request


def valid_attachments(config: dict[str, Any]) -> set[tuple[str, str]]:
    """GC's list of attachments to keep, as (container ID, ifname): ``cni.dev/valid-attachments``, or the
    ``cni.dev/attachments`` of the spec-v1.1.0 text. Refused when neither is there: an empty list is
    meaningful (keep nothing), a missing one is a runtime error we must not read as "keep nothing"."""
    raw = config.get("cni.dev/valid-attachments")
    if raw is None:
        raw = config.get("cni.dev/attachments")
    if raw is None:
        raise CNIError(
            INVALID_CONFIG,
            "GC needs cni.dev/valid-attachments",
            "the runtime sends the attachments to keep; without them GC would release everything",
        )
    if not isinstance(raw, list):
        raise CNIError(INVALID_CONFIG, f"cni.dev/valid-attachments must be a list, got {raw!r}")
    valid = set()
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("containerID"), str):
            raise CNIError(INVALID_CONFIG, f"cni.dev/valid-attachments entry {item!r} has no containerID")
        valid.add((item["containerID"].strip(), str(item.get("ifname") or "")))
    return valid
