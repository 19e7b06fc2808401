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
