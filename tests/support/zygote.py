"""A zygote (launcher/_cni_zygote.py) for tests: started from the built tree on a private socket,
logging what it serves, stopped with SIGTERM at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

SOCKET_ENV = "CNI_MACVLAN_ZYGOTE"


def wait_for(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class Zygote:
    def __init__(
        self, executable: Path, socket: Path, log: Path, *options: str, pass_fds: tuple[int, ...] = ()
    ) -> None:
        self.executable = executable
        self.socket = socket
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(executable), "zygote", "--socket", str(socket), "--verbose", *options],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env={"PATH": "/usr/bin:/bin"},
                pass_fds=pass_fds,
            )
        deadline = time.monotonic() + 10
        while f"serving {socket} (pid {self.proc.pid})" not in self.log_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the zygote did not start: {self.log_text()}")
            time.sleep(0.01)

    @property
    def env(self) -> dict[str, str]:
        """What a plugin's environment needs to be served by this zygote."""
        return {SOCKET_ENV: str(self.socket)}

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def served(self) -> int:
        """How many requests it has forked a child for."""
        return self.log_text().count(" -> pid ")

    def children(self) -> list[int]:
        """The pids of its children now."""
        pids: list[int] = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            text = (task / "children").read_text().split()
            pids.extend(int(p) for p in text)
        return pids

    def stop(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
