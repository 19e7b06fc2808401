"""conf-examples/ as a runtime reads them: the plugin entry of a conflist with the list's name and
cniVersion injected (as libcni does), runtimeConfig built from the capabilities the entry declares,
and the seed's "eth0" replaced by the lab's parent `upl0`."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.support.layouts import ROOT

EXAMPLES = ROOT / "conf-examples"


def load(name: str, store: Path, cap_args: dict[str, Any] | None = None) -> dict[str, Any]:
    conflist = json.loads((EXAMPLES / name).read_text())
    plugin = copy.deepcopy(conflist["plugins"][0])
    plugin["name"] = conflist["name"]
    plugin["cniVersion"] = conflist["cniVersion"]
    if plugin.get("master", "").startswith("eth0"):
        plugin["master"] = "upl0" + plugin["master"][len("eth0") :]
    plugin["stateDir"] = str(store / "state")
    if plugin.get("ipam"):
        plugin["ipam"]["dataDir"] = str(store / "leases")
    wanted = {k: v for k, v in (cap_args or {}).items() if plugin.get("capabilities", {}).get(k)}
    assert wanted.keys() == (cap_args or {}).keys(), f"{name} does not declare capabilities {cap_args}"
    if wanted:
        plugin["runtimeConfig"] = wanted
    return plugin


def addresses(result: dict[str, Any]) -> list[str]:
    return [ip["address"] for ip in result.get("ips", [])]
