"""A small client of the CRI (Kubernetes' Container Runtime Interface, runtime v1), the gRPC API the kubelet
drives containerd with, on stubs compiled from containerd's own api.proto by tools/runtime-clients.sh.

Only the pod sandbox calls a kubelet makes around the network: RunPodSandbox (the CNI ADD), PodSandboxStatus
(the address it reports), StopPodSandbox (the DEL), RemovePodSandbox, ListPodSandbox, and Status (is the
network ready).
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.layouts import runtime_client


def stubs() -> tuple[Any, Any]:
    """The CRI's messages (api_pb2) and services (api_pb2_grpc)."""
    d = str(runtime_client("cri"))
    if d not in sys.path:
        sys.path.append(d)
    return importlib.import_module("cri_v1.api_pb2"), importlib.import_module("cri_v1.api_pb2_grpc")


@dataclass
class PodStatus:
    state: str  # SANDBOX_READY or SANDBOX_NOTREADY
    ips: list[str]  # the pod's addresses, as the CRI reports them to the kubelet
    pid: int  # its sandbox ("pause") process; 0 once stopped
    info: dict[str, Any]  # the verbose info containerd adds


class Cri:
    def __init__(self, socket: Path) -> None:
        import grpc

        self.api, services = stubs()
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.runtime = services.RuntimeServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def wait_network_ready(self, timeout: float = 30) -> None:
        """Until the CRI's runtime and network conditions are true (its CNI config is loaded)."""
        deadline = time.monotonic() + timeout
        while True:
            conditions = self.runtime.Status(self.api.StatusRequest(), timeout=5).status.conditions
            if all(c.status for c in conditions) and len(conditions) >= 2:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the CRI is not ready: {conditions}")
            time.sleep(0.1)

    def run_pod(self, name: str, cgroup_parent: str, namespace: str = "cmt") -> str:
        """RunPodSandbox as a kubelet makes it for a pod ``name``; its sandbox id. A failure raises grpc.RpcError."""
        api = self.api
        config = api.PodSandboxConfig(
            metadata=api.PodSandboxMetadata(name=name, namespace=namespace, uid=f"uid-{name}", attempt=0),
            hostname=name,
            linux=api.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent),
        )
        return str(self.runtime.RunPodSandbox(api.RunPodSandboxRequest(config=config), timeout=60).pod_sandbox_id)

    def status(self, pod: str) -> PodStatus:
        reply = self.runtime.PodSandboxStatus(
            self.api.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True), timeout=10
        )
        network = reply.status.network
        ips = [network.ip] if network.ip else []
        ips += [extra.ip for extra in network.additional_ips]
        info = json.loads(reply.info["info"]) if "info" in reply.info else {}
        state = self.api.PodSandboxState.Name(reply.status.state)
        return PodStatus(state, ips, int(info.get("pid", 0)), info)

    def stop(self, pod: str) -> None:
        self.runtime.StopPodSandbox(self.api.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)

    def remove(self, pod: str) -> None:
        self.runtime.RemovePodSandbox(self.api.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)

    def pods(self) -> list[str]:
        return [p.id for p in self.runtime.ListPodSandbox(self.api.ListPodSandboxRequest(), timeout=10).items]
