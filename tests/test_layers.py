"""The product's imports run one way: each module imports only modules of its own layer or of a layer
below it. Read from the source (every import statement, those inside functions and TYPE_CHECKING
blocks too), so a lazy import can't hide an upward one.

  core          cni/                 the CNI protocol: imports nothing of ours
  ipam          ipam/                host-local and its lease stores: the core only
  link plugins  cni_macvlan/...      macvlan, ipvlan, their shared verbs and kernel work: the core,
                                     never the IPAM (reached in-process through the core's registry,
                                     cni/delegate.py IN_PROCESS, which the entry point fills)
  entry points  cni_macvlan/__main__.py, cni_macvlan/plugins.py (and the package's version)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("cni", "cni_macvlan", "ipam", "cni_install")
LAYERS = ["core", "ipam", "link plugins", "entry points", "installer"]
ENTRY_POINTS = {"cni_macvlan", "cni_macvlan.__main__", "cni_macvlan.plugins"}


def layer(module: str) -> str:
    top = module.partition(".")[0]
    if top == "cni":
        return "core"
    if top == "ipam":
        return "ipam"
    if module in ENTRY_POINTS:
        return "entry points"
    if top == "cni_install":
        return "installer"
    return "link plugins"


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = modules()


def imports(module: str, path: Path) -> set[str]:
    """The modules of ours that ``module`` imports (``from a import b`` counts a.b when that is a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        out.update(name for name in names if name in MODULES)
    return out


def test_the_layers_are_known() -> None:
    assert {"cni.skel", "ipam.plugin", "cni_macvlan.__main__"} <= set(MODULES)
    assert {layer(m) for m in MODULES} == set(LAYERS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_from_a_layer_above_its_own(module: str) -> None:
    own = LAYERS.index(layer(module))
    upward = sorted(name for name in imports(module, MODULES[module]) if LAYERS.index(layer(name)) > own)
    assert upward == [], f"{module} ({layer(module)}) imports from above: {upward}"


def test_the_core_imports_nothing_of_ours_but_itself() -> None:
    outside = {
        module: sorted(name for name in imports(module, path) if layer(name) != "core")
        for module, path in MODULES.items()
        if module.partition(".")[0] == "cni"
    }
    assert {m: names for m, names in outside.items() if names} == {}


def test_no_link_plugin_module_imports_the_ipam() -> None:
    """The in-process IPAM call goes through the core (cni/delegate.py), so the link plugins know no IPAM."""
    found = {
        module: sorted(name for name in imports(module, path) if layer(name) == "ipam")
        for module, path in MODULES.items()
        if layer(module) == "link plugins"
    }
    assert {m: names for m, names in found.items() if names} == {}


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The reader above finds every form of import (else the tests above would pass on anything)."""
    source = tmp_path / "m.py"
    source.write_text(
        "from cni_macvlan.plugins import PLUGINS\n"
        "def f():\n    from ..links import netlink\n    import ipam.plugin\n"
        "if False:\n    from cni.request import Request\n"
    )
    assert imports("ipam.x", source) == {"cni_macvlan.plugins", "ipam.plugin", "cni.request"}
    assert imports("cni_macvlan.attach.x", source) >= {"cni_macvlan.links.netlink"}
