"""The trust boundary of the zygote and its launcher (launcher/_cni_zygote.py, cni-macvlan.c).

A root plugin exec hands its request, environment, descriptors and namespaces to whoever serves the
zygote's socket; the zygote runs root's requests. So: the launcher gives nothing to a peer that is
not root, and bounds every wait before the request is committed; the zygote serves only from a
directory only root can change, closes non-root peers at once, is stalled by no peer, removes only
a socket, and a served request behaves as the exec'd one for any argv and environment.

Each test runs the real launcher (the fast layout; the single file never uses a zygote) exec'd as
a runtime does, against a real zygote or tests/fake_zygote.py run as root or as uid 65534.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.configs import ipam_conf
from tests.support.layouts import dist_executable
from tests.support.runners import cni_env, json_bytes, run_exec
from tests.support.users import AS_NOBODY, NOBODY

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the zygote serves root only")

FAKE = Path(__file__).parent / "support" / "fake_zygote.py"


class Fake:
    """tests/fake_zygote.py serving ``socket``, as root or as another user."""

    def __init__(self, directory: Path, mode: str, user: int = 0) -> None:
        self.socket = directory / "z.sock"
        self.log = directory / "fake.log"
        self.log.touch()
        os.chown(self.log, user, user)
        prefix = AS_NOBODY if user else []
        # a copy of the script the other user can read (the clone may live where it can't)
        script = directory / "fake_zygote.py"
        shutil.copy(FAKE, script)
        script.chmod(0o644)
        self.proc = subprocess.Popen(
            [*prefix, "/usr/bin/python3", "-I", str(script), str(self.socket), str(self.log), mode],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while "listening" not in self.log.read_text():
            assert self.proc.poll() is None and time.monotonic() < deadline, "the fake zygote did not start"
            time.sleep(0.01)

    @property
    def env(self) -> dict[str, str]:
        return {"CNI_MACVLAN_ZYGOTE": str(self.socket)}

    def received(self) -> list[str]:
        return self.log.read_text().splitlines()[1:]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def fake(shared_dir: Path) -> Iterator[Any]:
    started: list[Fake] = []

    def start(mode: str, user: int = 0) -> Fake:
        d = shared_dir / f"fake{len(started)}"
        d.mkdir()
        os.chown(d, user, user)
        f = Fake(d, mode, user)
        started.append(f)
        return f

    yield start
    for f in started:
        f.stop()


def zygote_refuses(executable: Path, socket_path: Path, log: Path) -> str:
    """Start a zygote on ``socket_path``; it must exit at once. Its message."""
    out = subprocess.run(
        [str(executable), "zygote", "--socket", str(socket_path)], capture_output=True, text=True, timeout=10
    )
    assert out.returncode != 0, f"it served: {out.stderr}"
    log.write_text(out.stderr)
    return out.stderr


def host_local_add(data_dir: Path, env: dict[str, str], container_id: str = "c1") -> Any:
    exe = dist_executable("fast/host-local")
    return run_exec(
        exe, {**cni_env("ADD", container_id), **env}, json_bytes(ipam_conf(data_dir, "trust", "10.68.0.0/24"))
    )


# ---- 1. the launcher checks its peer ----


def test_the_launcher_gives_nothing_to_a_peer_that_is_not_root(fake: Any, tmp_path: Path) -> None:
    """A user serves a socket and a root plugin is pointed at it: the launcher hangs up before it
    sends anything, runs the plugin itself, and the user's forged result goes nowhere."""
    evil = fake("evil", user=NOBODY)
    out = host_local_add(tmp_path / "leases", evil.env)
    assert out.ok()["ips"][0]["address"] == "10.68.0.2/24"
    time.sleep(0.2)
    assert evil.received()[0] == "eof", "not a byte of the request, no descriptor"
    assert not any(line.startswith("message") for line in evil.received())


# ---- 2. the socket's directory ----


