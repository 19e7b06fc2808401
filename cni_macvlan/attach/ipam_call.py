"""The call to the delegated IPAM: the one seam between the macvlan plugin and the host-local one.

The IPAM named in ``ipam.type`` is looked up in CNI_PATH once per request. When it is the host-local
of this very build (the same frozen program under another name), it runs in this process through
``ipam.plugin.call``: same config (parsed once), same attachment, same store, no second exec; this
is the only place the macvlan plugin imports anything of the IPAM's. Anything else (upstream
host-local, static, dhcp, whereabouts, a host-local of another build) is exec'd as libcni does.
``CNI_MACVLAN_IPAM_EXEC=1`` forces the exec.
"""

from __future__ import annotations

import os
import sys

from ..cni import delegate, log
from ..cni.request import Request
from ..cni.result import Result

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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


class Ipam:
    """The network's IPAM for one request: ``run`` a verb on it."""

    def __init__(self, req: Request, ipam_type: str) -> None:
        self.req = req
        self.type = ipam_type
        self.executable = delegate.find_in_path(ipam_type, req.path)
        self.in_process = (
            ipam_type == "host-local" and not os.environ.get("CNI_MACVLAN_IPAM_EXEC") and same_build(self.executable)
        )
        self._conf: Any = None  # the in-process IPAM's config, parsed once

    def precheck(self) -> None:
        """Before ADD touches the node: when the IPAM is ours, its config is valid (a bad range then
        fails before a parent or a link is made, not after)."""
        if self.in_process:
            from ipam import plugin

            self._conf = plugin.load_config(self.req)

    def run(self, command: str) -> Result | None:
        """The IPAM's ``command`` for this request; its Result for ADD; CNIError on failure."""
        if self.in_process:
            from ipam import plugin

            log.debug(f"ipam {command}: {self.type} in-process ({self.executable} is this build)")
            return plugin.call(command, self.req, self._conf)
        log.debug(f"ipam {command}: exec {self.executable}")
        return delegate.invoke(self.executable, command, child_env(self.req), self.req.stdin, self.req.version)
