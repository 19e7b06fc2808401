"""The installer (install.sh of a release: the cni_install package), on the release `make build`
stages (dist/release) and variants of it that are other builds.

What it promises: a runtime exec'ing a plugin during an upgrade gets a whole old or a whole new
plugin; the new build's zygote takes over; --uninstall removes exactly what was installed; places
others could change are refused before anything is written; a DESTDIR install (a package, or a
container writing the host's directories) is right on the node.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cni_macvlan import __version__
from tests.support import configs
from tests.support.layouts import PLUGIN_NAMES, ROOT
from tests.support.releases import PATH, identity, install, snapshot, staged, variant
from tests.support.runners import cni_env, json_bytes, run_exec
from tests.support.users import NOBODY

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the installer's rules are root's")


def places(root: Path) -> tuple[Path, Path, Path, list[str]]:
    """PREFIX, LIBDIR, UNITDIR under ``root``, and the installer's arguments for them."""
    prefix, libdir, unitdir = root / "opt" / "cni" / "bin", root / "opt" / "cni-macvlan", root / "units"
    return prefix, libdir, unitdir, ["--prefix", str(prefix), "--libdir", str(libdir), "--unitdir", str(unitdir)]


def version_line(name: str, release: Path) -> str:
    return f"{name} {__version__} (build {identity(release)})\n"


def test_an_install_is_a_whole_build_behind_one_link(tmp_path: Path) -> None:
    release = staged()
    prefix, libdir, unitdir, args = places(tmp_path)
    install(release, *args)
    build = f"{__version__}-{identity(release)}"
    assert os.readlink(libdir / "current") == f"builds/{build}"
    assert sorted(p.name for p in prefix.iterdir()) == sorted(PLUGIN_NAMES)
    for name in PLUGIN_NAMES:
        assert os.readlink(prefix / name) == "../../cni-macvlan/current/cni-macvlan", (
            "relative: right under DESTDIR too"
        )
        out = subprocess.run([prefix / name, "--version"], capture_output=True, text=True, env={"PATH": PATH})
        assert out.stdout == version_line(name, release)
    installed = snapshot(libdir / "builds" / build)
    shipped = snapshot(release / "cni-macvlan")
    assert {k: v[3] for k, v in installed.items()} == {k: v[3] for k, v in shipped.items()}, "the release's files"
    assert all(mode in (0o644, 0o755) for _, mode, uid, _ in installed.values())
    unit = (unitdir / "cni-macvlan-zygote.service").read_text()
    assert f"ExecStart={libdir}/current/cni-macvlan zygote\n" in unit
    manifest = json.loads((libdir / "installed.json").read_text())
    assert manifest["builds"] == [build] and manifest["layout"] == "fast"
    assert sorted(manifest["plugins"]) == sorted(str(prefix / n) for n in PLUGIN_NAMES)
    # and it works: an ADD and a DEL through the installed host-local
    conf = json_bytes(configs.ipam_conf(tmp_path / "leases", "inst", "10.68.0.0/24"))
    env = {**cni_env("ADD"), "CNI_MACVLAN_ZYGOTE": ""}
    assert run_exec(prefix / "host-local", env, conf).ok()["ips"][0]["address"] == "10.68.0.2/24"
    assert run_exec(prefix / "host-local", {**env, "CNI_COMMAND": "DEL"}, conf).code == 0