@pytest.mark.parametrize(
    "case",
    [
        "owned by a user",
        "root's, writable by others",
        "root's, writable by its group",
        "a symlink to a user's directory",
        "under a user's directory",
        "under a user's symlink",
    ],
)
def test_the_zygote_refuses_a_socket_directory_others_can_change(shared_dir: Path, case: str) -> None:
    exe = dist_executable("cni-macvlan/cni-macvlan")
    d = shared_dir / "run"
    users = shared_dir / "users"
    users.mkdir()
    os.chown(users, NOBODY, NOBODY)
    if case == "owned by a user":
        d.mkdir(mode=0o755)
        os.chown(d, NOBODY, NOBODY)
        expected = f"{d} is owned by uid {NOBODY}"
    elif case == "root's, writable by others":
        d.mkdir()
        d.chmod(0o777)
        expected = f"{d} is writable by others"
    elif case == "root's, writable by its group":
        d.mkdir()
        d.chmod(0o770)
        expected = f"{d} is writable by its group"
    elif case == "a symlink to a user's directory":
        d.symlink_to(users)
        expected = f"{d} is not a plain directory (a symlink)"
    elif case == "under a user's directory":
        d = users / "run"
        d.mkdir(mode=0o700)
        expected = f"{users} is owned by uid {NOBODY}"
    else:  # a user's link above a directory of root's: the user could point it elsewhere at any time
        real = shared_dir / "real"
        (real / "run").mkdir(parents=True, mode=0o700)
        subprocess.run([*AS_NOBODY, "ln", "-s", str(real), str(users / "link")], check=True)
        d = users / "link" / "run"
        expected = f"{users} is owned by uid {NOBODY}"
    message = zygote_refuses(exe, d / "z.sock", shared_dir / "refused.log")
    assert expected in message, message
    assert not (d / "z.sock").exists()


def test_the_socket_directory_is_made_0700_and_one_of_roots_is_used_as_it_is(own_zygote: Any, shared_dir: Path) -> None:
    """Made 0700 when missing; an existing directory of root's that no one else can write (as /run)
    is used as it is, never narrowed. Either way the socket is 0600."""
    made = own_zygote(shared_dir / "made" / "z.sock")
    assert (shared_dir / "made").stat().st_mode & 0o777 == 0o700
    existing = shared_dir / "run"
    existing.mkdir(mode=0o755)
    z = own_zygote(existing / "z.sock")
    assert existing.stat().st_mode & 0o777 == 0o755, "not narrowed"
    for zygote in (made, z):
        assert zygote.socket.stat().st_mode & 0o777 == 0o600
        assert host_local_add(shared_dir / f"leases-{zygote.proc.pid}", zygote.env).ok()
        assert zygote.served() == 1


