"""The suite's fixtures (and nothing else: support code lives in tests/support/).

Layouts, one vocabulary (tests/support/layouts.py): the `host_local` fixture runs our host-local
``inprocess``, ``single``, ``fast`` and ``zygote``; the `macvlan` fixture runs our macvlan
``single``, ``fast``, ``zygote`` and ``source``. Every test that takes one runs in each.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from ipam.plugin import PLUGIN as HOST_LOCAL
from tests.support.layouts import PLUGIN_NAMES, dist_executable, needed
from tests.support.runners import MacvlanRunner, Outcome, Runner, Served, cni_env, json_bytes, run_exec, run_inprocess


@pytest.fixture(scope="session")
def public_tree() -> Any:
    """A copy of the built fast layout (dist/cni-macvlan) that every user can read and run, for the tests
    that exec it as another user: the clone may live where others can't enter (as /root is). Its
    `cni-macvlan` and plugin names are in the returned directory."""
    tree = dist_executable("cni-macvlan/cni-macvlan").parent
    root = Path(tempfile.mkdtemp(prefix="cni-public-"))
    try:
        copy = root / "cni-macvlan"
        shutil.copytree(tree, copy, symlinks=True)
        for name in PLUGIN_NAMES:
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
    from tests.support.zygote import Zygote

    if os.geteuid() != 0:
        pytest.skip("the zygote serves root only")
    exe = dist_executable("cni-macvlan/cni-macvlan")
    d = tmp_path_factory.mktemp("zygote")
    z = Zygote(exe, d / "z.sock", d / "z.log")
    yield z
    assert z.stop() == 0, z.log_text()
    assert not z.socket.exists()


@pytest.fixture
def own_zygote(tmp_path: Path) -> Any:
    """Zygotes this test starts (and may stop, kill or SIGSTOP): ``start(socket=None, *options,
    executable=None, pass_fds=())``; all gone afterwards."""
    from tests.support.zygote import Zygote

    started: list[Zygote] = []

    def start(socket: Path | None = None, *options: str, executable: Path | None = None, **kwargs: Any) -> Zygote:
        z = Zygote(
            executable or dist_executable("cni-macvlan/cni-macvlan"),
            socket or tmp_path / f"z{len(started)}" / "z.sock",
            tmp_path / f"z{len(started)}.log",
            *options,
            **kwargs,
        )
        started.append(z)
        return z

    yield start
    for z in started:
        if z.proc.poll() is None:
            os.kill(z.proc.pid, signal.SIGCONT)
            z.stop()


@pytest.fixture
def shared_dir() -> Any:
    """A directory other users can reach (pytest's tmp_path is root's alone), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="cni-shared-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(params=["inprocess", "single", "fast", "zygote"])
def host_local(request: pytest.FixtureRequest) -> Runner:
    """Run our host-local: in-process through the skeleton, or exec'd like a runtime does, as the
    single file dist/host-local, from the fast layout dist/fast/host-local, or that one served by
    a zygote."""
    if request.param == "inprocess":

        def run(command: str, config: dict[str, Any], **env: Any) -> Outcome:
            return run_inprocess(HOST_LOCAL, cni_env(command, **env), json_bytes(config))
    else:
        exe = dist_executable("host-local" if request.param == "single" else "fast/host-local")
        served = Served(request) if request.param == "zygote" else None
        extra = served.zygote.env if served else {}

        def run(command: str, config: dict[str, Any], **env: Any) -> Outcome:
            if served:
                served.calls += 1
            return run_exec(exe, cni_env(command, **{**extra, **env}), json_bytes(config))

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
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "fs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# ---- namespace lab and the macvlan plugin ----


@pytest.fixture
def lab() -> Any:
    """A node, an upstream peer holding the gateways, and containers on demand; all removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("namespace tests need root")
    for tool in ("ip", "nsenter", "ping"):
        needed(tool, "run `tools/packages.sh install test-host` (iproute2, util-linux, iputils-ping)")
    from tests.support.lab import Lab

    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def vlan_and_dummy() -> None:
    """The kernel can make 802.1Q and dummy links: the VM lane's tests use this (the host's kernel can't)."""
    from tests.support.lab import kernel_has_parents

    if os.geteuid() != 0 or not kernel_has_parents():
        if os.environ.get("IN_TEST_VM"):
            pytest.fail("the VM lane's kernel has no 802.1Q or dummy: modules not loaded?")
        pytest.skip("needs 802.1Q and dummy: run in the VM lane (tools/run-in-vm.sh)")


@pytest.fixture(scope="session")
def source_plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CNI_PATH whose plugins run from source (python -m cni_macvlan <name>)."""
    d = tmp_path_factory.mktemp("source-plugins")
    for name in PLUGIN_NAMES:
        script = d / name
        script.write_text(f'#!/bin/sh\nexec {sys.executable} -m cni_macvlan {name} "$@"\n')
        script.chmod(0o755)
    return d


@pytest.fixture(params=["single", "fast", "zygote", "source"])
def macvlan(request: pytest.FixtureRequest, lab: Any, source_plugin_dir: Path) -> MacvlanRunner:
    """Our macvlan as the single file dist/macvlan, from the fast layout dist/fast (exec'd, or served
    by a zygote), or from source; CNI_PATH is the same directory, so the IPAM is the matching
    host-local."""
    if request.param == "single":
        return MacvlanRunner(lab, dist_executable("macvlan").parent, "single")
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
