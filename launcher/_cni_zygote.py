"""The zygote: the launcher started once, ``cni-macvlan zygote [--socket PATH]``, with every module
of both plugins loaded, forking a child per plugin exec. A plugin exec then costs the launcher's C
start-up, one message and a fork instead of an interpreter start and our imports (docs: about 12 ms
less per exec on this machine kind).

Rule of membership: the zygote's socket, its protocol and its children's lifetimes (the setting up
of a child: _cni_zygote_child.py; whom it serves: _cni_zygote_trust.py). Nothing here knows about
CNI; the child runs the same ``cni_macvlan.__main__``.

Trust. The zygote runs as root and is handed root's requests, descriptors and namespaces, so:
- its socket lives in a directory only root can change (cni/statefile.check_private, the rule of
  the lease store's directories too: not a symlink, root's, not writable by group or others, under
  directories alike, a sticky one like /tmp aside); the zygote makes it 0700 when missing and
  refuses to start otherwise, with the reason. The socket is 0600. Only a socket is ever removed
  from its path, and only when no root process serves it.
- every connection's peer is checked (SO_PEERCRED) as soon as it is accepted: one that is not root
  is closed at once, before anything is read from it. A root caller that may do less than the
  zygote (fewer capabilities, no_new_privs, seccomp, another user namespace or security label) is
  declined: a child would have the zygote's privilege, so that caller runs its plugin itself.
- the main loop never blocks on a peer: connections are non-blocking, at most 16 are taken per
  round, a request that has not come whole within ``REQUEST_WAIT`` seconds is dropped, one
  connection's trouble drops that connection only, and everything slower happens in the child.
The launcher (cni-macvlan.c) checks in turn that its peer is root before it sends anything.

Protocol ``cni-macvlan-zygote/2``, SOCK_SEQPACKET, one connection per exec:
  launcher -> request: NUL-separated fields: magic, build id, umask (octal), argc, argv..., environ...
  zygote   -> ``declined: <why>``, or it forks a child that answers ``ready``
  launcher -> three descriptors: working directory, network and mount namespace
  child    -> ``started`` once it is set up as the exec'd plugin (or ``declined: <why>``)
  launcher -> ``go`` with three more: stdin, stdout, stderr
  child    -> ``running``: from here the request is the child's; it runs the plugin and says
              ``exit N`` (or the zygote says, when the child dies, ``signal N``)
The launcher bounds everything up to ``go`` by one deadline (2 s in all): when it passes, or
anything is declined or cut, the launcher closes the connection and runs the plugin itself; a child
that has not received ``go`` finds the connection closed and runs nothing. ``running`` has 2 s of
its own: a child that got ``go`` and is not running by then (stopped, or the machine stalled) may or
may not have begun, so the launcher neither runs the request again nor waits: it fails with code 11
(try again later) and leaves, and the zygote kills that child (like a plugin its runtime killed on
a timeout: what it did, the DEL that follows a failed ADD cleans). After ``running`` the launcher waits
for the plugin as a runtime waits for an exec'd one. So a request runs at most once, every wait is
bounded, and the caller's stdin, stdout and stderr are handed over only with ``go``: nothing that
keeps a runtime's pipe open sits in the queue of a process that stalled earlier.
Only a launcher of the very build the zygote loaded (the identity of _cni_modules.bin) is served,
so an upgrade never runs old code. When a launcher of another build asks and the path the zygote was
started as leads to another build by now (its files replaced, or install.sh's LIBDIR/current switched
to a new build), the zygote stops taking requests and exits once its children are done, for its
supervisor to start the new build.

A zygote may serve callers that see the file system differently (one in a container serving the
host): its children join the caller's mount namespace, where the zygote's lib/ may be elsewhere or
absent. So before it serves, every extension module it ships is loaded, and the module search path
is a descriptor of its lib/ (/proc/self/fd/N), the same directory in every namespace: a module
imported late in a child comes from the zygote's own build.

The child is set up as the exec'd plugin would have been (_cni_zygote_child.py); descriptors the
zygote was started with are closed at its start, so none reaches a child. If the caller goes away
(the runtime killed it on a timeout) the child is killed too, as it would have died with it. Whom
the zygote serves is _cni_zygote_trust.py's.
"""