def test_a_relative_socket_path_is_refused(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(dist_executable("cni-macvlan/cni-macvlan")), "zygote", "--socket", "z.sock"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert out.returncode != 0 and "give an absolute path" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_user_serving_the_path_is_no_zygote_and_does_not_stop_the_real_one(own_zygote: Any, shared_dir: Path) -> None:
    """A user's socket found at the path (in root's directory: moved there, say, from an earlier,
    looser set-up): its peer is not root, so the zygote replaces it and serves."""
    users = shared_dir / "users"
    users.mkdir()
    os.chown(users, NOBODY, NOBODY)
    code = (
        "import socket,sys,time\n"
        "s=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET);s.bind(sys.argv[1]);s.listen(1)\n"
        "print('up',flush=True);time.sleep(60)\n"
    )
    user = subprocess.Popen(
        [*AS_NOBODY, "/usr/bin/python3", "-I", "-c", code, str(users / "u.sock")], stdout=subprocess.PIPE
    )
    try:
        assert user.stdout is not None and user.stdout.readline() == b"up\n"
        d = shared_dir / "run"
        d.mkdir(mode=0o700)
        os.rename(users / "u.sock", d / "z.sock")
        z = own_zygote(d / "z.sock")
        assert host_local_add(shared_dir / "leases", z.env).ok()
        assert z.served() == 1
    finally:
        user.kill()
        user.wait()


def test_only_a_socket_is_ever_removed(shared_dir: Path) -> None:
    d = shared_dir / "run"
    d.mkdir(mode=0o700)
    precious = d / "precious"
    precious.write_text("keep me")
    message = zygote_refuses(dist_executable("cni-macvlan/cni-macvlan"), precious, shared_dir / "refused.log")
    assert "is not a socket: refusing to remove it" in message
    assert precious.read_text() == "keep me"


# ---- 3. no peer delays another ----


def test_silent_connections_delay_no_one(own_zygote: Any, tmp_path: Path) -> None:
    """Twenty root connections that never send a request: the next caller is served at once, and
    the silent ones are dropped after the request wait."""
    z = own_zygote()
    silent = []
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(str(z.socket))
        silent.append(s)
    try:
        start = time.monotonic()
        assert host_local_add(tmp_path / "leases", z.env).ok()["ips"][0]["address"] == "10.68.0.2/24"
        assert time.monotonic() - start < 0.5
        assert z.served() == 1
        deadline = time.monotonic() + 5
        while z.log_text().count("sent no request in time") < 20:
            assert time.monotonic() < deadline, z.log_text()
            time.sleep(0.05)
    finally:
        for s in silent:
            s.close()


def test_users_connecting_to_an_exposed_socket_are_closed_at_once(own_zygote: Any, shared_dir: Path) -> None:
    """A socket opened to everyone by mistake: twenty idle connections of a user cost root's
    callers nothing; each is closed as soon as it is accepted, before anything is read."""
    d = shared_dir / "run"
    z = own_zygote(d / "z.sock")
    d.chmod(0o755)
    z.socket.chmod(0o666)
    code = (
        "import socket,sys,time\n"
        "ss=[socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET) for _ in range(20)]\n"
        "[s.connect(sys.argv[1]) for s in ss]\n"
        "print(sum(s.recv(1)==b'' for s in ss),flush=True)\n"
        "time.sleep(30)\n"
    )
    user = subprocess.Popen([*AS_NOBODY, "/usr/bin/python3", "-I", "-c", code, str(z.socket)], stdout=subprocess.PIPE)
    try:
        assert user.stdout is not None and user.stdout.readline() == b"20\n", "each was closed, unread"
        start = time.monotonic()
        assert host_local_add(shared_dir / "leases", z.env).ok()
        assert time.monotonic() - start < 0.5
        assert z.log_text().count(f"refused a connection of uid {NOBODY}") == 20
        assert z.served() == 1
    finally:
        user.kill()
        user.wait()


# ---- 4. every wait of the launcher is bounded, and a request runs once ----


@pytest.mark.parametrize("mode", ["silent", "ready", "places"])
def test_a_peer_that_stalls_before_go_costs_two_seconds_and_holds_nothing(fake: Any, tmp_path: Path, mode: str) -> None:
    """A root peer that stops answering at each step before "go": the launcher falls back after
    2 s and runs the plugin itself, and its stdout reaches EOF when it exits: the caller's stdin,
    stdout and stderr were never handed to the stalled peer."""
    peer = fake(mode)
    start = time.monotonic()
    out = host_local_add(tmp_path / "leases", peer.env)  # capture_output: returns only at EOF
    took = time.monotonic() - start
    assert out.ok()["ips"][0]["address"] == "10.68.0.2/24"
    assert 1.9 < took < 3.0, took
    received = peer.received()
    assert received[0].startswith("message ") and received[0].endswith(" bytes, 0 fds"), received
    # the directory and namespaces only, and only to a peer that said "ready"; never stdio
    assert received[1:-1] == (["message 3 bytes, 3 fds"] if mode == "places" else []), received


def test_a_child_that_took_go_and_stalls_costs_code_11_not_a_second_run(fake: Any, tmp_path: Path) -> None:
    """After "go" the child may have begun: a child that does not say "running" within 2 s makes
    the launcher fail with code 11 (try again later), not run the request again nor wait for
    ever; the zygote then drops that child with what it was handed, and the caller's pipes close."""
    peer = fake("started")
    start = time.monotonic()
    out = host_local_add(tmp_path / "leases", peer.env)
    took = time.monotonic() - start
    assert out.error["code"] == 11 and "did not start the plugin within 2 s" in out.error["msg"]
    assert 1.9 < took < 3.0, took
    assert not (tmp_path / "leases").exists(), "the launcher did not run it"
    time.sleep(0.1)
    assert peer.received()[-1] == "closed"


def test_a_stopped_zygote_child_runs_nothing_once_its_caller_gave_up(own_zygote: Any, tmp_path: Path) -> None:
    """The zygote stopped with a request in its queue: the launcher runs the request itself after
    2 s; resumed, the zygote finds that caller gone and runs nothing."""
    z = own_zygote()
    os.kill(z.proc.pid, signal.SIGSTOP)
    start = time.monotonic()
    out = host_local_add(tmp_path / "leases", z.env)
    assert out.ok()["ips"][0]["address"] == "10.68.0.2/24"
    assert 1.9 < time.monotonic() - start < 3.0
    os.kill(z.proc.pid, signal.SIGCONT)
    second = host_local_add(tmp_path / "leases", z.env, "c2")
    assert second.ok()["ips"][0]["address"] == "10.68.0.3/24", "the first request left no second lease"
    leases = sorted(p.name for p in (tmp_path / "leases" / "trust").iterdir() if p.name[0].isdigit())
    assert leases == ["10.68.0.2", "10.68.0.3"]


# ---- 6. served is exec'd, for any argv and environment ----

EXECVE = """
import ctypes, sys
argv, env = sys.argv[1].split("\\x01"), [e for e in sys.argv[2].split("\\x01") if e]
def arr(items):
    a = (ctypes.c_char_p * (len(items) + 1))(*[i.encode("utf-8", "surrogateescape") for i in items])
    a[len(items)] = None
    return a
ctypes.CDLL(None, use_errno=True).execve(argv[0].encode(), arr(argv), arr(env))
sys.exit("execve failed")
"""


def exec_raw(argv: list[str], env: list[str], stdin: bytes) -> tuple[int, str, str]:
    """Exec ``argv`` with exactly ``env`` (duplicates and odd entries as given), as C code may."""
    out = subprocess.run(
        [sys.executable, "-I", "-c", EXECVE, "\x01".join(argv), "\x01".join(env)],
        input=stdin,
        capture_output=True,
        timeout=30,
        env={},
    )
    return out.returncode, out.stdout.decode(), out.stderr.decode()


@pytest.mark.parametrize(
    "case",
    [
        "duplicate CNI_COMMAND",
        "duplicate, the first empty",
        "an entry without '='",
        "an empty name",
        "the plugin named as an argument",
    ],
)
def test_served_and_exec_d_agree_for_any_argv_and_environment(own_zygote: Any, tmp_path: Path, case: str) -> None:
    z = own_zygote()
    tree = dist_executable("cni-macvlan/cni-macvlan")
    host_local = str(dist_executable("fast/host-local"))
    argv = [host_local]
    base = ["CNI_CONTAINERID=c1", "CNI_NETNS=/run/netns/none", "CNI_IFNAME=eth0", f"CNI_PATH={tmp_path}"]
    if case == "duplicate CNI_COMMAND":
        env = ["CNI_COMMAND=VERSION", "CNI_COMMAND=", *base]
    elif case == "duplicate, the first empty":
        env = ["CNI_COMMAND=", "CNI_COMMAND=VERSION", *base]
    elif case == "an entry without '='":
        env = ["CNI_COMMAND=VERSION", "JUSTANAME", *base]
    elif case == "an empty name":
        env = ["=value", "CNI_COMMAND=ADD", *base]
    else:
        link = tmp_path / "NAME"
        link.symlink_to(tree)
        argv = [str(link), "host-local"]
        env = ["CNI_COMMAND=VERSION", *base]

    def stdin(store: str) -> bytes:  # an ADD in each run: a store each, the same answer
        return json_bytes(ipam_conf(tmp_path / store, "trust", "10.68.0.0/24"))

    plain = exec_raw(argv, ["CNI_MACVLAN_ZYGOTE=", *env], stdin("plain"))
    before = z.served()
    served = exec_raw(argv, [f"CNI_MACVLAN_ZYGOTE={z.socket}", *env], stdin("served"))
    assert z.served() == before + 1, z.log_text()
    assert served == plain
    assert plain[0] in (0, 1) and "Traceback" not in plain[2], plain


# ---- beyond the findings: a caller with less privilege, a malformed request, inherited descriptors ----

CAPS_SPY = """#!/bin/sh
cat >/dev/null
grep -E '^(CapEff|NoNewPrivs)' /proc/self/status > "$0.caps"
ls /proc/$$/fd > "$0.fds"
printf '{"cniVersion":"1.0.0","code":11,"msg":"spied"}'
exit 1
"""


def caps_spy(directory: Path) -> Path:
    """A CNI_PATH with our macvlan and an IPAM that records its capabilities and descriptors."""
    bindir = directory / "bin"
    bindir.mkdir()
    (bindir / "macvlan").symlink_to(dist_executable("fast/macvlan").resolve())
    spy = bindir / "spy"
    spy.write_text(CAPS_SPY)
    spy.chmod(0o755)
    return bindir


def spied_del(bindir: Path, socket_path: str, prefix: list[str]) -> str:
    """A macvlan DEL (no namespace: it execs only the IPAM, the spy); what the spy saw."""
    env = {
        "PATH": "/usr/bin:/bin",
        **cni_env("DEL", CNI_PATH=str(bindir), CNI_NETNS=""),
        "CNI_MACVLAN_ZYGOTE": socket_path,
    }
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "macvlan", "master": "eth9", "ipam": {"type": "spy"}}
    out = subprocess.run([*prefix, str(bindir / "macvlan")], input=json_bytes(conf), env=env, capture_output=True)
    assert out.returncode == 1 and b"spied" in out.stdout, out
    return (bindir / "spy.caps").read_text()