def test_execs_during_upgrades_get_a_whole_old_or_a_whole_new_plugin(tmp_path: Path) -> None:
    """Runtimes exec the plugin in a loop while the installer replaces its build five times (A, then
    B, C, A, B, C: from the third on, each install also removes the build before the previous one).
    Every exec succeeds and is wholly one build: its --version line, and a CNI VERSION (each loads
    every module of the plugin)."""
    a = staged()
    releases = [a, variant(a, tmp_path / "b", "b"), variant(a, tmp_path / "c", "c")]
    lines = {version_line("macvlan", r) for r in releases}
    assert len(lines) == 3
    prefix, libdir, _, args = places(tmp_path / "node")
    args += ["--zygote", "no"]
    install(a, *args)
    plugin = str(prefix / "macvlan")
    stop = threading.Event()
    execs: list[tuple[float, float, str]] = []  # start, end, what went wrong ("" if nothing)

    def runtime() -> None:
        env = {"PATH": PATH, "CNI_MACVLAN_ZYGOTE": ""}
        n = 0
        while not stop.is_set():
            start = time.monotonic()
            n += 1
            if n % 2:
                out = subprocess.run([plugin, "--version"], capture_output=True, text=True, env=env)
                wrong = "" if out.returncode == 0 and out.stdout in lines and not out.stderr else repr(out)
            else:
                out = subprocess.run(
                    [plugin], input='{"cniVersion":"1.0.0"}', capture_output=True, text=True,
                    env={**env, "CNI_COMMAND": "VERSION"},
                )  # fmt: skip
                ok = out.returncode == 0 and json.loads(out.stdout or "{}").get("cniVersion") == "1.1.0"
                wrong = "" if ok and not out.stderr else repr(out)
            execs.append((start, time.monotonic(), wrong))

    threads = [threading.Thread(target=runtime) for _ in range(2)]
    for t in threads:
        t.start()
    windows = []
    try:
        time.sleep(0.2)
        for release in [*releases[1:], *releases]:
            start = time.monotonic()
            install(release, *args)
            windows.append((start, time.monotonic()))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert [wrong for _, _, wrong in execs if wrong] == []
    during = [sum(1 for s, _, _ in execs if start <= s < end) for start, end in windows]
    assert min(during) >= 1, f"execs started during each install: {during}"
    print(f"{len(execs)} execs, {sum(during)} of them started during the 5 upgrades ({during})")
    builds = sorted(p.name for p in (libdir / "builds").iterdir())
    assert builds == sorted(f"{__version__}-{identity(r)}" for r in releases[1:]), "the current and the one before"
    assert subprocess.run([plugin, "--version"], capture_output=True, text=True).stdout == version_line(
        "macvlan", releases[2]
    )


def test_an_upgrade_hands_over_to_the_new_builds_zygote(tmp_path: Path, own_zygote: Any) -> None:
    """A zygote run from LIBDIR/current (by a supervisor that is not systemd, or a container): the
    installer's first exec of the new build makes it decline and stop; its supervisor starts the new
    build's. A reinstall of the same build leaves the zygote alone."""
    a = staged()
    b = variant(a, tmp_path / "b", "b")
    prefix, libdir, _, args = places(tmp_path / "node")
    sock = tmp_path / "run" / "zygote.sock"
    args += ["--zygote", "no", "--socket", str(sock)]
    install(a, *args)
    old = own_zygote(sock, executable=libdir / "current" / "cni-macvlan")
    env = {"PATH": PATH, **old.env, "CNI_MACVLAN_DEBUG": "1"}
    served = subprocess.run([prefix / "macvlan", "--version"], capture_output=True, text=True, env=env)
    assert served.stdout == version_line("macvlan", a) and f"run by the zygote {old.proc.pid}" in served.stderr
    out = install(b, *args)
    assert f"the zygote of the previous build (pid {old.proc.pid}) stopped" in out.stdout
    assert old.proc.wait(5) == 0
    new = own_zygote(sock, executable=libdir / "current" / "cni-macvlan")  # what its supervisor does
    served = subprocess.run([prefix / "macvlan", "--version"], capture_output=True, text=True, env=env)
    assert served.stdout == version_line("macvlan", b) and f"run by the zygote {new.proc.pid}" in served.stderr
    out = install(b, *args)
    assert "zygote" not in out.stdout and new.proc.poll() is None


def test_uninstall_removes_exactly_what_was_installed(tmp_path: Path) -> None:
    """Everything made goes, with the directories made for it; what others put in PREFIX stays,
    and so does a plugin someone replaced since."""
    node = tmp_path / "node"
    (node / "opt" / "cni" / "bin").mkdir(parents=True)
    (node / "opt" / "cni" / "bin" / "bridge").write_bytes(b"\x7fELF someone else's plugin")
    before = snapshot(node)
    prefix, libdir, unitdir, args = places(node)
    install(staged(), *args)
    install(variant(staged(), tmp_path / "b", "b"), *args)  # an upgrade: two builds kept
    (prefix / "tuning").write_bytes(b"\x7fELF installed meanwhile")
    out = install(staged(), *args, "--uninstall")
    assert "uninstalled" in out.stdout
    after = snapshot(node)
    assert after == {**before, "opt/cni/bin/tuning": after["opt/cni/bin/tuning"]}

    install(staged(), *args)
    (prefix / "host-local").unlink()
    (prefix / "host-local").write_bytes(b"\x7fELF the Go host-local, put back by hand")
    out = install(staged(), *args, "--uninstall")
    assert f"left {prefix / 'host-local'}: it is no longer what we installed" in out.stdout
    assert sorted(p.name for p in prefix.iterdir()) == ["bridge", "host-local", "tuning"]
    assert not libdir.exists() and not unitdir.exists()
    again = install(staged(), *args, "--uninstall", check=False)
    assert again.returncode == 1 and "nothing to uninstall" in again.stderr


