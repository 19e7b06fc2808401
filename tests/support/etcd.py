"""Real etcd servers for the tests (Debian's etcd-server), on loopback, in temporary data directories.

One member for most tests, three for the failure tests. Every process is started and stopped by
this helper, and killed whatever happens (``close``). Elections are tuned short (heartbeat 10 ms,
election 100 ms for one member; 50/500 ms for three) so a cluster is ready in well under a second.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from ipam.etcd_client import Client, Unavailable, b64
from tests.support.pki import CA

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def make_pki(d: Path) -> dict[str, Path]:
    """With openssl: a CA, a server certificate for 127.0.0.1 and localhost, a client certificate, and
    a second CA that signed none of them. Paths by name: ca, server, server-key, client, client-key,
    other-ca."""
    ca, other = CA(d, "ca"), CA(d, "other-ca")
    pki = {"ca": ca.cert, "other-ca": other.cert}
    for name, ext in (  # etcd's JSON gateway dials its own member with the server certificate
        ("server", ["subjectAltName=IP:127.0.0.1,DNS:localhost", "extendedKeyUsage=serverAuth,clientAuth"]),
        ("client", ["extendedKeyUsage=clientAuth"]),
    ):
        pki[name], pki[f"{name}-key"] = ca.issue(name, f"/CN={name}", ext)
    return pki


class EtcdCluster:
    def __init__(self, workdir: Path, members: int = 1, pki: dict[str, Path] | None = None) -> None:
        """``pki`` (make_pki): clients talk https and must show a certificate of its CA."""
        self.workdir = workdir
        self.pki = pki
        self.n = members
        ports = free_ports(2 * members)
        self.client_ports, self.peer_ports = ports[:members], ports[members:]
        self.names = [f"m{i}" for i in range(members)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * members
        self.timing = (
            ["--heartbeat-interval=10", "--election-timeout=100"]
            if members == 1
            else [
                "--heartbeat-interval=50",
                "--election-timeout=500",
            ]
        )
        for i in range(members):
            self.start(i)
        self.wait_ready()

    @property
    def endpoints(self) -> list[str]:
        scheme = "https" if self.pki else "http"
        return [f"{scheme}://127.0.0.1:{p}" for p in self.client_ports]

    @property
    def tls(self) -> dict[str, str]:
        """The client side of ``pki``: ipam.store.tls."""
        if not self.pki:
            return {}
        pki = self.pki
        return {"trustedCAFile": str(pki["ca"]), "certFile": str(pki["client"]), "keyFile": str(pki["client-key"])}

    @property
    def unix_endpoints(self) -> list[str]:
        """The same members through their unix sockets: for plugins run in another network namespace."""
        return [f"unix://{self.workdir}/localhost:{p}" for p in self.client_ports]

    def start(self, i: int) -> None:
        cluster = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(self.names, self.peer_ports, strict=True))
        data = self.workdir / f"etcd-{self.names[i]}"
        (self.workdir / f"localhost:{self.client_ports[i]}").unlink(missing_ok=True)  # a killed member's socket
        log = open(self.workdir / f"etcd-{self.names[i]}.log", "ab")  # noqa: SIM115 - kept by the process
        unix, tls = "unix", []
        if self.pki:
            unix = "unixs"
            tls = [
                f"--cert-file={self.pki['server']}",
                f"--key-file={self.pki['server-key']}",
                f"--trusted-ca-file={self.pki['ca']}",
                "--client-cert-auth",
            ]
        self.procs[i] = subprocess.Popen(
            [
                ETCD,
                f"--name={self.names[i]}",
                f"--data-dir={data}",
                # and a unix socket (the file localhost:<port> in workdir): reachable from the
                # test's network namespaces, which don't share the host's loopback
                f"--listen-client-urls={self.endpoints[i]},{unix}://localhost:{self.client_ports[i]}",
                f"--advertise-client-urls={self.endpoints[i]}",
                *tls,
                f"--listen-peer-urls=http://127.0.0.1:{self.peer_ports[i]}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{self.peer_ports[i]}",
                f"--initial-cluster={cluster}",
                "--initial-cluster-state=new",
                "--logger=zap",
                *self.timing,
            ],
            stdout=log,
            stderr=log,
            cwd=self.workdir,
        )
        log.close()

    def client(self, deadline: float = 10.0) -> Client:
        return Client(self.endpoints, try_timeout=0.3, deadline=deadline, tls=self.tls)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until a write succeeds (a leader exists and has a quorum)."""
        end = time.monotonic() + timeout
        while True:
            try:
                self.client(deadline=1.0).call("kv/put", {"key": b64(b"/ready"), "value": b64(b"1")})
                return
            except Unavailable:
                if time.monotonic() > end:
                    raise

    def leader(self) -> int:
        """The index of the member that leads now."""
        for i, port in enumerate(self.client_ports):
            if self.procs[i] is None:
                continue
            try:
                status = Client([f"http://127.0.0.1:{port}"], 0.5, 1.0).call("maintenance/status", {})
            except Unavailable:
                continue
            if status.get("leader") and status["leader"] == status.get("header", {}).get("member_id"):
                return i
        raise AssertionError("no leader")

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[i]
        if proc is not None:
            proc.send_signal(sig)
            proc.wait()
            self.procs[i] = None

    def keys(self, prefix: bytes) -> dict[bytes, bytes]:
        """Every key under ``prefix`` with its value."""
        from ipam.etcd_client import prefix_end, unb64

        answer = self.client().call("kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
        return {unb64(kv["key"]): unb64(kv.get("value", "")) for kv in answer.get("kvs", [])}

    def close(self) -> None:
        for i in range(self.n):
            self.kill(i)
        for i in range(self.n):
            shutil.rmtree(self.workdir / f"etcd-{self.names[i]}", ignore_errors=True)


def available() -> bool:
    return os.access(ETCD, os.X_OK)
