"""The walk of one macvlan ADD, from stdin to netlink: how often control moves between our modules.

Runs one real macvlan ADD in this process, through the plugins' entry point (``cni_macvlan.__main__``,
as the launcher runs it), in a private lab of namespaces (tests/support/lab.py: a node namespace with a
veth parent, a container namespace), with our host-local run in-process as the frozen build runs it
(CNI_PATH's host-local is this very program). While it runs, a profile hook (sys.setprofile) sees
every Python call and return, and counts:

- stays: runs of consecutive frames in one module of ours, one each time control enters a module of
  ours other than the one it was last in (by a call, or by a return through any frames);
- returns: returns from a frame of one module of ours straight into a frame of another of ours;
- link depth: at the netlink send of the RTM_NEWLINK that creates the macvlan, the frames of ours on
  the stack from the verb the skeleton called (ADD) down to the one that sends, both counted.

Our modules are those of the product's packages; modules are imported before the count starts (the
frozen build preloads them), so no import is counted. Usage (root): ``python tools/walk.py [--list]``
(``--list``: also print the sequence of stays).
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, TypeGuard

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.lab import GATEWAY4, SUBNET4, Lab  # noqa: E402

OURS = ("cni", "cni_macvlan", "ipam")
RTM_NEWLINK, NLM_F_CREATE = 16, 0x400
CLONE_NEWNET = 0x40000000


def ours(module: object) -> TypeGuard[str]:
    return isinstance(module, str) and module.partition(".")[0] in OURS


def setns(fd: int) -> None:
    if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


class Walk:
    def __init__(self) -> None:
        self.stays = 0
        self.returns = 0
        self.current: str | None = None
        self.sequence: list[str] = []
        self.link_depth: list[str] | None = None

    def enter(self, module: str) -> None:
        if module != self.current:
            self.stays += 1
            self.current = module
            self.sequence.append(module)

    def profile(self, frame: Any, event: str, arg: object) -> None:
        if event == "call":
            module = frame.f_globals.get("__name__")
            if ours(module):
                self.enter(module)
        elif event == "return":
            module = frame.f_globals.get("__name__")
            back = frame.f_back
            into = back.f_globals.get("__name__") if back is not None else None
            if ours(module) and ours(into) and module != into:
                self.returns += 1
            if ours(into):
                self.enter(into)

    def sent(self, data: bytes) -> None:
        """A netlink message is being sent: at the macvlan's RTM_NEWLINK create, record our frames."""
        if self.link_depth is not None or len(data) < 16:
            return
        kind = int.from_bytes(data[4:6], sys.byteorder)
        flags = int.from_bytes(data[6:8], sys.byteorder)
        if kind != RTM_NEWLINK or not flags & NLM_F_CREATE or b"macvlan\0" not in data:
            return
        frames = []
        frame: Any = sys._getframe(2)  # the caller of send()
        while frame is not None:
            module = frame.f_globals.get("__name__")
            back = frame.f_back
            if ours(module):
                frames.append(f"{module}.{frame.f_code.co_qualname}")
            if (
                back is not None
                and back.f_code.co_name == "handle"
                and str(back.f_globals.get("__name__")).endswith("skel")
            ):
                break  # this frame is the verb the skeleton called
            frame = back
        self.link_depth = frames


def patch_netlink(walk: Walk) -> None:
    """Let the walk see what goes to the kernel: the netlink module's socket type, subclassed."""
    from _socket import socket

    class Socket(socket):
        def send(self, data: Any, *args: Any) -> int:
            walk.sent(bytes(data))
            return super().send(data, *args)

    patched = [m for n, m in list(sys.modules.items()) if ours(n) and hasattr(m, "Netlink") and hasattr(m, "socket")]
    assert patched, "no netlink module of ours found"
    for module in patched:
        module.socket = Socket  # type: ignore[attr-defined]


def main() -> int:
    listing = "--list" in sys.argv[1:]
    from cni_macvlan.plugins import PLUGINS

    for name in ["cni_macvlan.__main__", *PLUGINS["macvlan"]]:
        __import__(name)
    walk = Walk()
    patch_netlink(walk)
    lab = Lab()
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        container = lab.container("walk")
        tmp = Path(tempfile.mkdtemp(prefix="walk-"))
        bindir = tmp / "bin"
        bindir.mkdir()
        for name in PLUGINS:
            (bindir / name).symlink_to(sys.executable)  # this program: its host-local runs in-process
        sys.frozen = True  # type: ignore[attr-defined]
        config = {
            "cniVersion": "1.0.0",
            "name": "walk",
            "type": "macvlan",
            "master": "upl0",
            "stateDir": str(tmp / "state"),
            "ipam": {
                "type": "host-local",
                "dataDir": str(tmp / "leases"),
                "ranges": [[{"subnet": SUBNET4, "gateway": GATEWAY4}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        }
        env = {
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": "walk1",
            "CNI_NETNS": container,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(bindir),
        }
        os.environ.update(env)
        stdin_r, stdin_w = os.pipe()
        os.write(stdin_w, json.dumps(config).encode())
        os.close(stdin_w)
        out = tmp / "stdout"
        saved = os.dup(0), os.dup(1)
        out_fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
        os.dup2(stdin_r, 0)
        os.dup2(out_fd, 1)
        sys.argv = ["macvlan"]
        node = os.open(f"/run/netns/{lab.node}", os.O_RDONLY)
        setns(node)
        os.close(node)
        from cni_macvlan.__main__ import main as plugin_main

        code: object = None
        sys.setprofile(walk.profile)
        try:
            plugin_main()
        except SystemExit as e:
            code = e.code
        finally:
            sys.setprofile(None)
            os.dup2(saved[0], 0)
            os.dup2(saved[1], 1)
            setns(home)
        result = out.read_text()
        if code != 0:
            print(f"the ADD failed (exit {code}): {result}")
            return 1
        address = json.loads(result)["ips"][0]["address"]
    finally:
        lab.close()
    print(f"macvlan ADD ({address}): {walk.stays} stays, {walk.returns} returns")
    depth = walk.link_depth or []
    print(f"link creation: {len(depth)} frames of ours, verb to RTM_NEWLINK send:")
    for name in reversed(depth):
        print(f"  {name}")
    if listing:
        print("stays:", " > ".join(walk.sequence))
    return 0


if __name__ == "__main__":
    sys.exit(main())
