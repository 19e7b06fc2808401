"""A real runtime: podman (Debian's 4.3, CNI backend) runs containers on a macvlan network served by
our plugins from the fast layout, first in cni_plugin_dirs.

podman runs in this machine's own network namespace, so the test gives it a parent of its own: a veth
pair whose far end sits in a private namespace holding the gateway. Nothing else of the host is used;
podman's configuration and storage live in a temporary directory (tests/support/podman.py).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.images import busybox_layer
from tests.support.lab import sh
from tests.support.layouts import dist_executable, needed
from tests.support.podman import PrivatePodman

pytestmark = pytest.mark.podman


class Podman(PrivatePodman):
    def __init__(self, workdir: Path, plugin_dir: Path) -> None:
        (workdir / "net.d").mkdir()
        super().__init__(
            workdir,
            network='network_backend = "cni"\n'
            f'cni_plugin_dirs = ["{plugin_dir}", "/usr/lib/cni"]\n'
            f'network_config_dir = "{workdir}/net.d"\n',
        )
        self.tag = uuid.uuid4().hex[:6]
        self.veth, self.peer, self.upns = f"cmtp{self.tag}", f"cmtq{self.tag}", f"cmtpodup{self.tag}"
        self.net = f"cmtnet{self.tag}"
        self.leases = workdir / "leases"

    def setup(self) -> None:
        (self.w / "rootfs.tar").write_bytes(busybox_layer())
        self("import", str(self.w / "rootfs.tar"), "localhost/cmt-bb")
        sh("ip", "netns", "add", self.upns)
        sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", self.peer, "netns", self.upns)
        sh("ip", "link", "set", self.veth, "up")
        sh("ip", "-n", self.upns, "link", "set", self.peer, "up")
        sh("ip", "-n", self.upns, "addr", "add", "10.88.0.1/24", "dev", self.peer)
        conflist = {
            "cniVersion": "1.0.0",
            "name": self.net,
            "plugins": [
                {
                    "type": "macvlan",
                    "master": self.veth,
                    "stateDir": str(self.w / "parents"),
                    "capabilities": {"ips": True},
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": "10.88.0.0/24", "gateway": "10.88.0.1"}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.leases),
                    },
                }
            ],
        }
        (self.w / "net.d" / f"{self.net}.conflist").write_text(json.dumps(conflist))

    def cleanup(self) -> None:
        self("rm", "-af", "-t", "0", check=False)
        sh("ip", "netns", "del", self.upns, check=False)
        sh("ip", "link", "del", self.veth, check=False)
        for cache in Path("/var/lib/cni/results").glob(f"{self.net}-*"):
            cache.unlink()
        super().cleanup()

    def lease_files(self) -> dict[str, str]:
        d = self.leases / self.net
        return {p.name: p.read_bytes().decode() for p in d.iterdir() if p.name[0].isdigit()} if d.exists() else {}

    def address(self, name: str) -> str:
        out = self("exec", name, "ip", "-4", "-o", "addr", "show", "eth0").stdout
        return out.split("inet ", 1)[1].split("/", 1)[0]


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    if os.geteuid() != 0:
        pytest.skip("podman's CNI backend needs root")
    needed("/bin/busybox", "run `tools/packages.sh install test-host` (busybox-static)")
    pm = Podman(tmp_path, dist_executable("fast/macvlan").parent)
    try:
        pm.setup()
        yield pm
    finally:
        pm.cleanup()


def test_podman_runs_a_container_on_our_macvlan_network(podman: Podman) -> None:
    podman("run", "-d", "--name", "c1", "--network", podman.net, "localhost/cmt-bb", "sleep", "1000")
    ip = podman.address("c1")
    assert ip == "10.88.0.2"
    cid = podman("inspect", "-f", "{{.Id}}", "c1").stdout.strip()
    assert podman.lease_files() == {"10.88.0.2": f"{cid}\r\neth0"}
    podman("exec", "c1", "ping", "-c", "1", "-W", "2", "10.88.0.1")

    podman("network", "reload", "c1")
    assert podman.address("c1") == ip, "a reload keeps the address"
    assert list(podman.lease_files()) == ["10.88.0.2"]

    podman("stop", "-t", "0", "c1")
    assert podman.lease_files() == {}, "stop releases the lease"
    podman("start", "c1")
    assert podman.address("c1") == "10.88.0.3", "start leases again (round robin)"
    podman("exec", "c1", "ping", "-c", "1", "-W", "2", "10.88.0.1")

    podman("rm", "-f", "-t", "0", "c1")
    assert podman.lease_files() == {}, "rm releases the lease"
    assert not [line for line in sh("ip", "-br", "link").stdout.splitlines() if line.startswith("eth0@")]


def test_podman_static_ip_and_mac(podman: Podman) -> None:
    out = podman(
        "run",
        "--rm",
        "--network",
        podman.net,
        "--ip",
        "10.88.0.50",
        "--mac-address",
        "c2:11:22:33:44:55",
        "localhost/cmt-bb",
        "sh",
        "-c",
        "ip -o link show eth0; ip -4 -o addr show eth0",
    ).stdout
    assert "c2:11:22:33:44:55" in out and "10.88.0.50/24" in out
    assert podman.lease_files() == {}
