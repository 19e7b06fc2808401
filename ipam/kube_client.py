"""A small client of the Kubernetes API (JSON over HTTPS), on the C socket module and ssl.

Why not the ``kubernetes`` package (docs/configuration.md, "Cluster-wide leases in the Kubernetes
API"; bench/kube_client_cost.py measures it): importing it costs about 180 ms per exec here (urllib3,
yaml, oauthlib, the generated models), and even the stdlib's http.client is kept out of the build
(email, about 20 ms); this is one module, plus ssl.

Credentials (``credentials``): a kubeconfig (YAML or JSON; its current context or a named one:
server, certificate-authority(-data), client-certificate(-data) + client-key(-data), token or
tokenFile), or, with no kubeconfig, the pod's service account (the token and ca.crt under
/var/run/secrets/kubernetes.io/serviceaccount, KUBERNETES_SERVICE_HOST/_PORT). TLS is always
verified against the given CA; ``insecure-skip-tls-verify``, exec and auth-provider plugins and
basic auth are refused by name. Certificate data is handed to ssl through a memfd (an anonymous
file of this process, ``/proc/self/fd/N``): no key is ever written to a file system.

Requests: HTTP/1.1 on one kept-alive connection per client. Every request has a deadline for all
its tries and a timeout per try; a refused connection, a timeout, a 429 or 5xx, a connection the
server closed is tried again until the deadline (``Unavailable``: CNI code 11). TLS that does not
verify, a 401/403, a 4xx the caller did not ask for are ``Refused`` at once, with the server's words.
A write whose try timed out may have been applied: callers make their writes idempotent
(ipam/kubernetes.py).
"""

from __future__ import annotations

import _socket
import binascii
import os
import sys
import time

from cni import jsonio

from . import kubeyaml

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


class Unavailable(Exception):
    """The API server did not answer in time (down, overloaded, unreachable): try again later."""


class Refused(Exception):
    """The API server (or its TLS) refused the request; not worth a retry as it is."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class ConfigError(ValueError):
    """A kubeconfig or service account that can't be used; the message names the file and key."""


class Credentials:
    """Where the API server is and how to prove who we are."""

    __slots__ = ("ca_data", "ca_file", "cert", "host", "key", "namespace", "port", "server", "server_name", "token")

    def __init__(self, server: str) -> None:
        self.server = server
        self.host, self.port = _host_port(server)
        self.server_name = ""  # tls-server-name
        self.ca_file = ""
        self.ca_data = b""
        self.cert: str | bytes = ""  # a file name, or PEM bytes
        self.key: str | bytes = ""
        self.token = ""
        self.namespace = ""  # the context's, if any


def _host_port(server: str) -> tuple[str, int]:
    scheme, sep, rest = server.partition("://")
    if not sep or scheme != "https":
        raise ConfigError(f"server {server!r}: the API server must be an https:// URL (TLS is always verified)")
    rest = rest.split("/", 1)[0]
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    port = port or "443"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"server {server!r}: not https://host[:port]")
    return host, int(port)


def _named(items: Any, name: str, what: str, path: str) -> dict[str, Any]:
    """The ``what`` (cluster, user, context) named ``name`` in a kubeconfig's list of them."""
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get(what), dict):
            return item[what]  # type: ignore[no-any-return]
    raise ConfigError(f"kubeconfig {path}: no {what} named {name!r}")


def _data(value: Any, key: str, path: str) -> bytes:
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, TypeError, ValueError):
        raise ConfigError(f"kubeconfig {path}: {key} is not base64") from None


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"{what} {path}: cannot read it: {e.strerror}") from None


