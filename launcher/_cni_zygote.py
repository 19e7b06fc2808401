"""The zygote: the launcher started once, ``cni-macvlan zygote [--socket PATH]``, with every module
of both plugins loaded, forking a child per plugin exec. A plugin exec then costs the launcher's C
start-up, one message and a fork instead of an interpreter start and our imports (README
"Performance": about 12 ms less per exec on this machine kind).

Rule of membership: the zygote's socket protocol and the setting up of a child as the exec'd plugin
would have been. Nothing here knows about CNI; the child runs the same ``cni_macvlan.__main__``.

Protocol (launcher/cni-macvlan.c, try_zygote), SOCK_SEQPACKET, one connection per exec: the request,
NUL-separated fields ``cni-macvlan-zygote/1``, build id, umask (octal), argv[0], then the
environment; we answer ``ready`` or ``declined: <why>`` (the launcher then runs the plugin itself,
as it does when no answer comes within 2 s). Then the launcher sends six descriptors: stdin,
stdout, stderr, working directory, network and mount namespace (not with the request: a stopped
zygote would hold the caller's stdout open in its queue, and its runtime would wait for ever). The
child says ``started`` before it does anything, then comes ``exit N`` or ``signal N``. Only root may connect
(the socket's directory is 0700 and the peer's uid is checked), and only a launcher of the very
build the zygote loaded (the identity of _cni_modules.bin) is served, so an upgrade never runs old
code: the new launcher falls back to starting its own interpreter until the zygote is restarted.

The child joins the caller's mount and network namespaces and working directory, takes its umask,
environment and standard descriptors: what the plugin sees is what it would see exec'd. It stays in
the zygote's cgroup and session. If the caller goes away (the runtime killed it on a timeout) the
child is killed too, as it would have died with it.
"""

import os
import select
import signal
import socket
import struct
import sys

from _cni_launcher import setns  # type: ignore[import-not-found]

MAGIC = b"cni-macvlan-zygote/1"
DEFAULT_SOCKET = "/run/cni-macvlan/zygote.sock"
MAX_REQUEST = 192 * 1024
MAX_CHILDREN = 256  # then new callers wait in the backlog (and give up after 2 s: they run alone)
USAGE = "usage: cni-macvlan zygote [--socket PATH] [--max-children N] [--verbose]"
FDS = 6
CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000


def build_id(path: str) -> bytes:
    """What the launcher sends for the same file (cni-macvlan.c, build_id)."""
    st = os.stat(path)
    return f"{st.st_dev:x}:{st.st_ino:x}:{st.st_size:x}:{st.st_mtime_ns:x}".encode()


def _same_ns(fd: int, kind: str) -> bool:
    mine = os.stat(f"/proc/self/ns/{kind}")
    theirs = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


