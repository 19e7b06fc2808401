"""The plugin skeleton: one function from (environment, stdin) to (exit code, stdout, stderr).

``handle`` is pure apart from what the verb functions do, so tests call it in-process; ``main``
is the only place that touches the real stdin, stdout and exit code. A verb function takes a
Request and returns a Result (ADD) or None; it reports failures by raising CNIError. Anything
else that escapes is turned into a CNI error (code 999), never into a traceback on stdout.
"""

from __future__ import annotations

import os
import sys

from . import jsonio, log, versions
from .errors import INTERNAL, INVALID_NETNS, IO_FAILURE, CNIError
from .request import Request, from_env
from .result import Result, render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    Verb = Callable[[Request], Result | None]


class Plugin:
    def __init__(self, name: str, verbs: Mapping[str, Verb]) -> None:
        self.name = name
        self.verbs = verbs

    def about(self, version: str) -> str:
        """``version``: the build's, which the entry point knows (cni_macvlan/__main__.py)."""
        # upstream's shape (buildversion.BuildString): "CNI <name> plugin v<version>", then ours named
        return (
            f"CNI {self.name} plugin v{version} (cni-macvlan)\n"
            f"CNI protocol versions supported: {', '.join(versions.SUPPORTED)}\n"
        )


def _same_netns(netns: str) -> bool:
    """Is CNI_NETNS the namespace this process runs in? (libcni refuses ADD/DEL then: code 8)"""
    try:
        ours = os.stat("/proc/self/ns/net")
        theirs = os.stat(netns)
    except OSError:
        return False
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def handle(plugin: Plugin, env: Mapping[str, str], stdin: bytes, version: str = "") -> tuple[int, str, str]:
    """Run one CNI invocation; return (exit code, stdout text, stderr text). ``version``: the build's,
    for the about text."""
    if not env.get("CNI_COMMAND"):
        return 0, "", plugin.about(version)
    log.start(plugin.name, env)
    version = versions.CURRENT
    try:
        if env["CNI_COMMAND"] == "VERSION":
            return 0, _version_reply(stdin), ""
        request = from_env(env, stdin)
        version = request.version
        problem = log.configure(env, request.config)
        if problem:
            log.warning(problem)
        verb = plugin.verbs.get(request.command)
        if verb is None:
            raise CNIError(INTERNAL, f"{plugin.name} does not implement {request.command}")
        if (
            request.command in ("ADD", "DEL")
            and request.netns
            and env.get("CNI_NETNS_OVERRIDE", "").lower() not in ("1", "true")
            and _same_netns(request.netns)
        ):
            raise CNIError(INVALID_NETNS, "plugin's netns and netns from CNI_NETNS should not be the same")
        result = verb(request)
        if result is None:
            log.info("ok")
            return 0, "", ""
        log.info("ok: " + " ".join(ip.address for ip in result.ips))
        return 0, jsonio.dumps(render(result, version)), ""
    except CNIError as e:
        log.error(f"code {e.code}: {e.msg}" + (f" ({e.details})" if e.details else ""))
        return 1, jsonio.dumps(e.to_dict(e.cni_version or version)), ""
    except Exception as e:  # the last line of defence: the runtime gets a CNI error, not a traceback
        import traceback

        log.error(f"internal error: {traceback.format_exc()}")
        detail = f"{type(e).__name__}: {e}"
        return 1, jsonio.dumps(CNIError(INTERNAL, f"internal error in {plugin.name}", detail).to_dict(version)), ""


def _version_reply(stdin: bytes) -> str:
    """What every libcni plugin answers, whatever stdin holds: its own current version and those it speaks,
    on one line with its newline (json.Encoder), byte-identical to upstream's."""
    return jsonio.dumps_compact({"cniVersion": versions.CURRENT, "supportedVersions": list(versions.SUPPORTED)}) + "\n"


def _read_stdin() -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def main(plugin: Plugin, version: str) -> None:
    """Entry point of a plugin executable, of the build ``version``."""
    command = os.environ.get("CNI_COMMAND", "")
    stdin = b""
    if command and not (command == "VERSION" and os.isatty(0)):
        try:
            stdin = _read_stdin()
        except OSError as e:
            out = jsonio.dumps(
                CNIError(IO_FAILURE, f"error reading the network config from stdin: {e}").to_dict(versions.CURRENT)
            )
            os.write(1, out.encode())
            sys.exit(1)
    code, out, err = handle(plugin, os.environ, stdin, version)
    if err:
        sys.stderr.write(err)
        sys.stderr.flush()
    if out:
        os.write(1, out.encode())
    sys.exit(code)
