"""cnitool, libcni's reference client (Debian's libcni 1.1.2, built by tools/runtime-clients.sh), run as a
user runs it on a node: `cnitool add|check|del NETWORK NETNS` with the conflists of NETCONFPATH, the plugins
of CNI_PATH, and CAP_ARGS (JSON) and CNI_ARGS (K=V;...) as the runtime's arguments.

It runs in the lab's node namespace, and in a private view of the file system where libcni's cache
(/var/lib/cni) is the test's ``cache`` directory: the entry libcni writes at ADD (the result, the
arguments) and reads back for CHECK's and DEL's prevResult, and removes at DEL. cnitool names the
container ``cnitool-`` and 20 hex digits of the SHA-512 of the namespace's path.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.support.layouts import UPSTREAM_PLUGINS, runtime_client
from tests.support.mountns import private_view
from tests.support.runners import Outcome


class Cnitool:
    def __init__(self, workdir: Path, node_netns: str, bin_dir: Path, env: dict[str, str]) -> None:
        self.exe = runtime_client("cnitool")
        self.node_netns = node_netns
        self.netconf = workdir / "net.d"
        self.cache = workdir / "cni-cache"
        self.scratch = workdir / "views"
        for d in (self.netconf, self.cache, self.scratch):
            d.mkdir(parents=True)
        self.cni_path = [bin_dir, UPSTREAM_PLUGINS]  # ours first, then upstream's Go plugins (tuning, loopback)
        self.env = env

    def network(self, conflist: dict[str, Any]) -> str:
        """Put a conflist in NETCONFPATH; its name."""
        (self.netconf / f"{conflist['name']}.conflist").write_text(json.dumps(conflist))
        return str(conflist["name"])

    def __call__(
        self,
        verb: str,
        network: str,
        netns: str,
        cap_args: dict[str, Any] | None = None,
        cni_args: str = "",
        cni_path: list[Path] | None = None,
    ) -> Outcome:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "NETCONFPATH": str(self.netconf),
            "CNI_PATH": ":".join(str(p) for p in cni_path or self.cni_path),
            **self.env,
        }
        if cap_args is not None:
            env["CAP_ARGS"] = json.dumps(cap_args)
        if cni_args:
            env["CNI_ARGS"] = cni_args
        view = private_view({"/var/lib/cni": self.cache}, self.scratch, netns=self.node_netns)
        proc = subprocess.run(
            [*view, str(self.exe), verb, network, netns], env=env, capture_output=True, timeout=60, check=False
        )
        return Outcome(proc.returncode, proc.stdout.decode(), proc.stderr.decode())

    @staticmethod
    def container_id(netns: str) -> str:
        return "cnitool-" + hashlib.sha512(os.path.abspath(netns).encode()).hexdigest()[:20]

    def cache_entry(self, network: str, netns: str, ifname: str = "eth0") -> Path:
        return self.cache / "results" / f"{network}-{self.container_id(netns)}-{ifname}"

    def cached(self) -> list[str]:
        d = self.cache / "results"
        return sorted(p.name for p in d.iterdir()) if d.exists() else []