class Zygote:
    def __init__(self, path: str, bundle: str, run, verbose: bool = False, max_children: int = MAX_CHILDREN) -> None:  # type: ignore[no-untyped-def]
        self.path = path
        self.verbose = verbose
        self.max_children = max_children
        self.bundle = bundle
        self.build = build_id(bundle)
        self.run = run  # runs the plugin named by sys.argv[0]; returns its exit code
        self.listener: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.inode = 0
        self.poll = select.poll()
        self.children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, connection)
        self.callers: dict[int, int] = {}  # connection fd -> pidfd, while we watch for its end
        self.stop = ""  # why we stop taking requests
        self.paused = False  # not accepting: at MAX_CHILDREN, or out of descriptors
        self.wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # signals wake the poll (set_wakeup_fd)

    def listen(self) -> None:
        assert self.listener is not None
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            probe.connect(self.path)
        except FileNotFoundError:
            pass
        except ConnectionRefusedError:
            os.unlink(self.path)  # a zygote that died left its socket
        else:
            raise SystemExit(f"cni-macvlan zygote: another zygote is serving {self.path}")
        finally:
            probe.close()
        old = os.umask(0o177)
        try:
            self.listener.bind(self.path)
        finally:
            os.umask(old)
        self.inode = os.stat(self.path).st_ino
        self.listener.listen(128)
        self.poll.register(self.listener, select.POLLIN)

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
            for fd, _ in self.poll.poll():
                if fd == self.wake[0]:
                    os.read(fd, 64)
                elif self.listener is not None and fd == self.listener.fileno():
                    self.accept()
                elif fd in self.children:
                    self.reap(fd)
                elif fd in self.callers:
                    self.caller_gone(fd)
            if self.stop and self.listener is not None:
                sys.stderr.write(f"cni-macvlan zygote: stopping ({self.stop}); {len(self.children)} running\n")
                self.close_listener()

    def close_listener(self) -> None:
        assert self.listener is not None
        if not self.paused:
            self.poll.unregister(self.listener)
        self.listener.close()
        self.listener = None
        try:
            if os.stat(self.path).st_ino == self.inode:  # still ours, not a successor's
                os.unlink(self.path)
        except OSError:
            pass

    def accept(self) -> None:
        """Take one request: check it, answer "ready", take the caller's descriptors, fork."""
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except OSError:
            if self.children:  # EMFILE and the like: wait for a child to end rather than spin
                self.pause(True)
            return
        conn.settimeout(1.0)  # the launcher sends each message right after the last answer
        fds: list[int] = []
        pid = 0
        try:
            _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
            data, _, flags, _ = conn.recvmsg(MAX_REQUEST)
            fields = data.split(b"\0")
            why = ""
            if uid != 0:
                why = "only root is served"
            elif flags & socket.MSG_TRUNC or len(fields) < 5:
                why = "malformed request"
            elif fields[0] != MAGIC:
                why = "another protocol"
            elif fields[1] != self.build:
                why = "another build"
                if _build_or_none(self.bundle) != self.build:
                    self.stop = "a new build is installed"  # a supervisor starts us again on it
            if why:
                if self.verbose:
                    sys.stderr.write(f"cni-macvlan zygote: declined: {why}\n")
                conn.send(f"declined: {why}".encode())
                return
            conn.send(b"ready")
            _, ancdata, flags, _ = conn.recvmsg(16, socket.CMSG_SPACE(FDS * 4))
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(struct.unpack(f"{len(payload) // 4}i", payload[: len(payload) // 4 * 4]))
            if flags & socket.MSG_CTRUNC or len(fds) != FDS:
                conn.send(b"declined: malformed descriptors")
                return
            pid = os.fork()
            if pid == 0:
                self.child(conn, fds, fields)  # never returns
        except OSError:
            pid = 0
        finally:
            for fd in fds:
                os.close(fd)
            if not pid:
                conn.close()
        if not pid:
            return
        if self.verbose:
            sys.stderr.write(f"cni-macvlan zygote: {os.fsdecode(fields[3])} -> pid {pid}\n")
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, conn)
        self.callers[conn.fileno()] = pidfd
        self.poll.register(pidfd, select.POLLIN)
        self.poll.register(conn, select.POLLIN | select.POLLRDHUP)
        if len(self.children) >= self.max_children:
            self.pause(True)

    def pause(self, paused: bool) -> None:
        if self.listener is None or paused == self.paused:
            return
        self.paused = paused
        if paused:
            self.poll.unregister(self.listener)
        else:
            self.poll.register(self.listener, select.POLLIN)

    def reap(self, pidfd: int) -> None:
        """A child ended: tell its caller how (the child said it too, unless a signal ended it)."""
        pid, conn = self.children.pop(pidfd)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            reply = f"signal {os.WTERMSIG(status)}"
        else:
            reply = f"exit {os.waitstatus_to_exitcode(status)}"
        if self.verbose:
            sys.stderr.write(f"cni-macvlan zygote: pid {pid} {reply}\n")
        try:
            conn.send(reply.encode())
        except OSError:
            pass  # the caller is gone
        self.poll.unregister(pidfd)
        os.close(pidfd)
        if self.callers.pop(conn.fileno(), None) is not None:
            self.poll.unregister(conn)
        conn.close()
        self.pause(False)

    def caller_gone(self, fd: int) -> None:
        """The launcher closed its end (its runtime killed it): its child dies with it."""
        pidfd = self.callers.pop(fd)
        _, conn = self.children[pidfd]
        self.poll.unregister(conn)  # reap() closes it
        if os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return  # it has ended (and said so): the caller left after reading its status
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except OSError:
            pass

    def child(self, conn: socket.socket, fds: list[int], fields: list[bytes]) -> None:
        """Become the plugin as the caller would have exec'd it, run it, say how it ended."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for fd in self.wake:
                os.close(fd)
            if self.listener is not None:
                self.listener.close()
            for pidfd, (_, other) in self.children.items():
                os.close(pidfd)
                other.close()
            conn.settimeout(None)
            stdin, stdout, stderr, cwd, netns, mntns = fds
            if not _same_ns(mntns, "mnt"):
                setns(mntns, CLONE_NEWNS)
            if not _same_ns(netns, "net"):
                setns(netns, CLONE_NEWNET)
            os.fchdir(cwd)
            for target, fd in enumerate((stdin, stdout, stderr)):
                os.dup2(fd, target)
            for fd in fds:
                if fd > 2:
                    os.close(fd)
            fds.clear()
            os.umask(int(fields[2], 8))
            environ = os.environ
            environ.clear()
            for entry in fields[4:]:
                key, sep, value = entry.partition(b"=")
                if sep and key:
                    environ[os.fsdecode(key)] = os.fsdecode(value)
            sys.argv[:] = [os.fsdecode(fields[3])]
            conn.send(b"started")
        except BaseException as e:  # nothing of the request ran: the launcher runs it itself
            try:
                conn.send(f"declined: {e}".encode())
            finally:
                os._exit(0)
        try:
            if os.environ.get("CNI_MACVLAN_DEBUG"):
                sys.stderr.write(f"cni-macvlan: run by the zygote {os.getppid()}\n")
            code = self.run()
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


def _build_or_none(path: str) -> bytes | None:
    try:
        return build_id(path)
    except OSError:
        return None


def main(argv: list[str], bundle: str, run) -> None:  # type: ignore[no-untyped-def]
    """``cni-macvlan zygote [--socket PATH] [--max-children N] [--verbose]``: serve until stopped."""
    options = {"--socket": DEFAULT_SOCKET, "--max-children": str(MAX_CHILDREN)}
    args = argv[2:]
    verbose = "--verbose" in args
    args = [a for a in args if a != "--verbose"]
    if len(args) % 2 or any(a not in options for a in args[::2]):
        raise SystemExit(USAGE)
    options.update(zip(args[::2], args[1::2], strict=True))
    if not options["--max-children"].isdigit() or int(options["--max-children"]) < 1:
        raise SystemExit(USAGE)
    path = options["--socket"]
    zygote = Zygote(path, bundle, run, verbose, int(options["--max-children"]))
    zygote.listen()
    sys.stderr.write(f"cni-macvlan zygote: serving {path} (pid {os.getpid()})\n")
    sys.stderr.flush()
    try:
        zygote.serve()
    finally:
        if zygote.listener is not None:
            zygote.close_listener()
