"""A one-node Kubernetes cluster of the test's own, run as plain processes the way upstream's
hack/local-up-cluster.sh runs one: etcd, kube-apiserver (TLS, RBAC and Node authorization, service-account
keys) and a kubelet registered as node ``node1`` on a private containerd (Debian's 1.6, as the CRI tests run
it), with Multus's thin plugin as the cluster's CNI. Everything is built by tools/go-programs.sh (make
kube-programs) at the versions in tools/versions.env.

Where things run (nothing touches the machine's own interfaces, routes, sysctls, /etc/cni or /opt/cni):

  <lab>-up  upr0 10.77.0.1/24 (the upstream network and its gateway)
     ||  veth
  <lab>-node  upl0 (the pods' macvlan master); lo also carries NODE_IP, the node's address
              etcd, kube-apiserver (NODE_IP:6443), containerd, kubelet, and the pods' sandboxes

containerd and the kubelet share one private mount namespace (tests/support/mountns.py) in which the node's
fixed paths are the test's directories: /opt/cni/bin (the CNI bin dir, which the DaemonSet's hostPath
installs into), /run/cni-macvlan (the zygote's socket), /var/lib/cni (libcni's and Multus's caches),
/run/containerd, /var/log/pods and /var/log/containers; and the kernel tunables the kubelet would otherwise
set machine-wide (vm.overcommit_memory, kernel.panic, ...) are shown as files holding the values it wants.
Its cgroups (cgroupfs, version 1) are all under CGROUP_ROOT-<tag> in every hierarchy; ``close`` removes them.

The test does what a scheduler and a controller-manager would (there are none): pods carry ``nodeName``,
the namespaces' ``default`` service account is created, a DaemonSet's pod is made from its template.
``Api`` is a minimal client of the API (http.client + ssl, the cluster's CA and an admin client cert) whose
sockets are made inside the node's network namespace.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.support.containerd import IMAGE, config_toml, processes_of, reap
from tests.support.images import busybox_layer, oci_archive
from tests.support.lab import Lab, sh
from tests.support.layouts import ROOT, needed, pinned
from tests.support.mountns import private_view
from tests.support.pki import CA

NODE = "node1"
NODE_IP = "10.79.0.1"
SERVICE_RANGE = "10.96.0.0/24"
CGROUP_ROOT = "cmt-kube"
SOCKET_DIR = "/run/multus/daemon"  # Multus's thick daemon's (in the node's view)
GO = ROOT / "build" / "go"
HOW = "run `make kube-programs` (tools/go-programs.sh)"
T = TypeVar("T")

# What the kubelet sets at start when they differ (pkg/kubelet/cm, setupKernelTunables): machine-wide, so its
# view shows them as files holding these values and it leaves the real ones alone.
KUBELET_TUNABLES = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}


def program(name: str, version_key: str, binary: str) -> Path:
    return needed(GO / f"{name}-{pinned(version_key)}" / "bin" / binary, HOW)


def programs() -> dict[str, Path]:
    """The cluster's executables (a skip, or under CNI_REQUIRE_ALL a failure, when one is missing)."""
    return {
        "etcd": program("etcd", "ETCD", "etcd"),
        "kube-apiserver": program("kubernetes", "KUBERNETES", "kube-apiserver"),
        "kubelet": program("kubernetes", "KUBERNETES", "kubelet"),
        "crictl": program("crictl", "CRICTL", "crictl"),
        "multus": program("multus", "MULTUS", "multus"),
        "multus-daemon": program("multus", "MULTUS", "multus-daemon"),
        "multus-shim": program("multus", "MULTUS", "multus-shim"),
    }


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    """``probe()`` until it returns something truthy (returned), for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# ---- certificates (openssl) ----


class Certs(CA):
    """A CA and the certificates the cluster's parts present, and the service-account key pair."""

    def __init__(self, d: Path) -> None:
        super().__init__(d, "ca")
        self.ca = self.cert
        self.key_pair("sa")

    def issue_for(self, name: str, cn: str, org: str = "", sans: tuple[str, ...] = ()) -> tuple[Path, Path]:
        """A key and a certificate signed by the CA for ``cn`` (in group ``org``); server certs name ``sans``."""
        ext = ["basicConstraints=CA:FALSE", "keyUsage=digitalSignature,keyEncipherment"]
        ext.append("extendedKeyUsage=" + ("serverAuth,clientAuth" if sans else "clientAuth"))
        if sans:
            ext.append("subjectAltName=" + ",".join(sans))
        return self.issue(name, (f"/O={org}" if org else "") + f"/CN={cn}", ext)

    def kubeconfig(self, path: Path, user: str, cert: Path, key: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "cmt", "cluster": {"server": f"https://{NODE_IP}:6443", "certificate-authority": str(self.ca)}}
            ],
            "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
            "contexts": [{"name": "cmt", "context": {"cluster": "cmt", "user": user}}],
            "current-context": "cmt",
        }
        path.write_text(json.dumps(config, indent=1))
        return path


