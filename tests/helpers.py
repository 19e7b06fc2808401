"""Test helpers: run a plugin the ways a runtime can, and an in-memory lease store."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cni_macvlan.cni import skel
from ipam.store import Lease, Store

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
GO_PLUGINS = Path("/usr/lib/cni")


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout else None

    @property
    def error(self) -> dict[str, Any]:
        assert self.code != 0, f"expected a failure, got {self.stdout}"
        err = self.json
        assert isinstance(err, dict) and "code" in err and "msg" in err, self.stdout
        return err

    def ok(self) -> Any:
        assert self.code == 0, f"plugin failed: {self.stdout} {self.stderr}"
        assert "Traceback" not in self.stderr
        return self.json


def cni_env(command: str, container_id: str = "dummy", ifname: str = "eth0", **extra: str) -> dict[str, str]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": "/var/run/netns/cni-test-nonexistent",
        "CNI_IFNAME": ifname,
        "CNI_PATH": str(DIST),
    }
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def run_inprocess(plugin: skel.Plugin, env: dict[str, str], stdin: bytes) -> Outcome:
    code, out, err = skel.handle(plugin, env, stdin)
    return Outcome(code, out, err)


def run_exec(executable: str | Path, env: dict[str, str], stdin: bytes, timeout: float = 60) -> Outcome:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    proc = subprocess.run(
        [str(executable)], input=stdin, env={**base, **env}, capture_output=True, timeout=timeout, check=False
    )
    return Outcome(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def source_command(plugin: str) -> list[str]:
    """The plugin run from source, as the frozen executable would run it."""
    return [sys.executable, "-m", "cni_macvlan", plugin]


@dataclass
class MemStore(Store):
    """An in-memory Store for allocator tests: the same interface as the disk store."""

    files: dict[tuple[int, int], tuple[str, str | None]] = field(default_factory=dict)
    last: dict[str, tuple[int, int]] = field(default_factory=dict)
    locked: bool = False

    def lock(self) -> None:
        assert not self.locked
        self.locked = True

    def unlock(self) -> None:
        self.locked = False

    def close(self) -> None:
        pass

    def reserve(self, container_id: str, ifname: str, family: int, value: int, range_id: str) -> bool:
        if (family, value) in self.files:
            return False
        self.files[(family, value)] = (container_id.strip(), ifname)
        self.last[range_id] = (family, value)
        return True

    def last_reserved(self, range_id: str) -> tuple[int, int] | None:
        return self.last.get(range_id)

    def leases(self) -> list[Lease]:
        return [Lease(f, v, cid, ifn) for (f, v), (cid, ifn) in self.files.items()]

    def release(self, family: int, value: int) -> None:
        self.files.pop((family, value), None)


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def ipam_conf(data_dir: Path, name: str, subnet: str, version: str = "1.0.0") -> dict[str, Any]:
    """A network config for host-local alone: one subnet, its store in ``data_dir``."""
    return {
        "cniVersion": version,
        "name": name,
        "ipam": {"type": "host-local", "subnet": subnet, "dataDir": str(data_dir)},
    }


def fill(mnt: Path, leave_pages: int = 0) -> None:
    """Write a file until the file system at ``mnt`` is full, then give back ``leave_pages`` pages."""
    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096) == 4096:
            pass
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)
    if leave_pages:
        os.truncate(filler, max(0, filler.stat().st_size - leave_pages * 4096))


def read_only(mnt: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