import os
import select
import signal
import socket
import stat
import struct
import sys
import time

from _cni_zygote_child import become, ns_id
from _cni_zygote_trust import Privilege, peer_uid

from cni.statefile import check_private

MAGIC = b"cni-macvlan-zygote/2"
DEFAULT_SOCKET = "/run/cni-macvlan/zygote.sock"
MAX_REQUEST = 192 * 1024
MAX_CHILDREN = 256  # children and waiting connections; then callers wait in the backlog (2 s at most)
REQUEST_WAIT = 2.0  # seconds a connection may take to send its request (the launcher's own deadline)
ACCEPT_BATCH = 16  # connections taken per round of the loop: a flood of them can't starve the rest
USAGE = "usage: cni-macvlan zygote [--socket PATH] [--max-children N] [--verbose]"
FDS = 6


def build_id(path: str) -> bytes:
    """What the launcher sends for the same file (cni-macvlan.c, build_id)."""
    st = os.stat(path)
    return f"{st.st_dev:x}:{st.st_ino:x}:{st.st_size:x}:{st.st_mtime_ns:x}".encode()


def _build_or_none(path: str) -> bytes | None:
    try:
        return build_id(path)
    except OSError:
        return None


class Refused(Exception):
    """The zygote can't serve from this path; the message says why and what to do."""