# ---- the API ----

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def connect_in(netns: str, address: tuple[str, int], timeout: float) -> socket.socket:
    """A TCP connection to ``address`` made in the network namespace at path ``netns`` (by a thread of its
    own that enters it: the socket stays that namespace's, the process stays where it is)."""
    made: list[socket.socket | BaseException] = []

    def enter_and_connect() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {netns}")
            finally:
                os.close(fd)
            made.append(socket.create_connection(address, timeout=timeout))
        except BaseException as e:
            made.append(e)

    thread = threading.Thread(target=enter_and_connect)
    thread.start()
    thread.join(timeout + 5)
    if not made:
        raise TimeoutError(f"connecting to {address} in {netns}")
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


class Api:
    """The API as the admin (O=system:masters) sees it; JSON in, JSON out, ApiError for a status >= 400."""

    def __init__(self, netns: str, ca: Path, cert: Path, key: Path) -> None:
        self.netns = netns
        self.context = ssl.create_default_context(cafile=str(ca))
        self.context.load_cert_chain(str(cert), str(key))

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        sock = connect_in(self.netns, (NODE_IP, 6443), 10)
        conn = http.client.HTTPSConnection(NODE_IP, 6443, timeout=30, context=self.context)
        conn.sock = self.context.wrap_socket(sock, server_hostname=NODE_IP)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = content_type
            conn.request(method, path, body=data, headers=headers)
            reply = conn.getresponse()
            raw = reply.read()
        finally:
            conn.close()
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode(errors="replace")
        if reply.status >= 400:
            raise ApiError(reply.status, decoded)
        return decoded

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def create(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, "application/merge-patch+json")

    def delete(self, path: str, grace: int | None = None) -> Any:
        body = None if grace is None else {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace}
        try:
            return self.request("DELETE", path, body)
        except ApiError as e:
            if e.status != 404:
                raise
            return None

    def exists(self, path: str) -> bool:
        try:
            self.get(path)
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        return True

    def apply(self, manifest: dict[str, Any]) -> Any:
        """Create ``manifest`` at its kind's collection (the few kinds the tests use)."""
        return self.create(collection(manifest), manifest)


KINDS = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Pod": ("/api/v1", "pods", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "DaemonSet": ("/apis/apps/v1", "daemonsets", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "CustomResourceDefinition": ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    "NetworkAttachmentDefinition": ("/apis/k8s.cni.cncf.io/v1", "network-attachment-definitions", True),
}


def collection(manifest: dict[str, Any]) -> str:
    prefix, plural, namespaced = KINDS[manifest["kind"]]
    if namespaced:
        return f"{prefix}/namespaces/{manifest['metadata'].get('namespace', 'default')}/{plural}"
    return f"{prefix}/{plural}"


def path_of(kind: str, name: str, namespace: str = "default") -> str:
    return collection({"kind": kind, "metadata": {"namespace": namespace}}) + f"/{name}"


