"""The release (`make release`: tools/release.py after build.spec), built twice from copies of this
checkout at two paths, with the commit's SOURCE_DATE_EPOCH: the tarball, the OCI image and the
DaemonSet, and the image run with podman exactly as the DaemonSet's containers are specified.

The two builds take about a minute; they are made once for this module (and xdist keeps the
module on one worker: the "release" group).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cni_macvlan import __version__
from tests.support import configs
from tests.support.lab import GATEWAY4, Lab
from tests.support.layouts import PLUGIN_NAMES, needed
from tests.support.podman import PrivatePodman, run_args
from tests.support.releases import PATH, Built, build_release, checkout_copy, commit_time, install, snapshot
from tests.support.runners import MacvlanRunner
from tests.support.zygote import wait_for

pytestmark = [
    pytest.mark.release,
    pytest.mark.xdist_group("release"),
    pytest.mark.timeout(1200),
    pytest.mark.skipif(os.geteuid() != 0, reason="podman builds and runs the image as root"),
]


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Built, Built, int]]:
    """Two releases of this checkout, built in two places from the same files: (first, second, epoch)."""
    needed("podman", "run `tools/packages.sh install release` (podman)")
    needed("gcc", "run `tools/packages.sh install build`")
    root = tmp_path_factory.mktemp("releases")
    epoch = commit_time()
    try:
        first = build_release(checkout_copy(root / "a"), epoch)
        second = build_release(checkout_copy(root / "another" / "checkout"), epoch)
        yield first, second, epoch
    finally:
        shutil.rmtree(root, ignore_errors=True)  # about 200 MB


def test_two_builds_of_the_same_commit_give_the_same_bytes(builds: tuple[Built, Built, int]) -> None:
    first, second, _ = builds
    for name in ("tarball", "image", "daemonset", "sums"):
        a, b = getattr(first, name), getattr(second, name)
        assert a.name == b.name and a.read_bytes() == b.read_bytes(), f"{a.name} differs between the two builds"
    assert snapshot(first.dist / "release") == snapshot(second.dist / "release")


def sums_of(text: str) -> dict[str, str]:
    """A SHA256SUMS file as {name: digest}."""
    return {name: digest for digest, name in (line.split("  ", 1) for line in text.splitlines())}


def test_the_tarball_holds_the_release_with_its_sums(builds: tuple[Built, Built, int], tmp_path: Path) -> None:
    """Named by the version (cni_macvlan/__init__.py) and the machine; flat, as upstream's: the
    single files, the fast layout, the zygote's unit, install.sh and SHA256SUMS of them all; owned
    by root, dated by the commit. dist/SHA256SUMS holds the three files `make release` publishes."""
    built, _, epoch = builds
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    assert built.tarball.name == f"cni-macvlan-{__version__}-linux-{arch}.tgz"
    with tarfile.open(built.tarball) as tar:
        members = tar.getmembers()
        files = {m.name: tar.extractfile(m).read() for m in members if m.isfile()}  # type: ignore[union-attr]
    assert [m.name for m in members] == sorted((m.name for m in members), key=lambda name: name.split("/"))
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", epoch)}
    top = {name for name in files if "/" not in name}
    assert top == {*PLUGIN_NAMES, "install.sh", "cni-macvlan-zygote.service", "SHA256SUMS"}
    assert {"cni-macvlan/cni-macvlan", "cni-macvlan/lib/_cni_modules.bin"} <= set(files)
    listed = sums_of(files["SHA256SUMS"].decode())
    assert listed == {name: hashlib.sha256(data).hexdigest() for name, data in files.items() if name != "SHA256SUMS"}
    assert sums_of(built.sums.read_text()) == {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (built.tarball, built.image, built.daemonset)
    }


def test_the_tarball_works_unpacked_into_a_cni_bin_dir_or_through_its_installer(
    builds: tuple[Built, Built, int], tmp_path: Path
) -> None:
    """Unpacked into the CNI bin directory as upstream's, the single files run as they are; unpacked
    anywhere, its install.sh installs it."""
    built, _, _ = builds
    bindir, unpacked = tmp_path / "opt" / "cni" / "bin", tmp_path / "unpacked"
    for d in (bindir, unpacked):
        d.mkdir(parents=True)
        subprocess.run(["tar", "-C", str(d), "-xzf", str(built.tarball)], check=True)
    env = {"PATH": PATH, "CNI_MACVLAN_ZYGOTE": ""}
    single = subprocess.run([bindir / "macvlan", "--version"], capture_output=True, text=True, env=env).stdout
    assert single.startswith(f"macvlan {__version__} (build ")
    prefix = tmp_path / "installed"
    install(unpacked, "--prefix", str(prefix), "--libdir", str(tmp_path / "lib"), "--zygote", "no")
    fast = subprocess.run([prefix / "macvlan", "--version"], capture_output=True, text=True, env=env).stdout
    assert fast == single, "one build, two layouts, one identity"


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[PrivatePodman]:
    pm = PrivatePodman(tmp_path / "podman")
    try:
        yield pm
    finally:
        pm.cleanup()


def test_the_image_runs_as_the_daemonset_specifies(
    builds: tuple[Built, Built, int], podman: PrivatePodman, lab: Lab, tmp_path: Path
) -> None:
    """The release's DaemonSet, its containers run by podman as a kubelet would (tests/support/
    podman.py, run_args): the init container installs the plugins into the "host"'s CNI bin
    directory (a temporary directory here); the zygote container serves an exec of the installed
    macvlan on the host, which works in a lab namespace; run again (a pod restart), the init
    container changes nothing and the zygote goes on; stopped, the plugins still work, exec'd."""
    built, _, _ = builds
    pod = yaml.safe_load(built.daemonset.read_text())["spec"]["template"]["spec"]
    [install], [zygote] = pod["initContainers"], pod["containers"]
    loaded = podman("load", "-i", str(built.image)).stdout
    assert f"Loaded image: {install['image']}" in loaded and zygote["image"] == install["image"]
    host, tag = tmp_path / "host", uuid.uuid4().hex[:6]

    installed = podman("run", "--rm", "--name", f"cmt-install-{tag}", *run_args(pod, install, host))
    assert "installed" in installed.stdout, installed.stdout
    bindir = host / "opt" / "cni" / "bin"
    assert sorted(p.name for p in bindir.iterdir()) == sorted([*PLUGIN_NAMES, "cni-macvlan.d"])
    assert all(os.readlink(bindir / name) == "cni-macvlan.d/current/cni-macvlan" for name in PLUGIN_NAMES)

    name = f"cmt-zygote-{tag}"
    podman("run", "-d", "--name", name, *run_args(pod, zygote, host))
    socket = host / "run" / "cni-macvlan" / "zygote.sock"
    wait_for(socket.exists, 20)
    pid = int(podman("inspect", "-f", "{{.State.Pid}}", name).stdout)
    run = MacvlanRunner(lab, bindir, "fast")
    served = {"CNI_MACVLAN_ZYGOTE": str(socket), "CNI_MACVLAN_DEBUG": "1"}  # the host's /run is elsewhere here
    conf = configs.macvlan_conf("ds", tmp_path / "leases", tmp_path / "state")
    c1, c2 = lab.container("c1"), lab.container("c2")
    out = run("ADD", conf, c1, container_id="c1", **served)
    assert out.ok()["ips"][0]["address"] == "10.77.0.2/24"
    assert f"run by the zygote {pid}" in out.stderr, out.stderr
    assert lab.ping(c1, GATEWAY4)

    rerun = podman("run", "--rm", "--name", f"cmt-reinstall-{tag}", *run_args(pod, install, host))
    assert "is already in" in rerun.stdout and "current build" not in rerun.stdout, rerun.stdout
    out = run("ADD", conf, c2, container_id="c2", **served)
    assert out.ok() and f"run by the zygote {pid}" in out.stderr

    grace = str(pod["terminationGracePeriodSeconds"])
    podman("stop", "-t", grace, name)
    assert not socket.exists(), "the zygote removed its socket"
    for cid, ns in (("c1", c1), ("c2", c2)):
        out = run("DEL", conf, ns, container_id=cid, **served)
        assert out.code == 0 and "run by the zygote" not in out.stderr, out
    c3 = lab.container("c3")
    out = run("ADD", conf, c3, container_id="c3", **served)
    assert out.ok()["ips"][0]["address"] == "10.77.0.4/24" and "run by the zygote" not in out.stderr  # round robin
    assert lab.ping(c3, GATEWAY4)
    run("DEL", conf, c3, container_id="c3").ok()
