"""A small client of etcd's v3 JSON gateway (``POST /v3/kv/...``), on the C socket module.

Why not a library (README "Cluster-wide leases on etcd"): etcd3gw costs about 100 ms of imports per
exec (requests, urllib3...), etcd3 (gRPC) about 90 ms and breaks with current protobuf, even the
stdlib's http.client about 20 ms (email, ssl); this is one module and nothing to import.

Every call has a deadline for all its tries and a timeout per try; a refused connection, a timeout,
a 5xx (503 is what a member answers while there is no leader) moves on to the next endpoint, round
and round until the deadline. A write whose try timed out may have been applied: callers make their
writes idempotent (ipam/etcd.py). HTTP/1.0, one connection per request: no keep-alive to manage.
TLS (``https://`` endpoints, client certificates) loads the ssl module only when configured. TLS
files that can't be loaded, a certificate that doesn't verify, a handshake the member refuses (no or
a wrong client certificate) are misconfigurations: Refused at once, not retried until the deadline.
"""

from __future__ import annotations

import _socket
import binascii
import sys
import time

from cni import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Unavailable(Exception):
    """No endpoint answered before the deadline (down, no quorum, unreachable): try again later."""


class Refused(Exception):
    """etcd refused the request itself (HTTP 4xx): a bug or a misconfiguration, not worth a retry."""


def b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode()


def unb64(text: str) -> bytes:
    return binascii.a2b_base64(text)


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with ``prefix``."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


class Endpoint:
    """``http://host:port``, ``https://host:port``, or ``unix:///path`` (a member on this node)."""

    __slots__ = ("host", "path", "port", "tls")

    def __init__(self, url: str) -> None:
        scheme, sep, rest = url.partition("://")
        self.path = ""
        if scheme == "unix" and rest.startswith("/"):
            self.host, self.port, self.tls, self.path = "localhost", 0, False, rest
            return
        if not sep or scheme not in ("http", "https"):
            raise ValueError(f"{url!r}: an endpoint is http://host:port, https://host:port or unix:///path")
        host, _, port = rest.rstrip("/").rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{url!r}: an endpoint is http://host:port, https://host:port or unix:///path")
        self.host = host.strip("[]")
        self.port = int(port)
        self.tls = scheme == "https"

    def __str__(self) -> str:
        if self.path:
            return f"unix://{self.path}"
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"


class Client:
    def __init__(
        self,
        endpoints: list[str],
        try_timeout: float = 0.5,
        deadline: float = 5.0,
        tls: dict[str, str] | None = None,
    ) -> None:
        self.endpoints = [Endpoint(url) for url in endpoints]
        self.try_timeout = try_timeout
        self.deadline = deadline
        self.tls = tls or {}
        self._ssl_context: Any = None
        self._next = 0  # the endpoint that answered last goes first

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``/v3/<path>`` with ``body``; the decoded answer. Unavailable after the deadline."""
        data = jsonio.dumps_compact(body).encode()
        end = time.monotonic() + self.deadline
        problems: list[str] = []
        while True:
            for _ in range(len(self.endpoints)):
                endpoint = self.endpoints[self._next]
                left = end - time.monotonic()
                if left <= 0:
                    raise Unavailable("; ".join(problems[-len(self.endpoints) :]) or "deadline passed")
                try:
                    status, answer = self._post(endpoint, path, data, min(self.try_timeout, left))
                except (OSError, ValueError) as e:  # refused, reset, timed out, garbled
                    if endpoint.tls and _tls_refused(e):
                        raise Refused(f"{endpoint}: TLS: {e}") from None
                    problems.append(f"{endpoint}: {getattr(e, 'strerror', None) or e}")
                else:
                    if status == 200:
                        try:
                            decoded = jsonio.loads(answer)
                        except jsonio.DecodeError:
                            problems.append(f"{endpoint}: an answer that is not JSON")
                        else:
                            if isinstance(decoded, dict):
                                return decoded
                            problems.append(f"{endpoint}: an answer that is not a JSON object")
                    elif 400 <= status < 500:
                        raise Refused(f"{endpoint}: HTTP {status}: {answer[:200].decode(errors='replace')}")
                    else:  # 503 while there is no leader, other 5xx
                        problems.append(f"{endpoint}: HTTP {status}: {_error_text(answer)}")
                self._next = (self._next + 1) % len(self.endpoints)
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))  # every endpoint failed once: breathe

    def _post(self, endpoint: Endpoint, path: str, data: bytes, timeout: float) -> tuple[int, bytes]:
        end = time.monotonic() + timeout
        if endpoint.path:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            address: Any = endpoint.path
        else:
            family, kind, proto, _, address = _socket.getaddrinfo(endpoint.host, endpoint.port, 0, _socket.SOCK_STREAM)[
                0
            ]
            sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            conn: Any = self._wrap(sock, endpoint) if endpoint.tls else sock
            request = (
                f"POST /v3/{path} HTTP/1.0\r\nHost: {endpoint.host}:{endpoint.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode() + data
            conn.settimeout(max(0.001, end - time.monotonic()))
            conn.sendall(request)
            chunks = []
            while True:  # HTTP/1.0: the server closes when the answer is complete
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("timed out")
                conn.settimeout(left)  # a deadline for the whole answer, not per recv
                chunk = conn.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            sock.close()
        raw = b"".join(chunks)
        head, sep, body = raw.partition(b"\r\n\r\n")
        parts = head.split(b" ", 2)
        if not sep or len(parts) < 2 or not parts[1].isdigit():
            raise ValueError("not an HTTP answer")
        return int(parts[1]), body

    def _wrap(self, sock: Any, endpoint: Endpoint) -> Any:
        if self._ssl_context is None:
            import ssl  # only with https endpoints: about 5 ms of imports

            key = "trustedCAFile"
            try:
                ctx = ssl.create_default_context(cafile=self.tls.get(key) or None)
                if self.tls.get("certFile"):
                    key = "certFile"
                    ctx.load_cert_chain(self.tls["certFile"], self.tls.get("keyFile") or None)
            except (OSError, ValueError) as e:
                raise Refused(
                    f'ipam.store.tls: cannot load {key} "{self.tls.get(key)}": {e}; give readable PEM files'
                ) from None
            self._ssl_context = ctx
        return self._ssl_context.wrap_socket(sock, server_hostname=endpoint.host)


def _tls_refused(e: BaseException) -> bool:
    """A TLS failure that another try won't cure: verification failed, the handshake was refused.
    (An EOF or a reset mid-handshake is a member going away: retried like any other.)"""
    ssl = sys.modules.get("ssl")
    if ssl is None or not isinstance(e, ssl.SSLError):
        return False
    return not isinstance(e, (ssl.SSLEOFError, ssl.SSLSyscallError, ssl.SSLZeroReturnError))


def _error_text(answer: bytes) -> str:
    try:
        decoded = jsonio.loads(answer)
    except jsonio.DecodeError:
        return answer[:200].decode(errors="replace")
    if isinstance(decoded, dict):
        return str(decoded.get("error") or decoded.get("message") or decoded)
    return str(decoded)
