"""Test certificates with openssl: a CA in a directory, the certificates it signs, a plain key pair. The
one place the suite's PKIs (etcd's, the API server's, the one-node cluster's) are made."""

from __future__ import annotations

import subprocess
from pathlib import Path


class CA:
    """A self-signed CA ``name`` in ``d`` (``{name}.crt``, ``{name}.key``), valid two days; ``key`` is rsa
    (2048 bits) or ec (P-256), for it and everything it issues."""

    def __init__(self, d: Path, name: str = "ca", key: str = "rsa") -> None:
        assert key in ("rsa", "ec"), key
        self.dir = d
        self.name = name
        self.newkey = (
            ["-newkey", "rsa:2048"] if key == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        )
        d.mkdir(parents=True, exist_ok=True)
        self.cert, self.key = d / f"{name}.crt", d / f"{name}.key"
        self.openssl("req", "-x509", *self.newkey, "-nodes", "-days", "2", "-subj", f"/CN=test {name}",
                     "-keyout", self.key.name, "-out", self.cert.name)  # fmt: skip

    def openssl(self, *args: str) -> None:
        subprocess.run(["openssl", *args], cwd=self.dir, check=True, capture_output=True, timeout=60)

    def issue(self, name: str, subject: str, ext: list[str]) -> tuple[Path, Path]:
        """A key and a certificate for ``subject`` (``/O=.../CN=...``) with the extensions ``ext`` (openssl's
        extfile lines), signed by this CA: (``{name}.crt``, ``{name}.key``)."""
        (self.dir / f"{name}.ext").write_text("\n".join(ext) + "\n")
        self.openssl("req", "-new", *self.newkey, "-nodes", "-keyout", f"{name}.key", "-subj", subject,
                     "-out", f"{name}.csr")  # fmt: skip
        self.openssl("x509", "-req", "-in", f"{name}.csr", "-CA", self.cert.name, "-CAkey", self.key.name,
                     "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt")  # fmt: skip
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    def key_pair(self, name: str) -> tuple[Path, Path]:
        """An RSA key pair not certified by anything (a service-account signing key): (public, private)."""
        self.openssl("genrsa", "-out", f"{name}.key", "2048")
        self.openssl("rsa", "-in", f"{name}.key", "-pubout", "-out", f"{name}.pub")
        return self.dir / f"{name}.pub", self.dir / f"{name}.key"
