"""A child of the zygote (_cni_zygote.py), set up as the exec'd plugin would have been, then running it.

Rule of membership: what happens in the child between the zygote's fork and the plugin's exit.

The child joins the caller's mount and network namespaces and working directory, takes its umask,
argv, environment (as CPython builds os.environ from an exec's environ: first of duplicates wins)
and standard descriptors: what the plugin sees is what it would see exec'd. It keeps the zygote's
cgroup, session, resource limits and signal mask (not the caller's); the zygote's own descriptors
are let go of first. It blocks from here: the caller answers at once, and waits at most
CHILD_WAIT for it before "go"; a caller gone before "go" gets nothing run.
"""

import errno
import os
import socket
import struct
import sys

from _cni_launcher import setns  # type: ignore[import-not-found]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

CHILD_WAIT = 5.0  # seconds a child waits for its caller before "go" (longer than the caller's deadline)
CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000


def ns_id(ns: int | str) -> tuple[int, int]:
    st = os.fstat(ns) if isinstance(ns, int) else os.stat(ns)
    return st.st_dev, st.st_ino


def become(
    conn: socket.socket,
    fields: list[bytes],
    own_ns: dict[str, tuple[int, int]],
    let_go: "Callable[[], None]",
    run: "Callable[[], int]",
) -> "NoReturn":
    """Let go of the zygote's signals and descriptors (``let_go``), become the plugin as the caller
    (``conn``, its request's ``fields``) would have exec'd it, once the caller says go; ``run`` it
    and exit with its code."""
    fds: list[int] = []
    try:
        let_go()
        # Blocking from here: the caller answers at once, and if it goes away (its deadline
        # passed, or it was killed) every receive returns at once with nothing.
        conn.settimeout(CHILD_WAIT)  # a caller that stalls before "go" loses its child
        conn.send(b"ready")
        cwd, netns, mntns = _receive_fds(conn, fds, 3, b"fds")
        if ns_id(mntns) != own_ns["mnt"]:
            setns(mntns, CLONE_NEWNS)
        if ns_id(netns) != own_ns["net"]:
            setns(netns, CLONE_NEWNET)
        os.fchdir(cwd)
        os.umask(int(fields[2], 8))
        argc = int(fields[3])
        sys.argv[:] = [os.fsdecode(a) for a in fields[4 : 4 + argc]]
        _set_environ(fields[4 + argc :])
        conn.send(b"started")
        try:
            stdio = _receive_fds(conn, fds, 3, b"go")
        except (ConnectionError, TimeoutError):
            os._exit(0)  # the caller gave up (it runs the request itself): run nothing
        conn.settimeout(None)
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        try:
            conn.send(b"running")
        except OSError:
            os._exit(0)  # the caller is gone: nobody waits for the result
    except BaseException as e:  # nothing of the request ran
        try:
            conn.send(f"declined: {e}".encode())
        finally:
            os._exit(0)
    code = 1
    try:
        if os.environ.get("CNI_MACVLAN_DEBUG"):
            sys.stderr.write(f"cni-macvlan: run by the zygote {os.getppid()}\n")
        code = run()
    except BaseException:
        sys.excepthook(*sys.exc_info())  # what an exec'd plugin would print; never ours
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            conn.send(f"exit {code}".encode())
        except OSError:
            pass
        os._exit(code)


def _receive_fds(conn: socket.socket, fds: list[int], count: int, word: bytes) -> list[int]:
    """The next message: ``word`` with ``count`` descriptors (kept in ``fds`` too, to be closed);
    ConnectionError when the connection ends first (the caller gave up), OSError when malformed."""
    data, ancdata, flags, _ = conn.recvmsg(16, socket.CMSG_SPACE(count * 4))
    got: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            got.extend(struct.unpack(f"{len(payload) // 4}i", payload[: len(payload) // 4 * 4]))
    fds.extend(got)
    if not data:
        raise ConnectionError("the caller is gone")
    if data != word or flags & socket.MSG_CTRUNC or len(got) != count:
        raise OSError(errno.EPROTO, f"malformed {word.decode()} message")
    return got


def _set_environ(entries: list[bytes]) -> None:
    """os.environ as CPython builds it from an exec's environ (posixmodule.c, convertenviron): an
    entry without "=" is skipped, the first of duplicate names wins, an empty name is kept."""
    data: dict[bytes, bytes] = {}
    for entry in entries:
        key, sep, value = entry.partition(b"=")
        if sep:
            data.setdefault(key, value)
    environ = os.environ._data  # type: ignore[attr-defined]  # bytes -> bytes, shared with os.environb
    for key in list(environ):
        if key:
            os.unsetenv(key)
    environ.clear()
    environ.update(data)
    for key, value in data.items():  # the C library's environ too, for anything that reads it
        if key and b"\0" not in key + value:
            os.putenv(key, value)
