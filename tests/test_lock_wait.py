"""Every lock wait is bounded: a lock held by a stuck process makes a plugin fail with code 11 (try
again later) naming the lock file, not stall its runtime; a lock let go wakes the waiter at once; a
lock file removed while someone waits for it is opened again (statefile.lock_exclusive, Locked).

The holder is a real process holding a real flock. The plugins wait LOCK_WAIT (60 s) before they
give up: the tests that see them give up run them in-process with LOCK_WAIT cut to half a second.
The wait's alarm is left alone where one is already running, as pytest-timeout's is: these tests run
without it, each wait in them bounded by itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cni import statefile
from cni.errors import CNIError
from cni_macvlan.links import parents
from ipam.plugin import PLUGIN as HOST_LOCAL
from tests.support.configs import ipam_conf
from tests.support.runners import Runner, cni_env, json_bytes, run_inprocess

pytestmark = pytest.mark.timeout(0)

HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
if sys.stdin.readline().strip() == "unlink":
    os.unlink(sys.argv[1])
"""


class Holder:
    """Another process holding ``path``'s lock until ``release`` (which may remove the file first)."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "held\n"

    def release(self, how: str = "") -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(how + "\n")
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


@contextmanager
def held(path: Path) -> Iterator[Holder]:
    holder = Holder(path)
    try:
        yield holder
    finally:
        holder.release()


def release_after(holder: Holder, seconds: float, how: str = "") -> threading.Timer:
    timer = threading.Timer(seconds, holder.release, (how,))
    timer.start()
    return timer


@pytest.fixture(autouse=True)
def no_alarm_left() -> Iterator[None]:
    """After each test: no timer running, and SIGALRM's handler (pytest's plugins may set one) put back."""
    before = signal.getsignal(signal.SIGALRM)
    yield
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == before


def test_a_lock_held_too_long_times_out_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with held(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            start = time.monotonic()
            with pytest.raises(TimeoutError) as e:
                statefile.lock_exclusive(fd, str(path), 0.4)
            waited = time.monotonic() - start
        finally:
            os.close(fd)
    assert 0.35 < waited < 3
    assert e.value.filename == str(path)
    why = e.value.strerror or ""
    assert "held by another process for 0.4 s" in why and f"fuser -v {path}" in why


def test_a_lock_let_go_wakes_the_waiter_at_once(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with held(path) as holder:
        timer = release_after(holder, 0.5)
        start = time.monotonic()
        with statefile.Locked(str(path), timeout=20) as lock:
            waited = time.monotonic() - start
            assert lock.fd >= 0
        timer.join()
    assert 0.4 < waited < 3


def test_a_free_lock_is_taken_without_an_alarm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setattr(signal, "setitimer", lambda *a: calls.append(a))
    with statefile.Locked(str(tmp_path / "lock")):
        pass
    assert calls == []


def test_a_lock_file_removed_while_waiting_is_opened_again(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with held(path) as holder:
        timer = release_after(holder, 0.3, "unlink")  # the holder removes it, as an uninstall does
        with statefile.Locked(str(path), timeout=20) as lock:
            mine = os.fstat(lock.fd)
            now = os.lstat(path)
            assert (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)
            with pytest.raises(TimeoutError), statefile.Locked(str(path), timeout=0.2):
                pass  # it is the lock others take: they wait for us
        timer.join()


def test_host_local_waits_for_a_lock_let_go(host_local: Runner, data_dir: Path) -> None:
    conf = ipam_conf(data_dir, "waits", "10.77.0.0/29")
    (data_dir / "waits").mkdir(mode=0o755)
    with held(data_dir / "waits" / "lock") as holder:
        timer = release_after(holder, 1.0)
        start = time.monotonic()
        out = host_local("ADD", conf, container_id="c1")
        waited = time.monotonic() - start
        timer.join()
    assert out.ok()["ips"][0]["address"] == "10.77.0.2/29"
    assert waited > 0.9


@pytest.mark.parametrize("verb", ["ADD", "DEL"])
def test_host_local_gives_up_with_code_11_on_a_stuck_lock(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, verb: str
) -> None:
    monkeypatch.setattr(statefile, "LOCK_WAIT", 0.5)
    conf = ipam_conf(data_dir, "stuck", "10.78.0.0/29")
    (data_dir / "stuck").mkdir(mode=0o755)
    lock = data_dir / "stuck" / "lock"
    with held(lock):
        err = run_inprocess(HOST_LOCAL, cni_env(verb, container_id="c1"), json_bytes(conf)).error
    assert err["code"] == 11
    assert f'lease store "{data_dir / "stuck"}"' in err["msg"] and str(lock) in err["msg"]
    assert "held by another process for 0.5 s" in err["msg"]
    assert sorted(p.name for p in (data_dir / "stuck").iterdir()) == ["lock"]  # nothing reserved


def test_the_parents_record_gives_up_with_code_11_on_a_stuck_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statefile, "LOCK_WAIT", 0.5)
    store = parents.Store(str(tmp_path / "state"))
    with store.locked():  # made, as an ADD makes it
        pass
    with held(tmp_path / "state" / parents.LOCK_FILE), pytest.raises(CNIError) as e, store.locked():
        pass
    assert e.value.code == 11
    assert str(tmp_path / "state" / parents.LOCK_FILE) in e.value.msg
    assert "held by another process for 0.5 s" in e.value.msg  # the whole wait, not what was left of it


def test_an_alarm_already_running_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 5.0)
        with held(path) as holder:
            timer = release_after(holder, 0.3)
            with statefile.Locked(str(path), timeout=0.1):  # its wait is the alarm's, not 0.1 s
                left = signal.getitimer(signal.ITIMER_REAL)[0]
            timer.join()
        assert 4 < left < 4.8 and not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