def from_kubeconfig(path: str, context: str = "") -> Credentials:
    """The credentials of ``context`` (else the current one) of the kubeconfig at ``path``."""
    try:
        doc = kubeyaml.loads(_read(path, "kubeconfig").decode())
    except (kubeyaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"kubeconfig {path}: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path}: not a kubeconfig (a mapping with clusters, users and contexts)")
    name = context or doc.get("current-context") or ""
    if not name:
        raise ConfigError(f"kubeconfig {path}: no current-context; set it or give ipam.store.context")
    ctx = _named(doc.get("contexts"), name, "context", path)
    cluster = _named(doc.get("clusters"), ctx.get("cluster", ""), "cluster", path)
    user = _named(doc.get("users"), ctx.get("user", ""), "user", path) if ctx.get("user") else {}
    base = os.path.dirname(os.path.abspath(path))

    def file_of(value: Any) -> str:  # relative paths are relative to the kubeconfig (client-go's rule)
        return value if os.path.isabs(value) else os.path.join(base, value)

    if not isinstance(cluster.get("server"), str):
        raise ConfigError(f"kubeconfig {path}: cluster {ctx.get('cluster')!r} has no server")
    try:
        creds = Credentials(cluster["server"])
    except ConfigError as e:
        raise ConfigError(f"kubeconfig {path}: {e}") from None
    if cluster.get("insecure-skip-tls-verify"):
        raise ConfigError(f"kubeconfig {path}: insecure-skip-tls-verify is refused: give certificate-authority(-data)")
    creds.server_name = cluster.get("tls-server-name") or ""
    if cluster.get("certificate-authority-data"):
        creds.ca_data = _data(cluster["certificate-authority-data"], "certificate-authority-data", path)
    elif cluster.get("certificate-authority"):
        creds.ca_file = file_of(cluster["certificate-authority"])
    for key in ("exec", "auth-provider", "username", "password"):
        if user.get(key):
            raise ConfigError(
                f"kubeconfig {path}: user {ctx.get('user')!r} uses {key}, which this plugin does not support: "
                "give client-certificate/client-key or a token (a service account's)"
            )
    for field, key in (("cert", "client-certificate"), ("key", "client-key")):
        if user.get(key + "-data"):
            setattr(creds, field, _data(user[key + "-data"], key + "-data", path))
        elif user.get(key):
            setattr(creds, field, file_of(user[key]))
    if bool(creds.cert) != bool(creds.key):
        raise ConfigError(f"kubeconfig {path}: user {ctx.get('user')!r}: client-certificate and client-key go together")
    if user.get("token"):
        creds.token = str(user["token"])
    elif user.get("tokenFile"):
        creds.token = _read(file_of(user["tokenFile"]), "tokenFile").decode().strip()
    creds.namespace = ctx.get("namespace") or ""
    return creds


