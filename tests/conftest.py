from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ipam.plugin import PLUGIN as HOST_LOCAL
from tests.helpers import DIST, GO_PLUGINS, Outcome, cni_env, run_exec, run_inprocess

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


Runner = Callable[..., Outcome]


@pytest.fixture(scope="session")
def public_tree() -> Any:
    """A copy of the built fast layout (dist/cni-macvlan) that every user can read and run, for the tests
    that exec it as another user: the clone may live where others can't enter (as /root is). Its
    `cni-macvlan`, `macvlan` and `host-local` are in the returned directory."""
    tree = dist_executable("cni-macvlan/cni-macvlan").parent
    root = Path(tempfile.mkdtemp(prefix="cni-public-"))
    try:
        copy = root / "cni-macvlan"
        shutil.copytree(tree, copy, symlinks=True)
        for name in ("macvlan", "host-local"):
            (copy / name).symlink_to("cni-macvlan")
        for d in [root, *(p for p in copy.rglob("*") if p.is_dir() and not p.is_symlink()), copy]:
            d.chmod(0o755)
        for f in copy.rglob("*"):
            if f.is_file() and not f.is_symlink():
                f.chmod(f.stat().st_mode | 0o444)
        yield copy
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A zygote of the built tree (launcher/_cni_zygote.py) on a private socket, for this session."""
    from tests.zygote import Zygote

    if os.geteuid() != 0:
        pytest.skip("the zygote serves root only")
    exe = dist_executable("cni-macvlan/cni-macvlan")
    d = tmp_path_factory.mktemp("zygote")
    z = Zygote(exe, d / "z.sock", d / "z.log")
    yield z
    assert z.stop() == 0, z.log_text()
    assert not z.socket.exists()


class Served:
    """Counts a runner's execs in "zygote" mode and checks after the test that the zygote forked at
    least that many children: a zygote that declined (the launcher then runs the plugin itself)
    would pass unseen otherwise."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.zygote = request.getfixturevalue("zygote")
        self.before = self.zygote.served()
        self.calls = 0
        request.addfinalizer(self.check)

    def check(self) -> None:
        assert self.zygote.served() - self.before >= self.calls, self.zygote.log_text()[-2000:]


@pytest.fixture(params=["inprocess", "exec", "fast", "zygote"])
def host_local(request: pytest.FixtureRequest) -> Runner:
    """Run our host-local: in-process through the skeleton, or exec'd like a runtime does, as the
    single-file dist/host-local, from the fast layout dist/fast/host-local, or that one served by
    a zygote."""
    from tests.helpers import json_bytes

    if request.param in ("exec", "fast", "zygote"):
        exe = dist_executable("host-local" if request.param == "exec" else "fast/host-local")
        served = Served(request) if request.param == "zygote" else None
        extra = served.zygote.env if served else {}

        def run(command: str, config: dict[str, Any], **env: Any) -> Outcome:
            if served:
                served.calls += 1
            return run_exec(exe, cni_env(command, **{**extra, **env}), json_bytes(config))
    else:

        def run(command: str, config: dict[str, Any], **env: Any) -> Outcome:
            return run_inprocess(HOST_LOCAL, cni_env(command, **env), json_bytes(config))

    run.mode = request.param  # type: ignore[attr-defined]
    return run


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "ipam-store"
    d.mkdir(mode=0o755)
    return d


@pytest.fixture
def fs(tmp_path: Path) -> Any:
    """A 256 KiB tmpfs of our own, to fill or make read-only; unmounted afterwards whatever happens."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "fs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture(scope="session")
def go_host_local() -> Path:
    return go_plugin("host-local")


# ---- namespace lab and the macvlan plugin ----


@pytest.fixture
def lab():
    """A node, an upstream peer holding the gateways, and containers on demand; all removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("namespace tests need root")
    for tool in ("ip", "nsenter", "ping"):
        needed(tool, "run `tools/packages.sh install test-host` (iproute2, util-linux, iputils-ping)")
    from tests.netns import Lab

    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="session")
def source_plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CNI_PATH whose plugins run from source (python -m cni_macvlan <name>)."""
    d = tmp_path_factory.mktemp("source-plugins")
    for name in ("macvlan", "host-local"):
        script = d / name
        script.write_text(f'#!/bin/sh\nexec {sys.executable} -m cni_macvlan {name} "$@"\n')
        script.chmod(0o755)
    return d


class MacvlanRunner:
    """Run a plugin (ours, from dist/ or from source) in the lab's node namespace, as a runtime does."""

    def __init__(self, lab: Any, plugin_dir: Path, mode: str, served: Served | None = None) -> None:
        self.lab = lab
        self.plugin_dir = plugin_dir
        self.mode = mode
        self.served = served

    def __call__(
        self,
        command: str,
        config: dict[str, Any],
        netns: str = "/run/netns/none",
        ifname: str = "eth0",
        container_id: str = "c1",
        plugin: str = "macvlan",
        **env: str,
    ) -> Outcome:
        full_env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_PATH": str(self.plugin_dir),
            **(self.served.zygote.env if self.served else {}),
            **env,
        }
        if self.served:
            self.served.calls += 1
        return self.lab.run([str(self.plugin_dir / plugin)], full_env, config)


@pytest.fixture(params=["dist", "fast", "zygote", "source"])
def macvlan(request: pytest.FixtureRequest, lab: Any, source_plugin_dir: Path) -> MacvlanRunner:
    """Our macvlan as the single-file dist/macvlan, from the fast layout dist/fast (exec'd, or served
    by a zygote), or from source; CNI_PATH is the same directory, so the IPAM is the matching
    host-local."""
    if request.param == "dist":
        return MacvlanRunner(lab, dist_executable("macvlan").parent, "dist")
    if request.param == "fast":
        return MacvlanRunner(lab, dist_executable("fast/macvlan").parent, "fast")
    if request.param == "zygote":
        return MacvlanRunner(lab, dist_executable("fast/macvlan").parent, "zygote", Served(request))
    return MacvlanRunner(lab, source_plugin_dir, "source")


@pytest.fixture(autouse=True, scope="session")
def _node_defaults_stay_untouched() -> Any:
    """Tests set dataDir and stateDir; the node's default stores must not appear because of them."""
    defaults = [Path("/var/lib/cni/networks"), Path("/var/lib/cni/cni-macvlan")]
    before = {p: p.exists() for p in defaults}
    yield
    created = [str(p) for p in defaults if p.exists() and not before[p]]
    assert not created, f"the tests wrote to the node's default stores: {created}"
