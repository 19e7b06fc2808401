"""The zygote (launcher/_cni_zygote.py, and try_zygote in launcher/cni-macvlan.c).

A plugin exec served by a zygote must be indistinguishable from one that started its own
interpreter: same output, exit status and signal, same namespaces, directory, umask, environment
and descriptors, each request once. When no zygote of this very build can take the request
(none, dead, stopped, another build, a caller not root) the launcher runs it itself. Every other
test of the `macvlan` and `host_local` fixtures also runs in a "zygote" mode (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import configs
from tests.support.layouts import dist_executable
from tests.support.runners import cni_env, json_bytes, run_exec
from tests.support.users import AS_NOBODY, NOBODY
from tests.support.zygote import Zygote, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the zygote serves root only")


def ipam_conf(data_dir: Path, name: str = "zyg") -> dict[str, Any]:
    return configs.ipam_conf(data_dir, name, "10.67.0.0/24")


def caller(z: Zygote, container_id: str = "dummy") -> subprocess.Popen[bytes]:
    """A host-local ADD exec'd for zygote ``z``, its stdin left open: its child waits for the config."""
    env = {"PATH": "/usr/bin:/bin", **cni_env("ADD", container_id), **z.env}
    exe = dist_executable("fast/host-local")
    return subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)


def spy_bindir(tmp_path: Path) -> Path:
    """A CNI_PATH with our macvlan and an IPAM "spy" that records what it was exec'd with (its
    directory, umask, descriptors, environment) and each run, then fails with code 11."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "macvlan").symlink_to(dist_executable("fast/macvlan").resolve())
    spy = bindir / "spy"
    spy.write_text(
        "#!/bin/sh\ncat >/dev/null\n"
        'echo run >> "$0.runs"\npwd > "$0.cwd"\numask > "$0.umask"\n'
        'ls -l /proc/$$/fd > "$0.fds"\nenv > "$0.env"\n'
        'printf \'{"cniVersion":"1.0.0","code":11,"msg":"spied"}\'\nexit 1\n'
    )
    spy.chmod(0o755)
    return bindir


SPY_CONF = {"cniVersion": "1.0.0", "name": "n", "type": "macvlan", "master": "eth9", "ipam": {"type": "spy"}}


def run_spied(bindir: Path, env: dict[str, str], cwd: Path, umask: int) -> subprocess.CompletedProcess[bytes]:
    """macvlan DEL with no namespace: it execs only the IPAM (the spy), whose error it reports."""
    full = {"PATH": "/usr/bin:/bin", **cni_env("DEL", CNI_PATH=str(bindir), CNI_NETNS=""), **env}
    return subprocess.run(
        [str(bindir / "macvlan")],
        input=json_bytes(SPY_CONF),
        env=full,
        cwd=cwd,
        capture_output=True,
        preexec_fn=lambda: os.umask(umask),
        check=False,
    )


def test_served_and_plain_execs_print_the_same(zygote: Zygote, tmp_path: Path) -> None:
    """Output, exit code and stderr are the plugin's, whoever runs it; CNI_MACVLAN_DEBUG shows who
    did, and one request's environment is not the next one's."""
    exe = dist_executable("fast/host-local")
    cases = [
        (cni_env("VERSION"), b'{"cniVersion":"0.4.0"}'),
        (cni_env("ADD"), b"{not json"),
        (cni_env("ADD"), json_bytes({**ipam_conf(tmp_path), "cniVersion": "9.9.9"})),
        (cni_env("ADD", CNI_PATH=None), json_bytes(ipam_conf(tmp_path))),
    ]
    for env, stdin in cases:
        plain = run_exec(exe, env, stdin)
        served = run_exec(exe, {**env, **zygote.env}, stdin)
        assert (served.code, served.stdout, served.stderr) == (plain.code, plain.stdout, plain.stderr)
    debug = run_exec(exe, {**cni_env("VERSION"), **zygote.env, "CNI_MACVLAN_DEBUG": "1"}, b"{}")
    assert f"run by the zygote {zygote.proc.pid}\n" in debug.stderr
    after = run_exec(exe, {**cni_env("VERSION"), **zygote.env}, b"{}")
    assert after.stderr == ""


def test_the_child_has_the_callers_directory_umask_descriptors_and_environment(zygote: Zygote, tmp_path: Path) -> None:
    bindir = spy_bindir(tmp_path)
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    before = zygote.served()
    out = run_spied(bindir, {**zygote.env, "SOME_VAR": "a=b c\u00e9"}, workdir, 0o027)
    assert out.returncode == 1 and json.loads(out.stdout)["msg"] == "spied", out
    assert zygote.served() == before + 1
    spy = bindir / "spy"
    assert (bindir / "spy.cwd").read_text().strip() == str(workdir)
    assert (bindir / "spy.umask").read_text().strip() == "0027"
    env = dict(line.split("=", 1) for line in (bindir / "spy.env").read_text().splitlines() if "=" in line)
    assert env["SOME_VAR"] == "a=b c\u00e9"
    assert env["CNI_COMMAND"] == "DEL" and "CNI_MACVLAN_ZYGOTE" in env
    listing = [line.split() for line in Path(f"{spy}.fds").read_text().splitlines() if "->" in line]
    fds = {words[words.index("->") - 1]: words[-1] for words in listing}
    assert {fd for fd in fds if int(fd) < 10} == {"0", "1", "2"}, fds  # dash keeps its own at 10 and up
    assert (bindir / "spy.runs").read_text() == "run\n"


def test_the_child_works_in_the_callers_mount_namespace(zygote: Zygote, tmp_path: Path) -> None:
    """A caller in its own mount namespace (a tmpfs only it sees): the lease lands in its tmpfs."""
    private = tmp_path / "private"
    private.mkdir()
    conf = ipam_conf(private / "leases")
    exe = dist_executable("fast/host-local")
    script = f"mount -t tmpfs none {private} && exec {exe}"
    env = {"PATH": "/usr/bin:/bin", **cni_env("ADD"), **zygote.env}
    before = zygote.served()
    out = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        input=json_bytes(conf),
        env=env,
        capture_output=True,
        check=False,
    )
    assert out.returncode == 0, out
    assert zygote.served() == before + 1
    assert json.loads(out.stdout)["ips"][0]["address"] == "10.67.0.2/24"
    assert list(private.iterdir()) == [], "the lease went to the caller's tmpfs, not the node's directory"


def test_another_build_is_declined_and_the_launcher_runs_the_plugin_itself(zygote: Zygote, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(dist_executable("cni-macvlan/cni-macvlan").parent, tree, symlinks=True)
    (tmp_path / "host-local").symlink_to(tree / "cni-macvlan")
    env = {**cni_env("ADD"), **zygote.env, "CNI_MACVLAN_DEBUG": "1"}
    before = zygote.served()
    out = run_exec(tmp_path / "host-local", env, json_bytes(ipam_conf(tmp_path)))
    assert out.ok()["ips"][0]["address"] == "10.67.0.2/24"
    assert "run by the zygote" not in out.stderr
    assert zygote.served() == before
    assert "declined: another build" in zygote.log_text()
    assert zygote.proc.poll() is None, "its own build is still installed: it goes on"


def test_a_zygote_whose_build_is_replaced_stops_and_the_plugins_still_run(own_zygote: Any, tmp_path: Path) -> None:
    """After an upgrade (new files in place) the old zygote declines and exits, for its supervisor
    to start the new build; the plugins run meanwhile."""
    tree = tmp_path / "tree"
    shutil.copytree(dist_executable("cni-macvlan/cni-macvlan").parent, tree, symlinks=True)
    (tmp_path / "host-local").symlink_to(tree / "cni-macvlan")
    z = own_zygote(executable=tree / "cni-macvlan")
    bundle = tree / "lib" / "_cni_modules.bin"
    shutil.copy2(bundle, f"{bundle}.new")
    os.replace(f"{bundle}.new", bundle)  # what `make install` does: new files, new inodes
    out = run_exec(tmp_path / "host-local", {**cni_env("ADD"), **z.env}, json_bytes(ipam_conf(tmp_path)))
    assert out.ok()["ips"][0]["address"] == "10.67.0.2/24"
    assert z.proc.wait(5) == 0
    assert not z.socket.exists()
    fresh = own_zygote(z.socket, executable=tree / "cni-macvlan")
    out = run_exec(tmp_path / "host-local", {**cni_env("ADD", "c2"), **fresh.env}, json_bytes(ipam_conf(tmp_path)))
    assert out.ok()["ips"][0]["address"] == "10.67.0.3/24"
    assert fresh.served() == 1


def test_a_zygote_started_through_current_stops_once_current_leads_to_another_build(
    own_zygote: Any, tmp_path: Path
) -> None:
    """install.sh's layout: plugins -> current -> builds/<x>. Started as .../current/cni-macvlan,
    the zygote stops at the first request of another build once current leads there (the old
    build's files stay, untouched, for the execs still running them)."""
    tree = dist_executable("cni-macvlan/cni-macvlan").parent
    builds = tmp_path / "builds"
    for name in ("a", "b"):
        shutil.copytree(tree, builds / name, symlinks=True)  # two copies: two builds (new inodes)
    current = tmp_path / "current"
    current.symlink_to("builds/a")
    (tmp_path / "host-local").symlink_to("current/cni-macvlan")
    z = own_zygote(executable=current / "cni-macvlan")
    env = {**cni_env("VERSION"), **z.env, "CNI_MACVLAN_DEBUG": "1"}
    assert f"run by the zygote {z.proc.pid}" in run_exec(tmp_path / "host-local", env, b"{}").stderr
    (tmp_path / "current.new").symlink_to("builds/b")
    os.replace(tmp_path / "current.new", current)
    out = run_exec(tmp_path / "host-local", env, b"{}")
    assert out.code == 0 and "run by the zygote" not in out.stderr
    assert z.proc.wait(5) == 0, "it left for its supervisor to start the new build"
    assert "declined: another build" in z.log_text()


def test_a_zygote_serves_callers_that_see_its_files_elsewhere_or_not_at_all(own_zygote: Any, tmp_path: Path) -> None:
    """A zygote in a container serving the host: its lib/ is at one path in its mount namespace and
    at another (or none) in the caller's, which its child joins. Modules imported late (json.decoder
    on a parse error) still come from its own lib/, and the child behaves as the exec."""
    home = tmp_path / "home"
    shutil.copytree(dist_executable("cni-macvlan/cni-macvlan").parent, home / "tree", symlinks=True)
    (home / "host-local").symlink_to("tree/cni-macvlan")
    z = own_zygote(executable=home / "tree" / "cni-macvlan")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # the caller sees the tree at elsewhere/ only (the same files: the same build), home/ is empty
    script = f"mount --bind {home} {elsewhere} && mount -t tmpfs none {home} && exec {elsewhere}/host-local"

    def call(zygote_env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
        env = {"PATH": "/usr/bin:/bin", **cni_env("ADD"), **zygote_env, "CNI_MACVLAN_DEBUG": "1"}
        return subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            input=b"{not json",
            env=env,
            capture_output=True,
            check=False,
        )

    served, plain = call(z.env), call({"CNI_MACVLAN_ZYGOTE": ""})
    assert f"run by the zygote {z.proc.pid}".encode() in served.stderr
    assert (served.returncode, served.stdout) == (plain.returncode, plain.stdout), (served, plain)
    assert json.loads(served.stdout)["code"] != 999, served.stdout  # not an internal error (no module)


def test_a_killed_zygotes_socket_is_no_obstacle(own_zygote: Any, tmp_path: Path) -> None:
    z = own_zygote()
    z.kill()
    assert z.socket.exists()  # left behind
    exe = dist_executable("fast/host-local")
    start = time.monotonic()
    out = run_exec(exe, {**cni_env("ADD"), **z.env}, json_bytes(ipam_conf(tmp_path)))
    assert out.ok()["ips"][0]["address"] == "10.67.0.2/24"
    assert time.monotonic() - start < 1.5
    fresh = own_zygote(z.socket)  # a new one takes the path over
    run_exec(exe, {**cni_env("ADD", "c2"), **fresh.env}, json_bytes(ipam_conf(tmp_path))).ok()
    assert fresh.served() == 1


def test_a_second_zygote_on_a_served_socket_refuses_to_start(own_zygote: Any) -> None:
    z = own_zygote()
    with pytest.raises(RuntimeError, match="another zygote is serving"):
        own_zygote(z.socket)
    assert z.proc.poll() is None


def test_a_stopped_zygote_costs_two_seconds_and_the_request_runs_once(own_zygote: Any, tmp_path: Path) -> None:
    """SIGSTOPped, it accepts connections and answers nothing: the launcher gives up after 2 s and
    runs the plugin itself; resumed, the zygote's late child finds the caller gone and runs nothing."""
    z = own_zygote()
    bindir = spy_bindir(tmp_path)
    os.kill(z.proc.pid, signal.SIGSTOP)
    start = time.monotonic()
    out = run_spied(bindir, z.env, tmp_path, 0o022)
    took = time.monotonic() - start
    assert out.returncode == 1 and json.loads(out.stdout)["msg"] == "spied", out
    assert 1.9 < took < 6
    os.kill(z.proc.pid, signal.SIGCONT)
    # the zygote takes the stale request first (its "ready" finds the caller gone), then this one
    host_local = dist_executable("fast/host-local")
    run_exec(host_local, {**cni_env("VERSION"), **z.env}, b"{}").ok()
    assert z.served() == 1
    assert (bindir / "spy.runs").read_text() == "run\n", "the request ran once"


def reading_stdin(pid: int) -> bool:
    """Is ``pid`` blocked in read(0, ...)? (A zygote's child is, once it runs the plugin: past the
    hand-over, waiting for its config.)"""
    read = {"x86_64": 0, "aarch64": 63}[os.uname().machine]
    try:
        return Path(f"/proc/{pid}/syscall").read_text().startswith(f"{read} 0x0 ")
    except OSError:
        return False


def test_a_caller_killed_by_its_runtime_takes_the_child_with_it(own_zygote: Any, tmp_path: Path) -> None:
    z = own_zygote()
    killed = caller(z)
    try:
        wait_for(lambda: len(z.children()) == 1)
        child = z.children()[0]
        # killed before the hand-over ends, the caller would leave a child that runs nothing (exit 0)
        wait_for(lambda: reading_stdin(child))
        killed.kill()
        killed.wait()
        wait_for(lambda: not Path(f"/proc/{child}").exists())
        wait_for(lambda: f"pid {child} signal 9" in z.log_text())
    finally:
        killed.kill()
        killed.stdin.close()  # type: ignore[union-attr]
        killed.stdout.close()  # type: ignore[union-attr]
        killed.wait()
    assert not (tmp_path / "zyg").exists()


def test_a_child_killed_by_a_signal_is_reported_as_that_signal(zygote: Zygote, data_dir: Path) -> None:
    exe = dist_executable("fast/host-local")
    env = {**cni_env("ADD"), **zygote.env, "CNI_MACVLAN_CRASH_AT": "lease-reserved"}
    assert run_exec(exe, env, json_bytes(ipam_conf(data_dir))).code == -signal.SIGKILL


def test_sigterm_stops_taking_requests_and_lets_running_ones_finish(own_zygote: Any, tmp_path: Path) -> None:
    z = own_zygote()
    running = caller(z)
    wait_for(lambda: len(z.children()) == 1)
    z.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: not z.socket.exists())
    assert z.proc.poll() is None, "it waits for the running request"
    out, _ = running.communicate(json_bytes(ipam_conf(tmp_path)), timeout=10)
    assert running.returncode == 0 and json.loads(out)["ips"][0]["address"] == "10.67.0.2/24"
    assert z.proc.wait(5) == 0


