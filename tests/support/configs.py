"""The one module of config builders: network configs as the tests hand them to the plugins. A test
module may fix some parameters in a one-line helper of its own; the shapes are built here only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.lab import SUBNET4


def ipam_conf(
    data_dir: Path | None,
    name: str,
    subnet: str | None,
    version: str = "1.0.0",
    top: dict[str, Any] | None = None,
    ipam: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A network config for host-local alone: ``subnet`` (the legacy single range, if given), its store
    in ``data_dir`` (if given), more ``ipam`` keys, and ``top`` keys beside ``ipam``."""
    section: dict[str, Any] = {"type": "host-local"}
    if subnet is not None:
        section["subnet"] = subnet
    if data_dir is not None:
        section["dataDir"] = str(data_dir)
    return {"cniVersion": version, "name": name, **(top or {}), "ipam": {**section, **(ipam or {})}}


def macvlan_conf(
    name: str,
    data_dir: Path,
    state_dir: Path,
    subnet: str = SUBNET4,
    version: str = "1.0.0",
    master: str | None = "upl0",
    ipam: dict[str, Any] | None = None,
    ipam_extra: dict[str, Any] | None = None,
    **top: Any,
) -> dict[str, Any]:
    """Our macvlan on the lab's upl0 (``master`` None: omitted, a dummy parent) with host-local on
    ``subnet`` and ``ipam_extra`` keys; ``ipam`` replaces that section ({}: L2 only; else its
    dataDir is added); ``top`` keys go beside."""
    config: dict[str, Any] = {"cniVersion": version, "name": name, "type": "macvlan"}
    if master is not None:
        config["master"] = master
    config["stateDir"] = str(state_dir)
    if ipam is None:
        config["ipam"] = {"type": "host-local", "subnet": subnet, "dataDir": str(data_dir), **(ipam_extra or {})}
    else:
        config["ipam"] = {"dataDir": str(data_dir), **ipam} if ipam else {}
    config.update(top)
    return config


def conflist(name: str, *plugins: dict[str, Any], version: str = "1.0.0") -> dict[str, Any]:
    """A network configuration list of ``plugins``, run in order; their own ``name`` and ``cniVersion`` are
    dropped (libcni gives each the list's)."""
    entries = [{k: v for k, v in p.items() if k not in ("name", "cniVersion")} for p in plugins]
    return {"cniVersion": version, "name": name, "plugins": entries}
