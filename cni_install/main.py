"""``cni-macvlan install [OPTIONS]`` (install.sh's arguments): install the release the running
launcher belongs to, or --uninstall."""

from __future__ import annotations

import argparse
import os
import sys

from cni_install.files import Refused
from cni_install.install import Installer
from cni_install.node import Node
from cni_install.release import Release
from cni_install.uninstall import uninstall

DEFAULT_SOCKET = "/run/cni-macvlan/zygote.sock"  # the zygote's (launcher/_cni_zygote.py)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="install.sh",
        description="Install this release's CNI plugins atomically (a runtime exec'ing one meanwhile gets a whole "
        "old or a whole new plugin), or --uninstall what was installed.",
    )
    p.add_argument("--prefix", default="/opt/cni/bin", help="the CNI bin directory (default %(default)s)")
    p.add_argument("--libdir", default="/opt/cni-macvlan", help="the builds and the manifest (default %(default)s)")
    p.add_argument("--layout", choices=("fast", "single"), default="fast", help="default %(default)s")
    p.add_argument(
        "--zygote", choices=("yes", "no"), default="yes", help="install the zygote's systemd unit (fast layout)"
    )
    p.add_argument("--unitdir", default="/etc/systemd/system", help="default %(default)s")
    p.add_argument("--destdir", default="", help="install under DIR as if it were / (packages; a container)")
    p.add_argument("--socket", default=DEFAULT_SOCKET, help="the zygote's socket to hand over (default %(default)s)")
    p.add_argument("--uninstall", action="store_true", help="remove what the manifest in LIBDIR lists")
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace plugins (or a unit) of PREFIX that are not ours; each is kept in LIBDIR/replaced/ and"
        " --uninstall puts it back",
    )
    return p.parse_args(argv)


def main(argv: list[str], lib: str, identity: Callable[[bytes], str]) -> int:
    """``lib``: the lib/ of the launcher running us (the release is the directory above its tree);
    ``identity``: the launcher's naming of a build by its bundle (launcher/_cni_boot.py)."""
    args = parse(argv)
    try:
        node = Node(args.prefix, args.libdir, args.unitdir, args.destdir)
        if args.uninstall:
            uninstall(node, args.socket)
            return 0
        if lib == sys.executable:
            raise Refused("run the installer of a release's tree (install.sh), not a single-file plugin")
        release = Release(os.path.dirname(os.path.dirname(lib)), identity)
        Installer(release, node, args.layout, args.zygote == "yes", args.socket, args.replace).run()
    except Refused as e:
        sys.stderr.write(f"cni-macvlan install: {e}\n")
        return 1
    except OSError as e:
        sys.stderr.write(f"cni-macvlan install: {e.filename or ''}: {e.strerror}\n")
        return 1
    return 0