def test_a_root_caller_that_may_do_less_than_the_zygote_is_not_served(own_zygote: Any, tmp_path: Path) -> None:
    """uid 0 without capabilities, under no_new_privs (a root service locked down, a container's
    root): a child of the zygote would have all of the zygote's privilege, so the caller is declined
    and its plugin, and the IPAM that plugin execs, run with what the caller has."""
    z = own_zygote()
    bindir = caps_spy(tmp_path)
    stripped = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all", "--no-new-privs", "--"]
    exec_d = spied_del(bindir, "", stripped)
    assert "CapEff:\t0000000000000000" in exec_d and "NoNewPrivs:\t1" in exec_d, exec_d
    assert spied_del(bindir, str(z.socket), stripped) == exec_d
    assert z.served() == 0 and "declined: the caller may do less than the zygote" in z.log_text()
    full = spied_del(bindir, str(z.socket), [])  # a root caller with every capability is served
    assert z.served() == 1 and "NoNewPrivs:\t0" in full


def test_a_malformed_request_costs_that_connection_only(own_zygote: Any, tmp_path: Path) -> None:
    z = own_zygote()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(str(z.socket))
    s.send(b"\0".join([b"cni-macvlan-zygote/2", b"x", b"22", b"9" * 5000, b"argv0", b"A=1"]))
    assert s.recv(64) == b"declined: malformed request"
    s.close()
    assert z.proc.poll() is None
    assert host_local_add(tmp_path / "leases", z.env).ok()
    assert z.served() == 1


def test_descriptors_the_zygote_was_started_with_reach_no_child(own_zygote: Any, tmp_path: Path) -> None:
    """A service manager (or a shell) may start the zygote with descriptors open: none of them may
    reach the plugins it serves, nor the IPAM they exec."""
    opened = os.open(tmp_path, os.O_RDONLY)
    leaked = os.dup2(opened, 77)  # a number no shell keeps for itself; pass_fds keeps it open in the zygote
    os.close(opened)
    try:
        z = own_zygote(pass_fds=(leaked,))
    finally:
        os.close(leaked)
    bindir = caps_spy(tmp_path)
    spied_del(bindir, str(z.socket), [])
    assert z.served() == 1
    fds = set((bindir / "spy.fds").read_text().split())
    assert str(leaked) not in fds, fds