def _world_writable(root: Path) -> list[str]:
    (root / "shared").mkdir(mode=0o777)
    os.chmod(root / "shared", 0o777)
    return ["--prefix", str(root / "shared" / "bin"), "--libdir", str(root / "lib")]


def _users_prefix(root: Path) -> list[str]:
    (root / "bin").mkdir()
    os.chown(root / "bin", NOBODY, NOBODY)
    return ["--prefix", str(root / "bin"), "--libdir", str(root / "lib")]


def _users_symlink(root: Path) -> list[str]:
    (root / "real").mkdir()
    (root / "bin").symlink_to("real")
    os.chown(root / "bin", NOBODY, NOBODY, follow_symlinks=False)
    return ["--prefix", str(root / "bin"), "--libdir", str(root / "lib")]


def _group_writable_libdir(root: Path) -> list[str]:
    (root / "lib").mkdir()
    os.chmod(root / "lib", 0o775)
    return ["--prefix", str(root / "bin"), "--libdir", str(root / "lib")]


def _foreign_libdir(root: Path) -> list[str]:
    (root / "lib").mkdir()
    (root / "lib" / "notes.txt").write_text("someone's")
    return ["--prefix", str(root / "bin"), "--libdir", str(root / "lib")]


def _relative(root: Path) -> list[str]:
    return ["--prefix", "opt/cni/bin", "--libdir", str(root / "lib")]


