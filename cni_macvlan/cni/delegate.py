"""Delegation: run another plugin (an IPAM) found in CNI_PATH, the way libcni does.

The delegate gets our environment (with CNI_COMMAND set to the verb) and the whole network
config on stdin; its stderr is ours; its stdout is a result or a CNI error. Spawned with
``os.posix_spawn`` and pipes: ``subprocess`` would add its imports to every exec.
"""

from __future__ import annotations

import os

from . import jsonio
from .errors import INTERNAL, CNIError
from .result import Result, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


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