class Zygote:
    def __init__(  # type: ignore[no-untyped-def]
        self, path: str, bundle: str, run, verbose: bool = False, max_children: int = MAX_CHILDREN, watch: str = ""
    ) -> None:
        self.path = path
        self.verbose = verbose
        self.max_children = max_children
        self.build = build_id(bundle)
        # the bundle as reached by the path we were started as: when it leads to another build (the
        # files replaced, or install.sh's `current` moved on), ours is no longer the installed one
        self.watch = watch or bundle
        self.run = run  # runs the plugin named by sys.argv[0]; returns its exit code
        self.listener: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.inode = 0
        self.poll = select.poll()
        self.pending: dict[int, tuple[socket.socket, float]] = {}  # fd -> (connection, deadline)
        self.children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, connection)
        self.callers: dict[int, int] = {}  # connection fd -> pidfd, while we watch for its end
        self.stop = ""  # why we stop taking requests
        self.listening = False  # the listener is in the poll set (see update_listening)
        self.starved = False  # out of descriptors: listen again once a child has ended
        self.wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # signals wake the poll (set_wakeup_fd)
        self.privilege = Privilege("self")
        self.own_ns = {kind: ns_id(f"/proc/self/ns/{kind}") for kind in ("mnt", "net")}

    def log(self, line: str) -> None:
        if self.verbose:
            try:
                sys.stderr.write(f"cni-macvlan zygote: {line}\n")
            except OSError:
                pass  # a log nobody reads any more stops nothing

    def listen(self) -> None:
        """Bind the socket in a directory only root can change (made 0700 if missing; the lease
        store's rule, cni/statefile.check_private); refuse (Refused) otherwise."""
        assert self.listener is not None
        try:
            check_private(os.path.dirname(self.path), create=0o700)
        except OSError as e:
            raise Refused(f"the socket's directory: {e.strerror}") from None
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None:
            if not stat.S_ISSOCK(st.st_mode):
                raise Refused(f"{self.path} exists and is not a socket: refusing to remove it")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            probe.settimeout(1.0)
            try:
                probe.connect(self.path)
                if peer_uid(probe) == 0:
                    raise Refused(f"another zygote is serving {self.path}")
            except TimeoutError:  # its backlog is full: it is there, stopped or swamped
                raise Refused(f"another zygote is serving {self.path} (it does not answer)") from None
            except (ConnectionRefusedError, FileNotFoundError):
                pass  # a zygote that died left its socket
            finally:
                probe.close()
            os.unlink(self.path)
        old = os.umask(0o177)
        try:
            self.listener.bind(self.path)
        finally:
            os.umask(old)
        self.inode = os.stat(self.path).st_ino
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.update_listening()

    def serve(self) -> None:
        """Take requests until SIGTERM/SIGINT or a new build installed under us; then let the
        children running finish (their callers wait for them) and return."""

        def on_signal(signum: int, frame: object) -> None:
            self.stop = signal.Signals(signum).name

        signal.set_wakeup_fd(self.wake[1])
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.poll.register(self.wake[0], select.POLLIN)
        while self.listener is not None or self.children:
            timeout = None
            if self.pending:
                timeout = max(0, int((min(d for _, d in self.pending.values()) - time.monotonic()) * 1000) + 1)
            for fd, events in self.poll.poll(timeout):
                try:
                    self.event(fd, events)
                except Exception as e:  # one connection's trouble is that connection's alone
                    self.log(f"dropped a connection: {type(e).__name__}: {e}")
                    if fd in self.pending:
                        self.drop(fd)
            now = time.monotonic()
            for fd in [fd for fd, (_, deadline) in self.pending.items() if deadline <= now]:
                self.log("dropped a connection that sent no request in time")
                self.drop(fd)
            if self.stop and self.listener is not None:
                sys.stderr.write(f"cni-macvlan zygote: stopping ({self.stop}); {len(self.children)} running\n")
                self.close_listener()
                for fd in list(self.pending):
                    self.drop(fd)

    def event(self, fd: int, events: int) -> None:
        if fd == self.wake[0]:
            os.read(fd, 64)
        elif self.listener is not None and fd == self.listener.fileno():
            self.accept()
        elif fd in self.pending:
            self.request(fd, events)
        elif fd in self.children:
            self.reap(fd)
        elif fd in self.callers:
            self.caller_gone(fd)

    def close_listener(self) -> None:
        assert self.listener is not None
        if self.listening:
            self.poll.unregister(self.listener)
            self.listening = False
        self.listener.close()
        self.listener = None
        try:
            st = os.lstat(self.path)
            if stat.S_ISSOCK(st.st_mode) and st.st_ino == self.inode:  # still ours, not a successor's
                os.unlink(self.path)
        except OSError:
            pass

    def accept(self) -> None:
        """Take the waiting connections: a peer that is not root is closed before anything is read."""
        assert self.listener is not None
        for _ in range(ACCEPT_BATCH):  # then the others' requests get their turn
            if len(self.children) + len(self.pending) >= self.max_children:
                break
            try:
                conn, _ = self.listener.accept()
            except BlockingIOError:
                break
            except OSError:
                self.starved = bool(self.children)  # EMFILE and the like: wait for a child to end
                break
            try:
                uid = peer_uid(conn)
            except OSError:
                uid = -1
            if uid != 0:
                self.log(f"refused a connection of uid {uid}: only root is served")
                conn.close()
                continue
            conn.setblocking(False)
            self.pending[conn.fileno()] = (conn, time.monotonic() + REQUEST_WAIT)
            self.poll.register(conn, select.POLLIN | select.POLLRDHUP)
        self.update_listening()

    def drop(self, fd: int) -> None:
        conn, _ = self.pending.pop(fd)
        self.poll.unregister(fd)
        conn.close()
        self.update_listening()

    def decline(self, conn: socket.socket, why: str) -> None:
        self.log(f"declined: {why}")
        try:
            conn.send(f"declined: {why}".encode())
        except OSError:
            pass

    def request(self, fd: int, events: int) -> None:
        """A pending connection has its request (or went away): decline it, or fork its child."""
        conn, _ = self.pending[fd]
        try:
            data, _, flags, _ = conn.recvmsg(MAX_REQUEST)
        except BlockingIOError:
            return
        except OSError:
            data, flags = b"", 0
        self.pending.pop(fd)
        self.poll.unregister(fd)
        self.serve_request(conn, data, flags, events)
        self.update_listening()

    def serve_request(self, conn: socket.socket, data: bytes, flags: int, events: int) -> None:
        fields = data.split(b"\0")
        why = ""
        if not data or events & (select.POLLHUP | select.POLLRDHUP):
            conn.close()  # the caller is gone (it gave up): nothing to run
            return
        if flags & socket.MSG_TRUNC or len(fields) < 5 or not fields[3].isdigit() or len(fields[3]) > 6:
            why = "malformed request"
        elif fields[0] != MAGIC:
            why = "another protocol"
        elif fields[1] != self.build:
            why = "another build"
            if _build_or_none(self.watch) != self.build:
                self.stop = "a new build is installed"  # a supervisor starts us again on it
        elif not 1 <= int(fields[3]) <= len(fields) - 4:
            why = "malformed request"
        elif not self.serves(conn):
            why = "the caller may do less than the zygote (capabilities, no_new_privs, seccomp, namespace or label)"
        if why:
            self.decline(conn, why)
            conn.close()
            return
        try:
            pid = os.fork()
        except OSError as e:
            self.decline(conn, f"cannot fork: {e.strerror}")
            conn.close()
            return
        if pid == 0:
            self.child(conn, fields)  # never returns
        self.log(f"{os.fsdecode(fields[4])} -> pid {pid}")
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, conn)
        self.callers[conn.fileno()] = pidfd
        self.poll.register(pidfd, select.POLLIN)
        self.poll.register(conn, select.POLLRDHUP)

    def serves(self, conn: socket.socket) -> bool:
        """May the caller do all that its child would? A child has the zygote's privilege, so a
        caller with less (a root process stripped of capabilities, under seccomp or no_new_privs,
        in a user namespace, confined by a security label) runs its plugin itself."""
        pid, _, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        pidfd = os.pidfd_open(pid)  # the caller itself, while we read its /proc: not a reused pid
        try:
            theirs = Privilege(pid)
            alive = not select.select([pidfd], [], [], 0)[0]
        except OSError:
            return False
        finally:
            os.close(pidfd)
        return alive and theirs.covers(self.privilege)

    def update_listening(self) -> None:
        """Listen while a request can be taken: fewer than max_children children and waiting
        connections (the others wait in the kernel's backlog), and descriptors to spare."""
        want = self.listener is not None and not self.starved
        want = want and len(self.children) + len(self.pending) < self.max_children
        if want == self.listening:
            return
        self.listening = want
        assert self.listener is not None  # listening changes only while there is a listener
        if want:
            self.poll.register(self.listener, select.POLLIN)
        else:
            self.poll.unregister(self.listener)

    def reap(self, pidfd: int) -> None:
        """A child ended: tell its caller how (the child said it too, unless a signal ended it)."""
        pid, conn = self.children.pop(pidfd)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            reply = f"signal {os.WTERMSIG(status)}"
        else:
            reply = f"exit {os.waitstatus_to_exitcode(status)}"
        self.log(f"pid {pid} {reply}")
        try:
            conn.send(reply.encode())
        except OSError:
            pass  # the caller is gone
        self.poll.unregister(pidfd)
        os.close(pidfd)
        if self.callers.pop(conn.fileno(), None) is not None:
            self.poll.unregister(conn)
        conn.close()
        self.starved = False
        self.update_listening()

    def caller_gone(self, fd: int) -> None:
        """The launcher closed its end (gave up, or its runtime killed it): its child dies with it."""
        pidfd = self.callers.pop(fd)
        _, conn = self.children[pidfd]
        self.poll.unregister(conn)  # reap() closes it
        if os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return  # it has ended (and said so): the caller left after reading its status
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except OSError:
            pass

    def child(self, conn: socket.socket, fields: list[bytes]) -> None:
        """In the forked child: become the plugin the caller would have exec'd, and run it
        (_cni_zygote_child.py); never returns."""
        become(conn, fields, self.own_ns, self.let_go, self.run)

    def let_go(self) -> None:
        """In a child: the zygote's signal handling and descriptors, none of which the plugin gets."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in self.wake:
            os.close(fd)
        if self.listener is not None:
            self.listener.close()
        for other, _ in self.pending.values():
            other.close()
        for pidfd, (_, other) in self.children.items():
            os.close(pidfd)
            other.close()


def _watched(argv0: str, lib: str, bundle: str) -> str:
    """The bundle through the path we were started as (``/opt/cni-macvlan/current/cni-macvlan``
    reaches the build ``current`` points to at each look); ours when started by a bare name."""
    if "/" not in argv0:
        return f"{lib}/{bundle}"
    return os.path.join(os.path.dirname(os.path.abspath(argv0)), "lib", bundle)


def _independent_of_mounts(lib: str) -> None:
    """Make every later import independent of the mount namespace: a child joins its caller's, where
    our lib/ may be elsewhere or absent (a zygote in a container serving the host). Modules are then
    read through a descriptor of lib/ (/proc/self/fd/N: the same directory in any namespace), and
    the extension modules are loaded now, so that no shared library of theirs (libssl) is looked
    up in the caller's file system next to a C library of ours. Only from a lib/ that only root can
    change, and only files of root's that no one else can write: root loads nothing planted."""
    import _imp

    try:
        check_private(lib)
    except OSError as e:
        raise SystemExit(f"cni-macvlan zygote: our lib/: {e.strerror}") from None
    fd = os.open(lib, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    sys.path[:] = [f"/proc/self/fd/{fd}" if entry == lib else entry for entry in sys.path]
    sys.path_importer_cache.clear()
    suffix = _imp.extension_suffixes()[0]
    for name in sorted(os.listdir(lib)):
        if not name.endswith(suffix):
            continue
        st = os.lstat(os.path.join(lib, name))
        if stat.S_ISREG(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o022:
            __import__(name[: -len(suffix)])


def main(argv: list[str], lib: str, bundle: str, run) -> None:  # type: ignore[no-untyped-def]
    """``cni-macvlan zygote [--socket PATH] [--max-children N] [--verbose]``: serve until stopped.
    ``lib``: our lib/ directory; ``bundle``: the name of the module bundle in it."""
    options = {"--socket": DEFAULT_SOCKET, "--max-children": str(MAX_CHILDREN)}
    args = argv[2:]
    verbose = "--verbose" in args
    args = [a for a in args if a != "--verbose"]
    if len(args) % 2 or any(a not in options for a in args[::2]):
        raise SystemExit(USAGE)
    options.update(zip(args[::2], args[1::2], strict=True))
    if not options["--max-children"].isdigit() or int(options["--max-children"]) < 1:
        raise SystemExit(USAGE)
    if os.geteuid() != 0:
        raise SystemExit("cni-macvlan zygote: run it as root (it serves root's plugin execs only)")
    path = options["--socket"]
    if not path.startswith("/"):
        raise SystemExit(f"cni-macvlan zygote: --socket {path}: give an absolute path")
    # descriptors inherited from whoever started us would reach every child and the IPAMs it execs
    for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own, already closed
    _independent_of_mounts(lib)
    watch = _watched(argv[0], lib, bundle)
    zygote = Zygote(path, f"{lib}/{bundle}", run, verbose, int(options["--max-children"]), watch)
    try:
        zygote.listen()
    except Refused as e:
        raise SystemExit(f"cni-macvlan zygote: {e}") from None
    sys.stderr.write(f"cni-macvlan zygote: serving {path} (pid {os.getpid()})\n")
    sys.stderr.flush()
    try:
        zygote.serve()
    finally:
        if zygote.listener is not None:
            zygote.close_listener()