@pytest.mark.parametrize(
    ("place", "message"),
    [
        (_world_writable, "is writable by others"),
        (_users_prefix, f"is owned by uid {NOBODY}"),
        (_users_symlink, f"is a symlink of uid {NOBODY}"),
        (_group_writable_libdir, "is writable by its group"),
        (_foreign_libdir, "holds files not installed by install.sh"),
        (_relative, "give an absolute path"),
    ],
)
def test_places_others_could_change_are_refused_and_nothing_is_written(
    tmp_path: Path, place: Any, message: str
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    args = place(root)
    before = snapshot(root)
    out = install(staged(), *args, "--unitdir", str(root / "units"), check=False)
    assert out.returncode == 1 and message in out.stderr, out
    assert snapshot(root) == before


def test_a_damaged_release_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    damaged = tmp_path / "release"
    shutil.copytree(staged(), damaged, symlinks=True)
    with open(damaged / "cni-macvlan" / "lib" / "_cni_zygote.pyc", "r+b") as f:
        f.seek(100)
        f.write(b"\0")
    root = tmp_path / "node"
    root.mkdir()
    before = snapshot(root)
    out = install(damaged, *places(root)[3], check=False)
    assert out.returncode == 1 and "_cni_zygote.pyc does not match SHA256SUMS" in out.stderr, out
    assert snapshot(root) == before


def test_a_prefix_that_is_roots_symlink_is_followed(tmp_path: Path) -> None:
    """/opt/cni/bin -> /usr/lib/cni, as some distributions ship it: the links are right for the real
    directory."""
    (tmp_path / "usr" / "lib" / "cni").mkdir(parents=True)
    (tmp_path / "opt" / "cni").mkdir(parents=True)
    (tmp_path / "opt" / "cni" / "bin").symlink_to("../../usr/lib/cni")
    prefix, _, _, args = places(tmp_path)
    install(staged(), *args, "--zygote", "no")
    assert os.readlink(tmp_path / "usr" / "lib" / "cni" / "macvlan") == "../../../opt/cni-macvlan/current/cni-macvlan"
    out = subprocess.run([prefix / "macvlan", "--version"], capture_output=True, text=True, env={"PATH": PATH})
    assert out.stdout == version_line("macvlan", staged())


def test_the_single_file_layout_and_back(tmp_path: Path) -> None:
    """--layout single: each plugin a file of its own (renamed over the old one); then the fast
    layout again, then nothing."""
    release = staged()
    node = tmp_path / "node"
    node.mkdir()
    before = snapshot(node)
    prefix, libdir, _, args = places(node)
    install(release, *args, "--layout", "single")
    for name in PLUGIN_NAMES:
        assert not (prefix / name).is_symlink()
        assert (prefix / name).read_bytes() == (release / name).read_bytes()
        assert (prefix / name).stat().st_mode & 0o777 == 0o755
    assert not (libdir / "current").exists()
    out = subprocess.run([prefix / "macvlan", "--version"], capture_output=True, text=True, env={"PATH": PATH})
    assert out.stdout == version_line("macvlan", release)
    install(release, *args)
    assert all((prefix / name).is_symlink() for name in PLUGIN_NAMES)
    install(release, *args, "--layout", "single")
    install(release, *args, "--uninstall")
    assert snapshot(node) == before


def test_modes_are_as_released_whatever_the_umask(tmp_path: Path) -> None:
    """Root's umask may be 077 (a hardened node): the build, the unit and the single files still get
    the modes they are released with, so every user may run a plugin and read the unit."""
    release = staged()
    prefix, libdir, unitdir, args = places(tmp_path / "node")
    old = os.umask(0o077)  # install.sh inherits it
    try:
        install(release, *args)
        install(release, *args[:2], "--libdir", str(tmp_path / "lib-single"), "--layout", "single", "--replace")
    finally:
        os.umask(old)
    build = libdir / "builds" / f"{__version__}-{identity(release)}"
    installed, shipped = snapshot(build), snapshot(release / "cni-macvlan")
    assert {k: v[1] for k, v in installed.items()} == {k: v[1] for k, v in shipped.items()}
    assert {v[1] for v in installed.values()} == {0o644, 0o755}
    assert (unitdir / "cni-macvlan-zygote.service").stat().st_mode & 0o777 == 0o644
    assert all((prefix / name).stat().st_mode & 0o777 == 0o755 for name in PLUGIN_NAMES)


def test_a_destdir_install_is_right_on_the_node(tmp_path: Path) -> None:
    """--destdir: the node's paths written under another root (a package's staging directory, or the
    host's directories mounted in a container): the manifest speaks of the node's paths, the links
    lead to the build from where the node will see them, nothing is started."""
    root = tmp_path / "stage"
    root.mkdir()
    args = ["--destdir", str(root), "--prefix", "/opt/cni/bin", "--libdir", "/opt/cni-macvlan"]
    out = install(staged(), *args, "--unitdir", "/etc/systemd/system")
    assert "systemd" not in out.stdout
    assert os.readlink(root / "opt/cni/bin/macvlan") == "../../cni-macvlan/current/cni-macvlan"
    version = subprocess.run([root / "opt/cni/bin/macvlan", "--version"], capture_output=True, text=True)
    assert version.stdout == version_line("macvlan", staged())
    unit = (root / "etc/systemd/system/cni-macvlan-zygote.service").read_text()
    assert "ExecStart=/opt/cni-macvlan/current/cni-macvlan zygote\n" in unit
    manifest = json.loads((root / "opt/cni-macvlan/installed.json").read_text())
    assert manifest["prefix"] == "/opt/cni/bin" and "/opt/cni/bin/macvlan" in manifest["plugins"]
    install(staged(), *args, "--uninstall")
    assert list(root.iterdir()) == []


def test_make_install_and_uninstall_run_the_installer(tmp_path: Path) -> None:
    """`make install` (the package managers' way: DESTDIR) and `make uninstall` are install.sh."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}  # not a sub-make of ours
    make = ["make", "--no-print-directory", "-s"]
    plan = subprocess.run([*make, "-n", "build"], cwd=ROOT, env=env, capture_output=True, text=True).stdout
    if [line for line in plan.splitlines() if not line.startswith("tools/packages.sh")]:  # it would build
        message = "dist/ is older than the sources: run `make build` first"
        pytest.fail(message) if os.environ.get("CNI_REQUIRE_ALL") else pytest.skip(message)
    root = tmp_path / "pkg"
    variables = [f"DESTDIR={root}", "PREFIX=/usr/lib/cni", "LIBDIR=/usr/lib/cni-macvlan", "ZYGOTE=no"]
    made = subprocess.run([*make, "install", *variables], cwd=ROOT, env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stdout + made.stderr
    assert os.readlink(root / "usr/lib/cni/macvlan") == "../cni-macvlan/current/cni-macvlan"
    gone = subprocess.run([*make, "uninstall", *variables], cwd=ROOT, env=env, capture_output=True, text=True)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert list(root.iterdir()) == []


# ---- what the installer trusts, and what a run cut short leaves (an attacker's review of it) ----


def test_a_forged_manifest_is_never_acted_on(tmp_path: Path) -> None:
    """--uninstall removes only what the manifest names, so the manifest must be what we wrote: in a
    LIBDIR that others can write it is refused with the directory; a manifest naming anything an
    install of ours does not make (a build outside builds/, a plugin outside PREFIX) is refused as
    damaged, and nothing is removed either way."""
    node = tmp_path / "node"
    node.mkdir()
    prefix, libdir, _, args = places(node)
    install(staged(), *args)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("root's")
    manifest = json.loads((libdir / "installed.json").read_text())
    forged = {**manifest, "builds": [str(victim)], "plugins": {f"{prefix}/../../../../victim/precious": {"link": "x"}}}
    (libdir / "installed.json").write_text(json.dumps(forged))
    out = install(staged(), *args, "--uninstall", check=False)
    assert out.returncode == 1 and "installed.json is damaged" in out.stderr, out
    libdir.chmod(0o777)
    out = install(staged(), *args, "--uninstall", check=False)
    assert out.returncode == 1 and "is writable by others" in out.stderr, out
    assert (victim / "precious").read_text() == "root's" and (prefix / "macvlan").is_symlink()


def test_a_libdir_is_used_only_when_new_or_empty_and_kept_apart_from_prefix(tmp_path: Path) -> None:
    """A LIBDIR without our manifest holds someone else's files unless it is empty: refused (its
    files would be ours to remove), and so is a PREFIX inside it."""
    other = tmp_path / "opt" / "app"
    (other / "lib").mkdir(parents=True)
    (other / "lib" / "libimportant.so.1").write_bytes(b"\x7fELF another program's")
    out = install(staged(), "--prefix", str(tmp_path / "bin"), "--libdir", str(other), "--zygote", "no", check=False)
    assert out.returncode == 1 and "holds files not installed by install.sh" in out.stderr, out
    assert (other / "lib" / "libimportant.so.1").exists()
    inside = install(staged(), "--prefix", str(other / "bin"), "--libdir", str(other), check=False)
    assert inside.returncode == 1 and "is inside --libdir" in inside.stderr, inside
    empty = tmp_path / "empty"
    empty.mkdir()
    install(staged(), "--prefix", str(tmp_path / "bin"), "--libdir", str(empty), "--zygote", "no")
    assert os.readlink(empty / "current") == f"builds/{__version__}-{identity(staged())}"


def test_a_run_cut_short_is_finished_by_the_next_one_or_removed_by_uninstall(tmp_path: Path) -> None:
    """The manifest is written before anything changes, listing all a run may make: an installer
    killed (kill -9) right after it switched to the new build leaves a manifest marked pending; the
    next install finishes the job, and --uninstall then leaves nothing. A directory where a plugin
    goes is refused before anything changes."""
    node = tmp_path / "node"
    node.mkdir()
    before = snapshot(node)
    prefix, libdir, _, args = places(node)
    prefix.mkdir(parents=True)
    (prefix / "ipvlan").mkdir()
    refused = install(staged(), *args, "--zygote", "no", "--replace", check=False)
    assert refused.returncode == 1 and "ipvlan is a directory" in refused.stderr, refused
    assert not libdir.exists()
    (prefix / "ipvlan").rmdir()
    killed = install(staged(), *args, "--zygote", "no", check=False, env={"CNI_MACVLAN_CRASH_AT": "install-switched"})
    assert killed.returncode == -9, killed
    manifest = json.loads((libdir / "installed.json").read_text())
    assert manifest["pending"] is True and manifest["builds"] == [f"{__version__}-{identity(staged())}"]
    assert sorted(manifest["plugins"]) == sorted(str(prefix / n) for n in PLUGIN_NAMES)
    install(staged(), *args, "--zygote", "no")
    assert "pending" not in json.loads((libdir / "installed.json").read_text())
    assert sorted(p.name for p in prefix.iterdir()) == sorted(PLUGIN_NAMES)
    killed = install(staged(), *args, "--zygote", "no", check=False, env={"CNI_MACVLAN_CRASH_AT": "install-switched"})
    assert killed.returncode == -9, killed
    install(staged(), *args, "--uninstall")
    assert not libdir.exists() and list(prefix.iterdir()) == []
    assert {k: v for k, v in snapshot(node).items() if not k.startswith("opt")} == before


def test_a_failure_after_the_switch_puts_the_build_before_back(tmp_path: Path, monkeypatch: Any) -> None:
    """In-process (the installer's package from source): linking the plugins fails after the switch;
    the previous build is current again and the error is the installer's."""
    from cni_install import install as installing
    from cni_install.node import Node
    from cni_install.release import Release

    node = tmp_path / "node"
    node.mkdir()
    prefix, libdir, unitdir, args = places(node)
    install(staged(), *args, "--zygote", "no")
    variant_release = variant(staged(), tmp_path / "b", "b")

    def broken(self: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(installing.Installer, "link_plugins", broken)
    where = Node(str(prefix), str(libdir), str(unitdir), "")
    release = Release(str(variant_release), lambda bundle: identity(variant_release))
    installer = installing.Installer(release, where, "fast", False, "/nonexistent")
    with pytest.raises(OSError, match="No space left"):
        installer.run()
    assert os.readlink(libdir / "current") == f"builds/{__version__}-{identity(staged())}"


def test_a_build_in_place_is_used_only_as_we_made_it(tmp_path: Path) -> None:
    node = tmp_path / "node"
    node.mkdir()
    _, libdir, _, args = places(node)
    install(staged(), *args, "--zygote", "no")
    build = libdir / "builds" / f"{__version__}-{identity(staged())}"
    (build / "lib" / "planted.cpython-311-x86_64-linux-gnu.so").write_bytes(b"not ours")
    out = install(staged(), *args, "--zygote", "no", check=False)
    assert out.returncode == 1 and "differs from this release (lib/planted" in out.stderr, out
    (build / "lib" / "planted.cpython-311-x86_64-linux-gnu.so").unlink()
    (build / "lib").chmod(0o777)
    out = install(staged(), *args, "--zygote", "no", check=False)
    assert out.returncode == 1 and "differs from this release (lib)" in out.stderr, out


def test_plugins_not_ours_are_replaced_only_when_asked_and_put_back_on_uninstall(tmp_path: Path) -> None:
    """A node's /opt/cni/bin often holds upstream's macvlan, ipvlan and host-local: refused unless
    --replace; then each is kept in LIBDIR/replaced/ and --uninstall puts it back as it was."""
    node = tmp_path / "node"
    node.mkdir()
    prefix, libdir, _, args = places(node)
    prefix.mkdir(parents=True)
    (prefix / "host-local").write_bytes(b"\x7fELF upstream's host-local")
    (prefix / "host-local").chmod(0o755)
    (prefix / "macvlan").symlink_to("/usr/lib/cni/macvlan")
    before = snapshot(node)
    out = install(staged(), *args, check=False)
    assert out.returncode == 1 and "is not ours" in out.stderr and "--replace" in out.stderr, out
    assert snapshot(node) == before
    out = install(staged(), *args, "--replace")
    assert f"replacing {prefix / 'host-local'} (not ours)" in out.stdout
    assert (libdir / "replaced" / "host-local").read_bytes() == b"\x7fELF upstream's host-local"
    assert os.readlink(prefix / "host-local") == "../../cni-macvlan/current/cni-macvlan"
    install(staged(), *args)  # ours now: no --replace needed any more
    install(staged(), *args, "--uninstall")
    assert snapshot(node) == before


def test_install_sh_refuses_a_release_others_could_change(tmp_path: Path) -> None:
    """install.sh runs the release's own code as root: from a tree that others could change, that
    would be their code."""
    release = tmp_path / "release"
    shutil.copytree(staged(), release, symlinks=True)
    (release / "cni-macvlan" / "lib").chmod(0o777)
    out = install(release, "--prefix", str(tmp_path / "bin"), "--libdir", str(tmp_path / "lib"), check=False)
    assert out.returncode == 1 and "can be changed by others" in out.stderr, out
    assert not (tmp_path / "bin").exists()
