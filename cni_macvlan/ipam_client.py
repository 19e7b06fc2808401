"""Running the delegated IPAM: exec'd from CNI_PATH as libcni does, or in-process for our own host-local.

When ``ipam.type`` resolves in CNI_PATH to the host-local of this very build (the same frozen
program under another name), the IPAM runs in this process: same config, same attachment, same
store, no second exec. Anything else (upstream host-local, static, dhcp, whereabouts, a host-local
of another build) is exec'd. ``CNI_MACVLAN_IPAM_EXEC=1`` forces the exec.
"""

from __future__ import annotations

import os
import sys

from .cni import delegate, log
from .cni.request import Request
from .cni.result import Result

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


_resolved: dict[tuple[str, tuple[str, ...]], tuple[str, bool]] = {}


def _in_process(req: Request, ipam_type: str) -> tuple[str, bool]:
    """The IPAM's executable and whether it is ours to run in-process; looked up once per process
    (an ADD asks for the precheck, the ADD itself and, on failure, the DEL)."""
    key = (ipam_type, req.path)
    if key not in _resolved:
        executable = delegate.find_in_path(ipam_type, req.path)
        inproc = ipam_type == "host-local" and not os.environ.get("CNI_MACVLAN_IPAM_EXEC") and same_build(executable)
        _resolved[key] = (executable, inproc)
    return _resolved[key]


def precheck(req: Request, ipam_type: str) -> None:
    """Before ADD touches the node: the IPAM is in CNI_PATH, and when it is ours, its config is valid
    (so a bad range fails before a parent or a link is made, not after)."""
    _, inproc = _in_process(req, ipam_type)
    if inproc:
        from ipam import config as ipam_config
        from ipam.plugin import CNI_ARGS_KEYS

        from .cni import cniargs

        ipam_config.load(req.config, cniargs.parse(req.args, CNI_ARGS_KEYS), req.version)


def run(req: Request, ipam_type: str, command: str) -> Result | None:
    """The IPAM's ``command`` for this request; its Result for ADD; CNIError on failure."""
    executable, inproc = _in_process(req, ipam_type)
    if inproc:
        from ipam.plugin import PLUGIN

        log.debug(f"ipam {command}: {ipam_type} in-process ({executable} is this build)")
        sub = Request(
            command, req.config, req.version, req.stdin, req.container_id, req.netns, req.ifname, req.args, req.path
        )
        return PLUGIN.verbs[command](sub)
    log.debug(f"ipam {command}: exec {executable}")
    return delegate.invoke(executable, command, child_env(req), req.stdin, req.version)
