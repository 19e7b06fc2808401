"""A real Kubernetes API for the tests: etcd and kube-apiserver (built from the Go module proxy by
tools/go-programs.sh at the versions of tools/versions.env) on loopback ports, in a temporary directory.

TLS everywhere the API server serves (its certificate for 127.0.0.1 from a test CA), RBAC on, and
three users with kubeconfigs: ``admin`` (a client certificate in system:masters, for the tests' own
looks), ``node`` (a client certificate, its data inline as kubectl writes it, bound to the plugin's
ClusterRoles from deploy/kubernetes-ipam.yaml) and ``robot`` (a service account's bearer token from
the TokenRequest API, bound alike). Every process is started and stopped here, and killed whatever
happens (``close``).
"""

from __future__ import annotations

import base64
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from ipam.kube_client import Client, Refused, Unavailable, from_kubeconfig
from tests.support.etcd import free_ports
from tests.support.layouts import ROOT, needed, pinned
from tests.support.pki import CA

GO = ROOT / "build" / "go"
ETCD = GO / f"etcd-{pinned('ETCD')}" / "bin" / "etcd"
APISERVER = GO / f"kubernetes-{pinned('KUBERNETES')}" / "bin" / "kube-apiserver"
WHEREABOUTS = GO / f"whereabouts-{pinned('WHEREABOUTS')}" / "bin" / "whereabouts"
MANIFEST = ROOT / "deploy" / "kubernetes-ipam.yaml"
NAMESPACE = "kube-system"

PATHS = {
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Pod": "/api/v1/namespaces/{ns}/pods",
    "Namespace": "/api/v1/namespaces",
}


def binaries() -> None:
    how = "run `tools/go-programs.sh build/go etcd kubernetes` (make kube-programs)"
    needed(ETCD, how)
    needed(APISERVER, how)
    needed("openssl", "run `tools/packages.sh install test-host` (openssl)")


def make_pki(d: Path) -> dict[str, Path]:
    """A CA, the API server's certificate (127.0.0.1, localhost), client certificates for ``admin``
    (system:masters) and ``node``, another CA that signed nothing of this, a service-account key pair."""
    ca, other = CA(d, "ca", key="ec"), CA(d, "other-ca", key="ec")
    pki = {"ca": ca.cert, "other-ca": other.cert}
    for name, subject, ext in (
        ("server", "/CN=kube-apiserver", ["subjectAltName=IP:127.0.0.1,DNS:localhost", "extendedKeyUsage=serverAuth"]),
        ("admin", "/O=system:masters/CN=admin", ["extendedKeyUsage=clientAuth"]),
        ("node", "/CN=cni-ipam-node", ["extendedKeyUsage=clientAuth"]),
    ):
        pki[name], pki[f"{name}-key"] = ca.issue(name, subject, ext)
    pki["sa"], pki["sa-key"] = ca.key_pair("sa")
    return pki


