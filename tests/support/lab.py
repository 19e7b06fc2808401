"""A private lab of network namespaces for the plugin tests, torn down whatever happens.

  <p>-up (upstream)              <p>-node                       <p>-<name> (containers)
  upr0 10.77.0.1/24, fd77::1/64 <== veth ==> upl0 (parent) --macvlan--> eth0 ...

Plugins run inside the node namespace (`nsenter --net`), exactly as a runtime on that node would run
them. Traffic stays inside these namespaces.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from tests.support.runners import Outcome, json_bytes

GATEWAY4 = "10.77.0.1"
GATEWAY6 = "fd77::1"
SUBNET4 = "10.77.0.0/24"
SUBNET6 = "fd77::/64"


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


class Lab:
    def __init__(self) -> None:
        self.prefix = f"cmt{uuid.uuid4().hex[:8]}"
        self.namespaces: list[str] = []
        self.node = self.add_netns("node")
        self.upstream = self.add_netns("up")
        sh("ip", "-n", self.node, "link", "add", "upl0", "type", "veth", "peer", "name", "upr0", "netns", self.upstream)
        sh("ip", "-n", self.node, "link", "set", "upl0", "up")
        sh("ip", "-n", self.upstream, "link", "set", "upr0", "up")
        sh("ip", "-n", self.upstream, "addr", "add", f"{GATEWAY4}/24", "dev", "upr0")
        sh("ip", "-n", self.upstream, "addr", "add", f"{GATEWAY6}/64", "dev", "upr0", "nodad")

    def add_netns(self, name: str) -> str:
        full = f"{self.prefix}-{name}"
        sh("ip", "netns", "add", full)
        self.namespaces.append(full)
        sh("ip", "-n", full, "link", "set", "lo", "up")
        return full

    def container(self, name: str) -> str:
        """A new container namespace; returns its path, as CNI_NETNS carries it."""
        return f"/run/netns/{self.add_netns(name)}"

    def attach(self, name: str, pid: int) -> str:
        """A name for the network namespace of process ``pid`` (a runtime's sandbox), kept (and the namespace
        with it) until removed; returns its /run/netns path."""
        full = f"{self.prefix}-{name}"
        sh("ip", "netns", "attach", full, str(pid))
        self.namespaces.append(full)
        return f"/run/netns/{full}"

    def remove_netns(self, path: str) -> None:
        name = os.path.basename(path)
        sh("ip", "netns", "del", name, check=False)
        if name in self.namespaces:
            self.namespaces.remove(name)

    def close(self) -> None:
        for name in reversed(self.namespaces):
            sh("ip", "netns", "del", name, check=False)
        self.namespaces.clear()

    # ---- running plugins ----

    def run(
        self, argv: list[str], env: dict[str, str], config: dict[str, Any] | bytes, netns: str | None = None
    ) -> Outcome:
        stdin = config if isinstance(config, bytes) else json_bytes(config)
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
        proc = subprocess.run(
            ["nsenter", f"--net=/run/netns/{netns or self.node}", *argv],
            input=stdin,
            env={**base, **env},
            capture_output=True,
            timeout=60,
            check=False,
        )
        return Outcome(proc.returncode, proc.stdout.decode(), proc.stderr.decode())

    # ---- looking at the kernel ----

    def links(self, netns: str) -> dict[str, dict[str, Any]]:
        """name -> `ip -d -j link` entry, in a namespace given by name or /run/netns path."""
        import json

        out = sh("ip", "-n", os.path.basename(netns), "-d", "-j", "link", "show").stdout
        return {entry["ifname"]: entry for entry in json.loads(out)}

    def addresses(self, netns: str, ifname: str) -> list[str]:
        import json

        out = sh("ip", "-n", os.path.basename(netns), "-j", "addr", "show", "dev", ifname).stdout
        return [
            f"{a['local']}/{a['prefixlen']}" for e in json.loads(out) for a in e["addr_info"] if a["scope"] != "link"
        ]

    def routes(self, netns: str, family: str = "-4") -> list[str]:
        return sh("ip", "-n", os.path.basename(netns), family, "route", "show").stdout.splitlines()

    def ping(self, netns: str, address: str) -> bool:
        cmd = ["ip", "netns", "exec", os.path.basename(netns), "ping", "-c", "1", "-W", "1"]
        if ":" in address:
            cmd.append("-6")
        return sh(*cmd, address, check=False).returncode == 0

    def node_links(self) -> dict[str, dict[str, Any]]:
        return self.links(self.node)

    def vlan_upstream(self, vid: int, address: str, own_netns: bool = False) -> None:
        """A VLAN on the upstream side of the wire with a gateway address on it; ``own_netns`` moves it
        to a router of its own (two VLANs carrying one subnet can't share one routing table)."""
        up = self.upstream
        name = f"upr0.{vid}"
        sh("ip", "-n", up, "link", "add", "link", "upr0", "name", name, "type", "vlan", "id", str(vid))
        if own_netns:
            up = self.add_netns(f"up{vid}")
            sh("ip", "-n", self.upstream, "link", "set", name, "netns", up)
        sh("ip", "-n", up, "link", "set", name, "up")
        sh("ip", "-n", up, "addr", "add", address, "dev", name, "nodad")

    def link_in(self, netns: str, name: str) -> None:
        """A spare veth pair inside a namespace, to serve as an in-container master."""
        n = os.path.basename(netns)
        sh("ip", "-n", n, "link", "add", name, "type", "veth", "peer", "name", f"{name}p")
        sh("ip", "-n", n, "link", "set", name, "up")


def lease_files(data_dir: Path, network: str) -> dict[str, str]:
    d = data_dir / network
    if not d.exists():
        return {}
    return {p.name: p.read_bytes().decode() for p in d.iterdir() if p.name[0].isdigit() or ":" in p.name}


def owned_parents(state_dir: Path) -> dict[str, Any]:
    """The parents recorded in ``state_dir``'s parents.json ({} when there is no record)."""
    path = state_dir / "parents.json"
    return json.loads(path.read_text())["parents"] if path.exists() else {}


def kernel_has_parents() -> bool:
    """Can this kernel make a dummy and an 802.1Q VLAN on it? (probed in a throwaway namespace)"""
    ns = f"probe{os.getpid()}"
    if sh("ip", "netns", "add", ns, check=False).returncode != 0:
        return False
    try:
        dummy = sh("ip", "-n", ns, "link", "add", "d0", "type", "dummy", check=False).returncode == 0
        vlan = (
            dummy
            and sh(
                "ip", "-n", ns, "link", "add", "link", "d0", "name", "d0.5", "type", "vlan", "id", "5", check=False
            ).returncode
            == 0
        )
        return bool(vlan)
    finally:
        sh("ip", "netns", "del", ns, check=False)
