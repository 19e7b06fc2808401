"""podman for tests, with a configuration and a storage of its own in a temporary directory (never
the machine's /var/lib/containers), and its quirks on this machine kind: runc rather than crun,
lowered rlimits, cgroupfs (see shared/reference/podman-cni.md). What it makes outside its directory
(/var/lib/cni, /var/lib/containers, /run/runc) is removed afterwards if it was not there before.
Used by test_podman.py (podman's CNI backend on our plugins) and test_release.py (our image, run as
the DaemonSet runs it: run_args)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.support.layouts import needed

GLOBAL_DIRS = (Path("/var/lib/cni"), Path("/var/lib/containers"), Path("/run/runc"))


class PrivatePodman:
    def __init__(self, workdir: Path, network: str = "", driver: str = "overlay") -> None:
        """``network``: extra lines for containers.conf's [network] table."""
        for tool in ("podman", "runc"):
            needed(tool, "run `tools/packages.sh install test-host` (podman, runc)")
        self.w = workdir
        for d in ("tmp", "storage", "run"):
            (workdir / d).mkdir(parents=True, exist_ok=True)
        (workdir / "containers.conf").write_text(
            "[containers]\n"
            'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n'
            f'tmp_dir = "{workdir}/tmp"\n'
            "[network]\n" + network
        )
        (workdir / "storage.conf").write_text(
            f'[storage]\ndriver = "{driver}"\ngraphroot = "{workdir}/storage"\nrunroot = "{workdir}/run"\n'
        )
        self.global_dirs = [p for p in GLOBAL_DIRS if not p.exists()]
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(workdir / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(workdir / "storage.conf"),
            "TMPDIR": str(workdir / "tmp"),
        }

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def cleanup(self) -> None:
        """Every container and image gone, the storage reset, and podman's directories outside ours
        removed if it made them."""
        self("rm", "-af", "-t", "0", check=False)
        self("system", "reset", "-f", check=False)
        for d in self.global_dirs:
            shutil.rmtree(d, ignore_errors=True)


# What run_args translates; any other field of the manifest fails the test, which must then learn it.
POD_FIELDS = {
    "hostNetwork", "hostPID", "priorityClassName", "tolerations", "terminationGracePeriodSeconds",
    "initContainers", "containers", "volumes", "automountServiceAccountToken",
}  # fmt: skip
CONTAINER_FIELDS = {"name", "image", "imagePullPolicy", "command", "securityContext", "volumeMounts", "resources"}
SECURITY_FIELDS = {
    "privileged", "readOnlyRootFilesystem", "allowPrivilegeEscalation", "capabilities", "seccompProfile",
}  # fmt: skip


def run_args(pod: dict[str, Any], container: dict[str, Any], host: Path) -> list[str]:
    """`podman run` arguments for a container of a pod spec, as a kubelet would run it: its command
    (the image has no entrypoint), hostPath volumes bind-mounted from the same paths under ``host``
    (a directory made for DirectoryOrCreate), the host's network and PID namespaces if the pod asks,
    and exactly the privileges its securityContext asks for (scheduling and resources don't apply)."""
    unknown = (set(pod) - POD_FIELDS) | (set(container) - CONTAINER_FIELDS)
    security = container.get("securityContext", {})
    unknown |= set(security) - SECURITY_FIELDS
    unknown |= set(security.get("capabilities", {})) - {"add", "drop"}
    assert not unknown, f"fields run_args does not translate: {sorted(unknown)}"
    args = ["--network", "host"] if pod.get("hostNetwork") else []
    args += ["--pid", "host"] if pod.get("hostPID") else []
    if security.get("privileged"):
        args.append("--privileged")
    if security.get("readOnlyRootFilesystem"):
        args += ["--read-only", "--read-only-tmpfs=false"]  # Kubernetes adds no tmpfs
    if security.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    # seccompProfile RuntimeDefault: podman's default profile is its runtime's default; no other type is used
    assert security.get("seccompProfile", {"type": "RuntimeDefault"}) == {"type": "RuntimeDefault"}, security
    # automountServiceAccountToken: podman mounts no token either
    for cap in security.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", cap.lower()]
    for cap in security.get("capabilities", {}).get("add", []):
        args += ["--cap-add", cap]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        assert set(volume) == {"name", "hostPath"} and set(mount) <= {"name", "mountPath", "readOnly"}, mount
        source = host / volume["hostPath"]["path"].lstrip("/")
        if volume["hostPath"].get("type") == "DirectoryOrCreate":
            source.mkdir(mode=0o755, parents=True, exist_ok=True)
        args += ["-v", f"{source}:{mount['mountPath']}" + (":ro" if mount.get("readOnly") else "")]
    return [*args, "--entrypoint", json.dumps(container["command"]), container["image"]]
