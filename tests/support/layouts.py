"""Where the built plugins are, the one vocabulary of the layouts they are run in, and what a
lane needs to be present.

Layouts: ``single`` (a single-file executable, dist/<plugin>), ``fast`` (the fast layout,
dist/fast/<plugin>, exec'd), ``zygote`` (the fast layout served by a zygote), ``source`` (run from
source: python -m cni_macvlan <plugin>), ``inprocess`` (host-local through skel.handle, no exec).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from cni_macvlan.plugins import PLUGINS

ROOT = Path(__file__).resolve().parent.parent.parent
DIST = ROOT / "dist"
GO_PLUGINS = Path("/usr/lib/cni")
PLUGIN_NAMES = list(PLUGINS)
ALL_VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
# Debian's Go plugins (v1.1.1) stop at 1.0.0
GO_VERSIONS = ALL_VERSIONS[:-1]


def needed(what: Path | str, how: str) -> Path:
    """``what`` (a path, or a command looked up in PATH), else a skip; a failure under ``make test``, which
    installs everything its lanes use (tools/packages.sh) and sets CNI_REQUIRE_ALL."""
    found = what if isinstance(what, Path) or os.sep in what else shutil.which(what)
    if found is None or not os.path.exists(found):
        if os.environ.get("CNI_REQUIRE_ALL"):
            pytest.fail(f"{what} is missing: {how}")
        pytest.skip(f"{what} is missing ({how})")
    return Path(found)


def dist_executable(name: str) -> Path:
    return needed(DIST / name, "run `make build`")


def go_plugin(name: str) -> Path:
    return needed(GO_PLUGINS / name, "run `tools/packages.sh install test-host` (containernetworking-plugins)")


# The layouts a real runtime runs: the single files, the fast layout exec'd, the fast layout served by a zygote.
SHIPPED = ["single", "fast", "zygote"]


def plugin_dir(layout: str, dest: Path, go: tuple[str, ...] = ()) -> Path:
    """A CNI bin directory as a node has it: our plugins in ``layout`` and Debian's Go plugins named in ``go``,
    as links in ``dest`` (made). The plugins' names stay theirs: a plugin is the file its name points at."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PLUGIN_NAMES:
        (dest / name).symlink_to(dist_executable(name if layout == "single" else f"fast/{name}"))
    for name in go:
        (dest / name).symlink_to(go_plugin(name))
    return dest


def layout_env(layout: str, zygote: Any = None) -> dict[str, str]:
    """What a runtime's environment carries for ``layout``: the zygote's socket for "zygote"; for the others
    none (CNI_MACVLAN_ZYGOTE empty), so that an installed zygote can't serve them."""
    return zygote.env if layout == "zygote" else {"CNI_MACVLAN_ZYGOTE": ""}


RUNTIME_CLIENTS = ROOT / "build" / "runtime-clients"


def runtime_client(name: str) -> Path:
    """What tools/runtime-clients.sh built: "cnitool", or "cri" (the directory of the CRI's stubs)."""
    return needed(RUNTIME_CLIENTS / name, "run `make runtime-clients` (tools/runtime-clients.sh)")