def test_only_root_is_served(own_zygote: Any, public_tree: Path, shared_dir: Path) -> None:
    """A socket opened to everyone (by mistake) still serves no one else: the launcher of another
    user runs the plugin itself (from a copy of the tree that user can read: the clone may not be)."""
    exposed = shared_dir  # pytest's tmp_path is root's alone
    z = own_zygote(exposed / "run" / "z.sock", executable=public_tree / "cni-macvlan")
    os.chmod(exposed / "run", 0o755)  # the zygote made it 0700: opened up by mistake
    os.chmod(z.socket, 0o666)
    exe = public_tree / "host-local"
    env = {"PATH": "/usr/bin:/bin", **cni_env("VERSION"), **z.env}
    out = subprocess.run(
        [*AS_NOBODY, str(exe)],
        input=b"{}",
        env=env,
        capture_output=True,
        check=False,
    )
    assert out.returncode == 0 and json.loads(out.stdout)["cniVersion"] == "1.1.0", out
    assert f"refused a connection of uid {NOBODY}" in z.log_text()
    assert z.served() == 0


def test_many_execs_at_once(zygote: Zygote, tmp_path: Path) -> None:
    conf = json_bytes(ipam_conf(tmp_path))
    before = zygote.served()
    procs = [caller(zygote, f"c{i}") for i in range(32)]
    addresses = []
    for p in procs:
        out, _ = p.communicate(conf, timeout=30)
        assert p.returncode == 0, out
        addresses.append(json.loads(out)["ips"][0]["address"])
    assert len(set(addresses)) == 32
    assert zygote.served() - before == 32
    wait_for(lambda: zygote.children() == [])


def test_at_its_children_limit_it_takes_the_next_caller_when_one_ends(own_zygote: Any, tmp_path: Path) -> None:
    z = own_zygote(None, "--max-children", "2")
    callers = [caller(z, f"c{i}") for i in range(3)]
    conf = json_bytes(ipam_conf(tmp_path))
    try:
        wait_for(lambda: len(z.children()) == 2)
        time.sleep(0.2)
        assert len(z.children()) == 2 and z.served() == 2, "the third waits in the backlog"
        for p in callers:  # the two children end, and the third caller is taken (within its 2 s)
            p.stdin.write(conf)  # type: ignore[union-attr]
            p.stdin.close()  # type: ignore[union-attr]
        addresses = set()
        for p in callers:
            out = p.stdout.read()  # type: ignore[union-attr]
            assert p.wait(10) == 0, out
            addresses.add(json.loads(out)["ips"][0]["address"])
    finally:
        for p in callers:
            p.kill()
            p.wait()
    assert len(addresses) == 3
    assert z.served() == 3, "served by the zygote, not run by itself"
