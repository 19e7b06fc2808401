"""A release directory (the tarball unpacked, or dist/release): its SHA256SUMS lists every file, and
nothing is installed that does not match it."""

from __future__ import annotations

import os

from cni_install.files import Refused, hexdigest, read
from cni_macvlan import __version__
from cni_macvlan.plugins import PLUGINS

UNIT = "cni-macvlan-zygote.service"
TREE = "cni-macvlan"  # the fast layout's directory in a release, and its launcher's name
SUMS = "SHA256SUMS"
BUNDLE = f"{TREE}/lib/_cni_modules.bin"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class Release:
    """``identity``: the launcher's (launcher/_cni_boot.py), which names a build by its bundle."""

    def __init__(self, root: str, identity: Callable[[bytes], str]) -> None:
        self.root = root
        self.identity = identity
        try:
            text = read(os.path.join(root, SUMS)).decode()
        except (OSError, UnicodeDecodeError) as e:
            raise Refused(f"{root} is not a release ({SUMS}: {e}); run the install.sh of an unpacked release") from None
        self.sums: dict[str, str] = {}
        for line in text.splitlines():
            digest, _, path = line.partition("  ")
            parts = path.split("/")
            if len(digest) != 64 or not path or path.startswith("/") or ".." in parts or "" in parts:
                raise Refused(f"{root}/{SUMS}: malformed line {line!r}")
            self.sums[path] = digest

    def load(self, layout: str, zygote: bool) -> dict[str, tuple[bytes, int]]:
        """What a layout installs (path in the release -> content, mode), every file checked against
        SHA256SUMS before anything is written."""
        if layout == "fast":
            paths = sorted(p for p in self.sums if p.startswith(TREE + "/"))
            if f"{TREE}/{TREE}" not in paths or BUNDLE not in paths:
                raise Refused(f"{self.root}/{SUMS} lists no fast layout ({TREE}/)")
            paths += [UNIT] if zygote else []
        else:
            paths = list(PLUGINS)
        files = {}
        for path in paths:
            data = self.read_checked(path)
            executable = os.stat(os.path.join(self.root, path)).st_mode & 0o100
            files[path] = (data, 0o755 if executable else 0o644)
        return files

    def read_checked(self, path: str) -> bytes:
        """The content of a listed file, after checking it against SHA256SUMS."""
        if path not in self.sums:
            raise Refused(f"{self.root}/{SUMS} does not list {path}")
        data = read(os.path.join(self.root, path))
        if hexdigest(data) != self.sums[path]:
            raise Refused(f"{self.root}/{path} does not match {SUMS}: the release is damaged; unpack it again")
        return data

    def build_name(self, bundle: bytes) -> str:
        """The directory of a build in LIBDIR/builds: <version>-<identity of its bundle>."""
        return f"{__version__}-{self.identity(bundle)}"
