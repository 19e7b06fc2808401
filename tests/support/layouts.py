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
PLUGIN_NAMES = list(PLUGINS)
ALL_VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


def pinned(name: str) -> str:
    """A version pinned in tools/versions.env (NAME=value lines: the one place for what is built from the
    Go module proxy)."""
    for line in (ROOT / "tools" / "versions.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == name:
            return value.strip()
    raise KeyError(f"{name} is not pinned in tools/versions.env")


# The two Go peers. Upstream: containernetworking/plugins at the pinned release, built from the Go module proxy
# by tools/go-programs.sh (make upstream-plugins), the reference of every interop and "same as Go" test; it
# speaks 0.1.0 to 1.1.0. Debian's package (v1.1.1, 2022, in /usr/lib/cni): the second peer where it adds
# something (the lease store read and written by both generations); it stops at 1.0.0.
UPSTREAM_VERSION = pinned("UPSTREAM_PLUGINS")
UPSTREAM_PLUGINS = ROOT / "build" / "go" / f"upstream-plugins-{UPSTREAM_VERSION}" / "bin"
UPSTREAM_VERSIONS = ALL_VERSIONS
DEBIAN_PLUGINS = Path("/usr/lib/cni")
DEBIAN_VERSIONS = ALL_VERSIONS[:-1]


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


def upstream_plugin(name: str) -> Path:
    """Upstream's Go plugin ``name`` at the pinned release."""
    return needed(UPSTREAM_PLUGINS / name, "run `make upstream-plugins` (tools/go-programs.sh)")


def debian_plugin(name: str) -> Path:
    """Debian's Go plugin ``name`` (v1.1.1)."""
    return needed(DEBIAN_PLUGINS / name, "run `tools/packages.sh install test-host` (containernetworking-plugins)")


# The layouts a real runtime runs: the single files, the fast layout exec'd, the fast layout served by a zygote.
SHIPPED = ["single", "fast", "zygote"]


def plugin_dir(layout: str, dest: Path, go: tuple[str, ...] = ()) -> Path:
    """A CNI bin directory as a node has it: our plugins in ``layout`` and upstream's Go plugins named in ``go``,
    as links in ``dest`` (made). The plugins' names stay theirs: a plugin is the file its name points at."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PLUGIN_NAMES:
        (dest / name).symlink_to(dist_executable(name if layout == "single" else f"fast/{name}"))
    for name in go:
        (dest / name).symlink_to(upstream_plugin(name))
    return dest


def layout_env(layout: str, zygote: Any = None) -> dict[str, str]:
    """What a runtime's environment carries for ``layout``: the zygote's socket for "zygote"; for the others
    none (CNI_MACVLAN_ZYGOTE empty), so that an installed zygote can't serve them."""
    return zygote.env if layout == "zygote" else {"CNI_MACVLAN_ZYGOTE": ""}


RUNTIME_CLIENTS = ROOT / "build" / "runtime-clients"


def runtime_client(name: str) -> Path:
    """What tools/runtime-clients.sh built: "cnitool", or "cri" (the directory of the CRI's stubs)."""
    return needed(RUNTIME_CLIENTS / name, "run `make runtime-clients` (tools/runtime-clients.sh)")