def in_cluster(root: str = SERVICE_ACCOUNT, environ: dict[str, str] | None = None) -> Credentials:
    """The pod's service account, as client-go's InClusterConfig reads it."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConfigError(
            "no ipam.store.kubeconfig and no KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT (not in a pod): "
            "give ipam.store.kubeconfig"
        )
    creds = Credentials(f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}")
    creds.token = _read(os.path.join(root, "token"), "service account token").decode().strip()
    creds.ca_file = os.path.join(root, "ca.crt")
    namespace = os.path.join(root, "namespace")
    if os.path.exists(namespace):
        creds.namespace = _read(namespace, "service account namespace").decode().strip()
    return creds


def credentials(kubeconfig: str = "", context: str = "") -> Credentials:
    """The kubeconfig's credentials, or the pod's service account when no kubeconfig is given."""
    return from_kubeconfig(kubeconfig, context) if kubeconfig else in_cluster()


def _memfd(data: bytes, name: str) -> tuple[int, str]:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.write(fd, data)
    return fd, f"/proc/self/fd/{fd}"


class Client:
    def __init__(self, creds: Credentials, try_timeout: float = 1.0, deadline: float = 10.0) -> None:
        self.creds = creds
        self.try_timeout = try_timeout
        self.deadline = deadline
        self._ctx: Any = None
        self._conn: Any = None
        self._buf = b""
        self.requests = 0  # sent, for the tests and the benchmark
        self.tries = 0  # of the last request: more than 1, and an earlier one may have been applied

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None
            self._buf = b""

    def request(
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201), accept: str = ""
    ) -> tuple[int, dict[str, Any]]:
        """``method path`` with ``body`` (JSON); (status, decoded answer) for a status in ``ok``.
        Refused for any other 4xx, Unavailable when no try got an answer before the deadline."""
        data = b"" if body is None else jsonio.dumps_compact(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.creds.host}:{self.creds.port}\r\n"
            f"Accept: {accept or 'application/json'}\r\nUser-Agent: cni-macvlan-host-local\r\n"
        )
        if self.creds.token:
            head += f"Authorization: Bearer {self.creds.token}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        raw = head.encode() + b"\r\n" + data
        end = time.monotonic() + self.deadline
        problem = ""
        self.tries = 0
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise Unavailable(f"{self.creds.server}: {problem or 'deadline passed'}")
            self.tries += 1
            try:
                status, answer = self._exchange(raw, min(self.try_timeout, left))
            except (OSError, ValueError) as e:  # refused, reset, timed out, garbled
                self.close()
                if _tls_refused(e):
                    raise Refused(f"{self.creds.server}: TLS: {e}") from None
                problem = getattr(e, "strerror", None) or str(e) or type(e).__name__
            else:
                if status in ok:
                    decoded = _decode(answer)
                    if decoded is not None:
                        return status, decoded
                    problem = f"HTTP {status}: an answer that is not a JSON object"
                elif 400 <= status < 500 and status != 429:
                    raise _refusal(method, path, status, answer)
                else:  # 429 (too many requests), 5xx: the server may answer later
                    problem = f"HTTP {status}: {_message(answer)}"
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))

    def _connect(self, timeout: float) -> Any:
        creds = self.creds
        host = _ascii(creds.host)
        family, kind, proto, _, address = _socket.getaddrinfo(host, creds.port, 0, _socket.SOCK_STREAM)[0]
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            return self._context().wrap_socket(sock, server_hostname=_ascii(creds.server_name or creds.host))
        except BaseException:
            sock.close()
            raise

    def _context(self) -> Any:
        if self._ctx is None:
            import ssl

            creds = self.creds
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
            what = "certificate-authority"
            try:
                if creds.ca_data:
                    ctx.load_verify_locations(cadata=creds.ca_data.decode())
                elif creds.ca_file:
                    ctx.load_verify_locations(cafile=creds.ca_file)
                else:
                    ctx.load_default_certs()
                if creds.cert:
                    what = "client-certificate/client-key"
                    self._load_chain(ctx)
            except (OSError, ValueError, UnicodeDecodeError) as e:
                raise Refused(f"cannot load the {what} for {creds.server}: {e}; give readable PEM") from None
            self._ctx = ctx
        return self._ctx

    def _load_chain(self, ctx: Any) -> None:
        opened = []
        try:
            files = []
            for value, name in ((self.creds.cert, "client-cert"), (self.creds.key, "client-key")):
                if isinstance(value, bytes):
                    fd, value = _memfd(value, name)
                    opened.append(fd)
                files.append(value)
            ctx.load_cert_chain(files[0], files[1])
        finally:
            for fd in opened:
                os.close(fd)

    def _exchange(self, raw: bytes, timeout: float) -> tuple[int, bytes]:
        """One request and its answer on the kept-alive connection (made when there is none)."""
        end = time.monotonic() + timeout
        reused = self._conn is not None
        if self._conn is None:
            self._conn = self._connect(timeout)
        conn = self._conn
        conn.settimeout(max(0.001, end - time.monotonic()))
        try:
            conn.sendall(raw)
            self.requests += 1
            status, headers, body = self._answer(conn, end)
        except (OSError, ValueError):
            if not reused:
                raise
            # the server closed an idle connection: one fresh try within the same timeout
            self.close()
            self._conn = conn = self._connect(max(0.001, end - time.monotonic()))
            conn.sendall(raw)
            self.requests += 1
            status, headers, body = self._answer(conn, end)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def _recv(self, conn: Any, end: float) -> bytes:
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        conn.settimeout(left)  # a deadline for the whole answer, not per recv
        chunk: bytes = conn.recv(65536)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        return chunk

    def _until(self, conn: Any, end: float, marker: bytes) -> bytes:
        while marker not in self._buf:
            self._buf += self._recv(conn, end)
        part, _, self._buf = self._buf.partition(marker)
        return part

    def _exactly(self, conn: Any, end: float, n: int) -> bytes:
        while len(self._buf) < n:
            self._buf += self._recv(conn, end)
        part, self._buf = self._buf[:n], self._buf[n:]
        return part

    def _answer(self, conn: Any, end: float) -> tuple[int, dict[str, str], bytes]:
        head = self._until(conn, end, b"\r\n\r\n").decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError("not an HTTP answer")
        headers = {}
        for line in head[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self._until(conn, end, b"\r\n").split(b";")[0], 16)
                chunks.append(self._exactly(conn, end, size + 2)[:size])
                if size == 0:  # its CRLF was the end of the (empty) trailer
                    break
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = self._exactly(conn, end, int(headers["content-length"]))
        else:  # neither: the answer ends when the server closes
            while True:
                try:
                    self._buf += self._recv(conn, end)
                except ConnectionResetError:
                    break
            body, self._buf = self._buf, b""
            headers["connection"] = "close"
        return int(parts[1]), headers, body


def _decode(answer: bytes) -> dict[str, Any] | None:
    try:
        decoded = jsonio.loads(answer)
    except jsonio.DecodeError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _message(answer: bytes) -> str:
    decoded = _decode(answer)
    if decoded is None:
        return answer[:200].decode(errors="replace").strip()
    return str(decoded.get("message") or decoded.get("reason") or decoded)


def _refusal(method: str, path: str, status: int, answer: bytes) -> Refused:
    decoded = _decode(answer) or {}
    reason = str(decoded.get("reason") or "")
    return Refused(f"{method} {path}: HTTP {status} {reason}: {_message(answer)}".replace("  ", " "), status, reason)


def _tls_refused(e: BaseException) -> bool:
    """A TLS failure that another try won't cure: verification failed, the handshake was refused.
    (An EOF or a reset mid-handshake is a server going away: tried again like any other.)"""
    ssl = sys.modules.get("ssl")
    if ssl is None or not isinstance(e, ssl.SSLError):
        return False
    return not isinstance(e, (ssl.SSLEOFError, ssl.SSLSyscallError, ssl.SSLZeroReturnError))


def _ascii(name: str) -> str | bytes:
    """``name`` as bytes when it is ASCII (an IP address, most host names): socket.getaddrinfo and
    SSLContext.wrap_socket encode a str with the idna codec, whose import costs an exec about 9 ms."""
    return name.encode("ascii") if name.isascii() else name
