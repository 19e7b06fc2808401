"""Delegation: run another plugin (an IPAM) found in CNI_PATH, the way libcni does, or in this process.

The delegate gets our environment (with CNI_COMMAND set to the verb) and the whole network
config on stdin; its stderr is ours; its stdout is a result or a CNI error. Spawned with
``os.posix_spawn`` and pipes: ``subprocess`` would add its imports to every exec.

In-process: when the executable CNI_PATH has for the delegate's type is this very frozen program
(the same build under another name) and the type is one the entry point registered in
``IN_PROCESS``, the plugin runs here instead (``Delegate``): same config (read once), same
attachment, same store, no second exec. That registry is the only way this core reaches a plugin:
it holds module names, filled by whoever starts the program (cni_macvlan/__main__.py).
``CNI_MACVLAN_IPAM_EXEC=1`` forces the exec.
"""

from __future__ import annotations

import os
import sys

from . import jsonio, log
from .errors import INTERNAL, CNIError
from .ip import AddressError
from .result import Result, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any, Protocol

    from .request import Request

    class InProcess(Protocol):
        """What a module run in-process offers: its config read and checked once, then its verbs."""

        def load_config(self, req: Request) -> Any: ...
        def call(self, command: str, req: Request, conf: Any = None) -> Result | None: ...


# plugin type -> the module that runs it in this process (see above); empty: every delegate is exec'd
IN_PROCESS: dict[str, str] = {}


def find_in_path(plugin: str, path: Iterable[str]) -> str:
    """The executable named ``plugin`` in the first CNI_PATH directory that has it."""
    dirs = list(path)
    if not plugin or "/" in plugin or plugin in (".", "..") or "\0" in plugin:
        raise CNIError(INTERNAL, f'invalid plugin type "{plugin}"', "a plugin type is a file name, not a path")
    for directory in dirs:
        candidate = os.path.join(directory, plugin)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CNIError(
        INTERNAL,
        f'failed to find plugin "{plugin}" in path [{" ".join(dirs)}]',
        "install the plugin in one of the CNI_PATH directories",
    )


def run(executable: str, command: str, env: Mapping[str, str], stdin: bytes) -> tuple[int, bytes]:
    """Execute a plugin; return (exit status, stdout bytes). stderr is inherited."""
    child_env = dict(env)
    child_env["CNI_COMMAND"] = command
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        pid = os.posix_spawn(
            executable,
            [executable],
            child_env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, in_r, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_CLOSE, in_w),
                (os.POSIX_SPAWN_CLOSE, out_r),
            ],
        )
    except OSError as e:
        for fd in (in_r, in_w, out_r, out_w):
            os.close(fd)
        raise CNIError(INTERNAL, f"failed to execute {executable}: {e.strerror}") from None
    os.close(in_r)
    os.close(out_w)
    try:
        # configs are far below the pipe buffer; a larger one is written in full before reading
        view = memoryview(stdin)
        while view:
            written = os.write(in_w, view)
            view = view[written:]
    except BrokenPipeError:
        pass  # the child exited without reading; its status and output tell why
    finally:
        os.close(in_w)
    chunks = []
    while True:
        chunk = os.read(out_r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(out_r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks)


def _error_from(executable: str, code: int, out: bytes) -> CNIError:
    try:
        err = jsonio.loads(out)
    except jsonio.DecodeError:
        err = None
    if isinstance(err, dict) and isinstance(err.get("msg"), str):
        c = err.get("code")
        return CNIError(c if type(c) is int else INTERNAL, err["msg"], str(err.get("details") or ""))
    text = out.decode(errors="replace").strip()
    if code < 0:  # killed; worded as Go's exec error, which libcni quotes
        import signal  # only here: it imports enum

        how = f"signal: {(signal.strsignal(-code) or str(-code)).lower()}"
    else:
        how = f"exit status {code}"
    return CNIError(INTERNAL, f'netplugin failed: "{text}": {how}', f"plugin {executable}")


def invoke(executable: str, command: str, env: Mapping[str, str], stdin: bytes, version: str) -> Result | None:
    """Run a plugin's ``command``; the parsed result for ADD, None otherwise; CNIError on failure."""
    code, out = run(executable, command, env, stdin)
    if code != 0:
        raise _error_from(executable, code, out)
    if command != "ADD":
        return None
    try:
        data = jsonio.loads(out)
    except jsonio.DecodeError as e:
        raise CNIError(INTERNAL, f"plugin {executable} printed an unreadable result: {e}") from None
    return parse(data, version)


_TAIL = 65536


def _tail(path: str) -> bytes:
    with open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - _TAIL))
        return f.read()


def same_build(path: str) -> bool:
    """Is the executable at ``path`` this frozen program (a link to it, or a byte-identical twin)?"""
    if not getattr(sys, "frozen", False):
        return False
    me = sys.executable
    try:
        if os.path.samefile(path, me):
            return True
        if os.stat(path).st_size != os.stat(me).st_size:
            return False
        # a single file ends with its archive's central directory: equal tails, same build
        return _tail(path) == _tail(me)
    except OSError:
        return False


def child_env(req: Request) -> dict[str, str]:
    """Our environment for a delegate, as libcni would have given it: the launcher adds nothing to
    the environment (no LD_LIBRARY_PATH of ours, unlike PyInstaller's bootloader), so it is passed
    on as it came, with the request's CNI_* values."""
    env = dict(os.environ)
    env.update(
        CNI_CONTAINERID=req.container_id,
        CNI_NETNS=req.netns,
        CNI_IFNAME=req.ifname,
        CNI_ARGS=req.args,
        CNI_PATH=":".join(req.path),
    )
    return {k: v for k, v in env.items() if v}


class Delegate:
    """The plugin of type ``kind`` for one request (a network's IPAM, as the log names it): ``run`` a verb on it."""

    def __init__(self, req: Request, kind: str) -> None:
        self.req = req
        self.kind = kind
        self.executable = find_in_path(kind, req.path)
        self.local: InProcess | None = None
        if kind in IN_PROCESS and not os.environ.get("CNI_MACVLAN_IPAM_EXEC") and same_build(self.executable):
            self.local = __import__(IN_PROCESS[kind], fromlist=["call"])
        self._conf: Any = None  # the in-process plugin's config, read once

    def precheck(self) -> None:
        """Before the caller touches the node: when the plugin runs here, its config is valid (a bad
        range then fails before a parent or a link is made, not after)."""
        if self.local is not None:
            self._conf = self.local.load_config(self.req)

    def run(self, command: str) -> Result | None:
        """The plugin's ``command`` for this request; its Result for ADD; CNIError on failure."""
        if self.local is not None:
            log.debug(f"ipam {command}: {self.kind} in-process ({self.executable} is this build)")
            return self.local.call(command, self.req, self._conf)
        log.debug(f"ipam {command}: exec {self.executable}")
        env = child_env(self.req)
        try:
            return invoke(self.executable, command, env, self.req.stdin, self.req.version)
        except AddressError:
            # an ADD's result whose addresses can't be read: what the delegate reserved is released
            # (DEL, best effort) before the error, as after any failure that follows its ADD
            if command == "ADD":
                try:
                    invoke(self.executable, "DEL", env, self.req.stdin, self.req.version)
                except CNIError:
                    pass
            raise