def kubeconfig(server: str, user: dict[str, Any], ca: dict[str, Any]) -> str:
    """A kubeconfig as kubectl writes one (YAML, one cluster, one user, one context)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server, **ca}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "u"}}],
        "current-context": "test",
        "preferences": {},
    }
    return yaml.safe_dump(doc, default_flow_style=False)


class KubeAPI:
    def __init__(self, workdir: Path, pki: dict[str, Path]) -> None:
        self.workdir = workdir
        self.pki = pki
        self.etcd_port, self.peer_port, self.port = free_ports(3)
        self.etcd: subprocess.Popen[bytes] | None = None
        self.apiserver: subprocess.Popen[bytes] | None = None
        self.server = f"https://127.0.0.1:{self.port}"
        self.kubeconfigs: dict[str, Path] = {}
        try:
            self.start_etcd()
            self.start()
            self.write_kubeconfig(
                "admin", {"client-certificate": str(pki["admin"]), "client-key": str(pki["admin-key"])}
            )
            self.wait_ready()
            self.setup()
        except BaseException:
            self.close()
            raise

    def start_etcd(self) -> None:
        log = open(self.workdir / "etcd.log", "ab")  # noqa: SIM115 - kept by the process
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.etcd = subprocess.Popen(
            [str(ETCD), "--name=m0", f"--data-dir={self.workdir / 'etcd'}",
             f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
             f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
             f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}", f"--initial-cluster=m0={peer}",
             "--heartbeat-interval=10", "--election-timeout=100", "--unsafe-no-fsync"],
            stdout=log, stderr=log, cwd=self.workdir,
        )  # fmt: skip
        log.close()

    def start(self) -> None:
        """kube-apiserver (again, after ``stop``: the same port and etcd)."""
        pki = self.pki
        log = open(self.workdir / "kube-apiserver.log", "ab")  # noqa: SIM115 - kept by the process
        self.apiserver = subprocess.Popen(
            [str(APISERVER), f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
             "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
             f"--tls-cert-file={pki['server']}", f"--tls-private-key-file={pki['server-key']}",
             f"--client-ca-file={pki['ca']}", "--authorization-mode=RBAC",
             "--service-account-issuer=https://kubernetes.default.svc",
             f"--service-account-key-file={pki['sa']}", f"--service-account-signing-key-file={pki['sa-key']}",
             "--service-cluster-ip-range=10.0.0.0/24", f"--cert-dir={self.workdir / 'certs'}",
             "--disable-admission-plugins=ServiceAccount", "--endpoint-reconciler-type=none"],
            stdout=log, stderr=log, cwd=self.workdir,
        )  # fmt: skip
        log.close()

    def write_kubeconfig(self, name: str, user: dict[str, Any], ca: str = "ca") -> Path:
        path = self.workdir / f"{name}.kubeconfig"
        path.write_text(kubeconfig(self.server, user, {"certificate-authority": str(self.pki[ca])}))
        path.chmod(0o600)
        self.kubeconfigs[name] = path
        return path

    def admin(self, deadline: float = 10.0) -> Client:
        return Client(from_kubeconfig(str(self.kubeconfigs["admin"])), 5.0, deadline)

    def wait_ready(self, timeout: float = 90.0) -> None:
        end = time.monotonic() + timeout
        while True:
            assert self.apiserver is not None
            if self.apiserver.poll() is not None:
                raise RuntimeError(f"kube-apiserver exited: {self.log_tail()}")
            try:
                self.admin(1.0).request("GET", "/api/v1/namespaces/kube-system")
                return
            except (Unavailable, Refused) as e:
                if time.monotonic() > end:
                    raise RuntimeError(f"kube-apiserver not ready after {timeout} s ({e}): {self.log_tail()}") from None
                time.sleep(0.2)

    def log_tail(self) -> str:
        try:
            return (self.workdir / "kube-apiserver.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        ns = doc["metadata"].get("namespace", NAMESPACE)
        path = PATHS[doc["kind"]].format(ns=ns)
        _, answer = self.admin().request("POST", path, doc, ok=(201,))
        return answer

    def wait_served(self, path: str, timeout: float = 30.0) -> None:
        """Until a GET of ``path`` is answered (a CRD just applied is served a moment later)."""
        end = time.monotonic() + timeout
        while True:
            try:
                self.admin(2.0).request("GET", path)
                return
            except Refused:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)

    def setup(self) -> None:
        """The CRD and RBAC of deploy/, and the two users of the plugin bound to its roles."""
        for doc in yaml.safe_load_all(MANIFEST.read_text()):
            self.apply(doc)
        self.wait_served(f"/apis/cni-macvlan.io/v1/namespaces/{NAMESPACE}/ipleases")
        for kind, role in (("RoleBinding", "leases"), ("ClusterRoleBinding", "pods")):
            self.apply({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
                "metadata": {"name": f"test-node-{role}", "namespace": NAMESPACE},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": f"cni-macvlan-ipam-{role}"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "cni-ipam-node"}],
            })  # fmt: skip
        node = {
            "client-certificate-data": base64.b64encode(self.pki["node"].read_bytes()).decode(),
            "client-key-data": base64.b64encode(self.pki["node-key"].read_bytes()).decode(),
        }
        self.write_kubeconfig("node", node)
        # the service account of deploy/ (bound there): a token from the TokenRequest API, in a file
        _, answer = self.admin().request(
            "POST",
            f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/cni-macvlan/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 7200}},
            ok=(201,),
        )
        token = self.workdir / "robot.token"
        token.write_text(answer["status"]["token"])
        self.write_kubeconfig("robot", {"tokenFile": str(token)})
        self.apply(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "default"}}
        )

    def leases(self) -> list[dict[str, Any]]:
        _, answer = self.admin().request("GET", f"/apis/cni-macvlan.io/v1/namespaces/{NAMESPACE}/ipleases")
        return list(answer["items"])

    def delete_leases(self) -> None:
        self.admin().request("DELETE", f"/apis/cni-macvlan.io/v1/namespaces/{NAMESPACE}/ipleases")

    def create_pod(self, name: str, node: str, namespace: str = "default") -> dict[str, Any]:
        return self.apply({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeName": node, "automountServiceAccountToken": False,
                     "containers": [{"name": "c", "image": "busybox"}]},
        })  # fmt: skip

    def delete_pod(self, name: str, namespace: str = "default") -> None:
        self.admin().request(
            "DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", {"gracePeriodSeconds": 0}, ok=(200, 202)
        )

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.apiserver is not None:
            self.apiserver.send_signal(sig)
            self.apiserver.wait(timeout=30)
            self.apiserver = None

    def close(self) -> None:
        for proc in (self.apiserver, self.etcd):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait(timeout=30)
        self.apiserver = self.etcd = None
        shutil.rmtree(self.workdir / "etcd", ignore_errors=True)