NAD_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "network-attachment-definitions.k8s.cni.cncf.io"},
    "spec": {
        "group": "k8s.cni.cncf.io",
        "scope": "Namespaced",
        "names": {
            "plural": "network-attachment-definitions",
            "singular": "network-attachment-definition",
            "kind": "NetworkAttachmentDefinition",
            "shortNames": ["net-attach-def"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"config": {"type": "string"}}},
                        },
                    }
                },
            }
        ],
    },
}

# what Multus's own deployment grants it (deployments/multus-daemonset.yml), bound to the user of its cert
MULTUS_RBAC = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "multus"},
        "rules": [
            {"apiGroups": ["k8s.cni.cncf.io"], "resources": ["*"], "verbs": ["*"]},
            {"apiGroups": [""], "resources": ["pods", "pods/status"], "verbs": ["get", "list", "update", "watch"]},
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "multus"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "multus"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "multus"}],
    },
]


# ---- processes ----


class Proc:
    """A daemon of the cluster's, its output in ``log``; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, start_new_session=True
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


def cgroup_hierarchies(unified: bool = False) -> list[Path]:
    """The cgroup version 1 hierarchies the kubelet and runc use (the named systemd one too: the kubelet checks
    its cgroup root there), and with ``unified`` the hybrid cgroup2 one, where the kubelet makes its tree too
    (nothing to prepare there, but to remove)."""
    root = Path("/sys/fs/cgroup")
    return [p for p in sorted(root.iterdir()) if p.is_dir() and (unified or p.name != "unified")]


class Cluster:
    """The cluster, started (``close`` in a finally: everything it started and made is gone after it)."""

    def __init__(self, workdir: Path, lab: Lab, multus: str = "thin") -> None:
        assert multus in ("thin", "thick"), multus
        self.multus = multus
        self.dir = workdir
        self.lab = lab
        self.netns = f"/run/netns/{lab.node}"
        self.tag = uuid.uuid4().hex[:8]
        self.cgroup_root = f"/{CGROUP_ROOT}-{self.tag}"
        self.bins = programs()
        for tool in ("openssl", "containerd", "containerd-shim-runc-v2", "runc", "ctr", "nsenter", "unshare"):
            needed(tool, "run `tools/packages.sh install test-host` (containerd, runc, openssl, util-linux)")
        self.procs: dict[str, Proc] = {}
        self.holder: subprocess.Popen[bytes] | None = None
        self.env = {"PATH": f"{self.bins['crictl'].parent}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(workdir)}
        # the node's paths, in the kubelet's and containerd's view
        self.cni_bin = workdir / "opt-cni-bin"  # /opt/cni/bin
        self.cni_conf = workdir / "cni-net.d"  # containerd's CNI conf dir (named in its config)
        self.zygote_dir = workdir / "run-cni-macvlan"  # /run/cni-macvlan
        self.cni_cache = workdir / "var-lib-cni"  # /var/lib/cni
        self.sock = workdir / "containerd" / "containerd.sock"
        for d in (self.cni_bin, self.cni_conf, self.zygote_dir, self.cni_cache):
            d.mkdir(parents=True)
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    # ---- bring-up ----

    def _start(self) -> None:
        d = self.dir
        sh("ip", "-n", self.lab.node, "addr", "add", f"{NODE_IP}/32", "dev", "lo")
        self.certs = certs = Certs(d / "pki")
        sans = (f"IP:{NODE_IP}", "IP:127.0.0.1", "IP:10.96.0.1", "DNS:kubernetes", "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc", "DNS:localhost")  # fmt: skip
        apiserver_cert = certs.issue_for("apiserver", "kube-apiserver", sans=sans)
        admin = certs.issue_for("admin", "admin", org="system:masters")
        kubelet_client = certs.issue_for(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", org="system:masters"
        )
        node = certs.issue_for("node", f"system:node:{NODE}", org="system:nodes")
        kubelet_serving = certs.issue_for("kubelet", NODE, sans=(f"IP:{NODE_IP}", f"DNS:{NODE}"))
        multus = certs.issue_for("multus", "multus")
        self.kubelet_kubeconfig = certs.kubeconfig(d / "kubelet.kubeconfig", "node", *node)
        self.multus_kubeconfig = certs.kubeconfig(d / "multus.kubeconfig", "multus", *multus)

        in_node = ["nsenter", f"--net={self.netns}"]
        (d / "etcd").mkdir()
        self.procs["etcd"] = Proc(
            "etcd",
            [*in_node, str(self.bins["etcd"]), "--data-dir", str(d / "etcd" / "data"), "--listen-client-urls",
             "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379", "--listen-peer-urls",
             "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
             "--initial-cluster", "default=http://127.0.0.1:2380", "--log-level", "warn", "--unsafe-no-fsync"],
            d / "etcd.log",
            self.env,
        )  # fmt: skip
        self.procs["kube-apiserver"] = Proc(
            "kube-apiserver",
            [*in_node, str(self.bins["kube-apiserver"]),
             "--etcd-servers=http://127.0.0.1:2379",
             f"--advertise-address={NODE_IP}", "--bind-address=0.0.0.0", "--secure-port=6443",
             f"--service-cluster-ip-range={SERVICE_RANGE}",
             f"--tls-cert-file={apiserver_cert[0]}", f"--tls-private-key-file={apiserver_cert[1]}",
             f"--client-ca-file={certs.ca}",
             f"--kubelet-client-certificate={kubelet_client[0]}", f"--kubelet-client-key={kubelet_client[1]}",
             f"--kubelet-certificate-authority={certs.ca}",
             "--service-account-issuer=https://kubernetes.default.svc",
             f"--service-account-key-file={certs.dir / 'sa.pub'}",
             f"--service-account-signing-key-file={certs.dir / 'sa.key'}",
             "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
             "--allow-privileged=true", "--anonymous-auth=false",
             f"--cert-dir={d / 'apiserver-certs'}", "--v=1"],
            d / "kube-apiserver.log",
            self.env,
        )  # fmt: skip
        self.api = Api(self.netns, certs.ca, *admin)
        wait_for("the API to be ready", self._api_ready, 90, 0.5)
        self.api.apply(NAD_CRD)
        for manifest in MULTUS_RBAC:
            self.api.apply(manifest)
        for namespace in ("default", "kube-system"):  # the controller-manager's service-account controller
            self.api.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                            "metadata": {"name": "default", "namespace": namespace}})  # fmt: skip
        wait_for("the NAD CRD to be served", lambda: self._served("/apis/k8s.cni.cncf.io/v1"), 30)

        # the node: a mount namespace for containerd and the kubelet, its paths the test's
        tunables = d / "tunables"
        tunables.mkdir()
        shown: dict[str, Path] = {
            "/opt/cni/bin": self.cni_bin,
            "/run/cni-macvlan": self.zygote_dir,
            "/var/lib/cni": self.cni_cache,
            "/run/containerd": d / "run-containerd",
            "/var/log/pods": d / "var-log-pods",
            "/var/log/containers": d / "var-log-containers",
        }
        if self.multus == "thick":  # the daemon's socket, and the service account token it finds in a pod
            shown["/run/multus"] = d / "run-multus"
            shown["/run/secrets/kubernetes.io/serviceaccount"] = self._service_account("multus")
        for name, value in KUBELET_TUNABLES.items():
            f = tunables / name.replace("/", ".")
            f.write_text(value + "\n")
            shown[f"/proc/sys/{name}"] = f
        for source in shown.values():
            if source.parent != tunables:
                source.mkdir(exist_ok=True)
        (d / "views").mkdir()
        self.holder = subprocess.Popen(
            [*private_view(shown, d / "views", netns=self.netns), "sleep", "1000000"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for("the node's mount namespace", self._view_ready, 10, 0.05)
        self.make_cgroups()
        self.write_cni_conf({})
        (d / "containerd").mkdir()
        (d / "containerd" / "config.toml").write_text(
            config_toml(d / "containerd", Path("/opt/cni/bin"), self.cni_conf)
        )
        self.start_containerd()
        if self.multus == "thick":
            self.start_multus_daemon()
        self.import_image(IMAGE, busybox_layer())
        self.kubelet_config = d / "kubelet.yaml"
        self.kubelet_config.write_text(json.dumps(self._kubelet_yaml(kubelet_serving), indent=1))
        self.start_kubelet()

    def _api_ready(self) -> bool:
        for name in ("etcd", "kube-apiserver"):
            if not self.procs[name].alive():
                raise AssertionError(f"{name} exited:\n{self.procs[name].tail()}")
        try:
            return self.api.request("GET", "/readyz") is not None
        except (OSError, ApiError, http.client.HTTPException):
            return False

    def _served(self, path: str) -> bool:
        try:
            return bool(self.api.get(path))
        except ApiError:
            return False

    def _view_ready(self) -> bool:
        assert self.holder is not None
        if self.holder.poll() is not None:
            raise AssertionError(f"the node's mount namespace could not be made ({self.holder.returncode})")
        try:
            return os.readlink(f"/proc/{self.holder.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt") and (
                Path(f"/proc/{self.holder.pid}/comm").read_text().strip() == "sleep"
            )
        except OSError:
            return False

    def in_view(self, *argv: str) -> list[str]:
        """``argv`` run in the node's mount and network namespaces."""
        assert self.holder is not None
        return ["nsenter", f"--target={self.holder.pid}", "--mount", "--net", *argv]

    def make_cgroups(self) -> None:
        """The kubelet's cgroup root in every hierarchy (cpuset's with its parent's CPUs and memory nodes)."""
        for h in cgroup_hierarchies():
            d = h / self.cgroup_root.lstrip("/")
            d.mkdir(exist_ok=True)
            if h.name == "cpuset" or (h / "cpuset.cpus").exists():
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (d / f).write_text((h / f).read_text())

    def cgroups(self) -> list[Path]:
        found = []
        for h in cgroup_hierarchies(unified=True):
            base = h / self.cgroup_root.lstrip("/")
            if base.is_dir():
                found += [Path(r) for r, _, _ in os.walk(base, topdown=False)]
        return found

    def _service_account(self, name: str) -> Path:
        """What a pod of service account kube-system/``name`` (bound to the ClusterRole ``name``) finds in
        /run/secrets/kubernetes.io/serviceaccount: a token (from the TokenRequest API), the CA, its namespace."""
        self.api.apply(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": "kube-system"}}
        )
        self.api.apply({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{name}-service-account"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}],
        })  # fmt: skip
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 7200},
        }
        token = self.api.create(f"/api/v1/namespaces/kube-system/serviceaccounts/{name}/token", request)
        d = self.dir / f"sa-{name}"
        d.mkdir(mode=0o700)
        (d / "token").write_text(token["status"]["token"])
        shutil.copy(self.certs.ca, d / "ca.crt")
        (d / "namespace").write_text("kube-system")
        return d

    def start_multus_daemon(self) -> None:
        """Multus's thick daemon, as its DaemonSet runs it but without the chroot (it runs in the node's view):
        the shim (the node's CNI) hands each request to it over /run/multus/multus.sock."""
        config = {
            "cniVersion": "1.0.0",
            "logLevel": "verbose",
            "logToStderr": True,  # into multus-daemon.log
            "socketDir": SOCKET_DIR,  # removed and made anew at its start: not the mount point itself
            "daemonSocketDir": SOCKET_DIR,  # what the conf it writes tells the shim
            # it writes 00-multus.conf (the shim's) beside the default network's conf, which it names as
            # clusterNetwork ("auto": a daemon given a conf of ours exits at once, v4.3.0's main waits on
            # nothing else)
            "multusConfigFile": "auto",
            "cniConfigDir": str(self.cni_conf),
            "multusAutoconfigDir": str(self.cni_conf),
            "binDir": "/opt/cni/bin",
            "cniDir": "/var/lib/cni/multus",
        }
        path = self.dir / "multus-daemon.json"
        path.write_text(json.dumps(config, indent=1))
        env = {
            **self.env,
            "MULTUS_NODE_NAME": NODE,
            "KUBERNETES_SERVICE_HOST": NODE_IP,
            "KUBERNETES_SERVICE_PORT": "6443",
        }
        self.procs["multus-daemon"] = Proc(
            "multus-daemon",
            self.in_view(str(self.bins["multus-daemon"]), f"-config={path}"),
            self.dir / "multus-daemon.log",
            env,
        )
        socket_path = self.dir / "run-multus" / Path(SOCKET_DIR).name / "multus.sock"
        conf = self.cni_conf / "00-multus.conf"
        wait_for("multus-daemon's socket and conf", lambda: self._alive("multus-daemon") and socket_path.exists()
                 and conf.exists(), 30)  # fmt: skip

    def write_cni_conf(self, extra: dict[str, Any]) -> None:
        """The node's CNI config: Multus (thin; or thick: its shim) with the default network, a bridge with our
        host-local, in a conflist outside the conf dir (so that containerd can't take it directly)."""
        default = {
            "cniVersion": "1.0.0",
            "name": "default",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": "10.244.0.0/24"}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.dir / "default-leases"),
                    },
                },
                {"type": "loopback"},
            ],
        }
        if self.multus == "thick":  # in the conf dir, where the daemon finds it
            (self.cni_conf / "10-default.conflist").write_text(json.dumps(default, indent=1))
            return
        (self.dir / "default.conflist").write_text(json.dumps(default, indent=1))
        multus = {
            "cniVersion": "1.0.0",
            "name": "multus-cni-network",
            "type": "multus",
            "kubeconfig": str(self.multus_kubeconfig),
            "clusterNetwork": str(self.dir / "default.conflist"),
            "binDir": "/opt/cni/bin",
            "cniDir": "/var/lib/cni/multus",
            "logFile": str(self.dir / "multus.log"),
            "logLevel": "verbose",
            **extra,
        }
        (self.cni_conf / "00-multus.conf").write_text(json.dumps(multus, indent=1))

    def start_containerd(self) -> None:
        self.procs["containerd"] = Proc(
            "containerd",
            self.in_view("containerd", "--config", str(self.dir / "containerd" / "config.toml")),
            self.dir / "containerd.log",
            self.env,
        )
        wait_for(
            "containerd", lambda: self._alive("containerd") and self.ctr("version", check=False).returncode == 0, 30
        )

    def _alive(self, name: str) -> bool:
        if not self.procs[name].alive():
            raise AssertionError(f"{name} exited:\n{self.procs[name].tail()}")
        return True

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["ctr", "--address", str(self.sock), "--namespace", "k8s.io", *args],
                              capture_output=True, text=True, timeout=120, env=self.env, check=False)  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def crictl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bins["crictl"]), "--runtime-endpoint", f"unix://{self.sock}", "--timeout", "30s", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=90, env=self.env, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"crictl {' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def import_image(self, name: str, layer: bytes) -> None:
        archive = self.dir / "busybox.oci.tar"
        oci_archive(archive, name, layer)
        self.import_archive(archive)

    def import_archive(self, archive: Path) -> None:
        self.ctr("images", "import", str(archive))

    def _kubelet_yaml(self, serving: tuple[Path, Path]) -> dict[str, Any]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "containerRuntimeEndpoint": f"unix://{self.sock}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.cgroup_root,
            "failCgroupV1": False,
            "failSwapOn": False,
            "address": NODE_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "tlsCertFile": str(serving[0]),
            "tlsPrivateKeyFile": str(serving[1]),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.certs.ca)},
            },
            "authorization": {"mode": "Webhook"},
            "podLogsDir": "/var/log/pods",
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "makeIPTablesUtilChains": False,
            "resolvConf": "",
            "syncFrequency": "5s",
            "fileCheckFrequency": "5s",
            "nodeStatusUpdateFrequency": "5s",
            "runtimeRequestTimeout": "2m",
            "serializeImagePulls": False,
            "maxPods": 60,
        }

    def start_kubelet(self) -> None:
        self.procs["kubelet"] = Proc(
            "kubelet",
            self.in_view(str(self.bins["kubelet"]), f"--config={self.kubelet_config}",
                         f"--kubeconfig={self.kubelet_kubeconfig}", f"--hostname-override={NODE}",
                         f"--node-ip={NODE_IP}", f"--root-dir={self.dir / 'kubelet'}",
                         f"--cert-dir={self.dir / 'kubelet-pki'}", "--v=2"),
            self.dir / "kubelet.log",
            self.env,
        )  # fmt: skip
        wait_for("node1 to be Ready", self.node_ready, 120, 0.5)

    def node_ready(self) -> bool:
        self._alive("kubelet")
        try:
            node = self.api.get(f"/api/v1/nodes/{NODE}")
        except ApiError:
            return False
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))

    def restart_kubelet(self) -> None:
        self.procs.pop("kubelet").stop()
        self.start_kubelet()

    def ipam_kubeconfig(self) -> Path:
        """A kubeconfig for our host-local's kubernetes store, as an operator sets it up: deploy/kubernetes-ipam.yaml
        applied (the IPLease CRD, the plugin's ClusterRoles and their bindings), the bindings' subject a user of
        a client certificate here instead of the manifest's service account."""
        path = self.dir / "cni-ipam.kubeconfig"
        if path.exists():
            return path
        for doc in yaml.safe_load_all((ROOT / "deploy" / "kubernetes-ipam.yaml").read_text()):
            if not doc or doc["kind"] == "ServiceAccount":
                continue
            if doc["kind"] in ("RoleBinding", "ClusterRoleBinding"):
                doc["subjects"] = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "cni-ipam"}]
            self.api.apply(doc)
        wait_for("the IPLease CRD to be served", lambda: self._served("/apis/cni-macvlan.io/v1"), 30)
        return self.certs.kubeconfig(path, "cni-ipam", *self.certs.issue_for("cni-ipam", "cni-ipam"))

    # ---- pods ----

    def pod(self, name: str, namespace: str = "default") -> Any:
        return self.api.get(path_of("Pod", name, namespace))

    def create_pod(self, manifest: dict[str, Any]) -> Any:
        """Create a pod bound to the node (what the scheduler would do)."""
        manifest["spec"]["nodeName"] = NODE
        return self.api.apply(manifest)

    def wait_running(self, name: str, namespace: str = "default", timeout: float = 90) -> Any:
        def running() -> Any:
            self._alive("kubelet")
            pod = self.pod(name, namespace)
            return (
                pod
                if pod["status"].get("phase") == "Running"
                and all(c.get("ready") for c in pod["status"].get("containerStatuses", [{}]))
                else None
            )

        try:
            return wait_for(f"pod {namespace}/{name} to run", running, timeout, 0.3)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{json.dumps(self.pod(name, namespace)['status'], indent=1)}\n"
                                 f"events: {self.events(name, namespace)}") from None  # fmt: skip

    def delete_pod(self, name: str, namespace: str = "default", timeout: float = 60) -> None:
        """Delete the pod and wait until the kubelet has torn it down (its CNI DEL done) and the API object is
        gone."""
        sandboxes = [s["id"] for s in self.ready(name, namespace)]
        self.api.delete(path_of("Pod", name, namespace), grace=0)
        wait_for(f"pod {namespace}/{name} to be gone", lambda: not self.api.exists(path_of("Pod", name, namespace)),
                 timeout, 0.3)  # fmt: skip
        # stopped; the kubelet removes stopped sandboxes later, in its garbage collection
        wait_for(f"the sandbox of {namespace}/{name} to be stopped", lambda: not self.ready(name, namespace), timeout)
        wait_for(f"the CNI DEL of {namespace}/{name}", lambda: not self.cached_results(*sandboxes), timeout)

    def cached_results(self, *sandboxes: str) -> list[Path]:
        """libcni's cached ADD results of these sandboxes (/var/lib/cni/results): removed when their DEL succeeded."""
        results = self.cni_cache / "results"
        return [p for p in results.iterdir() if any(s in p.name for s in sandboxes)] if results.is_dir() else []

    def events(self, name: str, namespace: str = "default") -> list[dict[str, Any]]:
        selector = f"involvedObject.name={name}"
        return list(self.api.get(f"/api/v1/namespaces/{namespace}/events?fieldSelector={selector}")["items"])

    def sandboxes(self, name: str | None = None, namespace: str = "default") -> list[dict[str, Any]]:
        args = ["pods", "-o", "json"] + (["--name", f"^{name}$", "--namespace", namespace] if name else [])
        return list(json.loads(self.crictl(*args).stdout)["items"])

    def ready(self, name: str | None = None, namespace: str = "default") -> list[dict[str, Any]]:
        """The pod's (or every) sandbox that is not stopped yet."""
        return [s for s in self.sandboxes(name, namespace) if s["state"] == "SANDBOX_READY"]

    def sandbox_pid(self, name: str, namespace: str = "default") -> int:
        ready = self.ready(name, namespace)
        assert len(ready) == 1, f"sandboxes of {namespace}/{name}: {ready}"
        info = json.loads(self.crictl("inspectp", ready[0]["id"]).stdout)
        return int(info["info"]["pid"])

    def pod_netns(self, name: str, namespace: str = "default") -> str:
        return f"/proc/{self.sandbox_pid(name, namespace)}/ns/net"

    # ---- the end ----

    def processes(self) -> list[int]:
        """What is left of ours: processes in our cgroups or naming our directory (shims, runc)."""
        return processes_of(self.cgroups(), str(self.dir))

    def close(self) -> list[str]:
        """Stop everything (pods first, so that their CNI DELs run), remove cgroups, the node's address and the
        mount namespace; what could not be cleaned, if anything."""
        left: list[str] = []
        if "kubelet" in self.procs and "containerd" in self.procs and self.procs["containerd"].alive():
            try:  # pods deleted through the API, torn down by the kubelet as it would on a node drain
                for pod in self.api.get("/api/v1/pods")["items"]:
                    meta = pod["metadata"]
                    self.api.delete(path_of("Pod", meta["name"], meta["namespace"]), grace=0)
                wait_for("the pods to be torn down", lambda: not self.ready(), 60, 0.5)
            except Exception as e:
                left.append(f"pods not torn down by the kubelet: {e}")
        if "kubelet" in self.procs:
            self.procs.pop("kubelet").stop()
        if "containerd" in self.procs and self.procs["containerd"].alive():
            for sandbox in self.sandboxes() if self.procs["containerd"].alive() else []:
                self.crictl("stopp", sandbox["id"], check=False)
                self.crictl("rmp", "-f", sandbox["id"], check=False)
        for name in ("multus-daemon", "containerd", "kube-apiserver", "etcd"):
            if name in self.procs:
                self.procs.pop(name).stop()
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait(10)
        left += reap(self.processes, self.cgroups, 15)
        sh("ip", "-n", self.lab.node, "addr", "del", f"{NODE_IP}/32", "dev", "lo", check=False)
        mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(self.dir) in line]
        left += [f"mount {m}" for m in mounts]
        return left


def remove_tree(d: Path) -> None:
    shutil.rmtree(d, ignore_errors=True)
