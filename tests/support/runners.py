"""Running a plugin the ways a runtime can: in-process through the skeleton, or exec'd (in the
lab's node namespace for macvlan), in each layout of tests/support/layouts.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cni import skel
from tests.support.layouts import DIST


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


def cni_env(command: str, container_id: str = "dummy", ifname: str = "eth0", **extra: str | None) -> dict[str, str]:
    env: dict[str, str | None] = {
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


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj).encode()


Runner = Callable[..., Outcome]


class Served:
    """Counts a runner's execs in "zygote" mode and checks after the test that the zygote forked at
    least that many children: a zygote that declined (the launcher then runs the plugin itself)
    would pass unseen otherwise."""

    def __init__(self, request: Any) -> None:
        self.zygote = request.getfixturevalue("zygote")
        self.before = self.zygote.served()
        self.calls = 0
        request.addfinalizer(self.check)

    def check(self) -> None:
        assert self.zygote.served() - self.before >= self.calls, self.zygote.log_text()[-2000:]


class PluginLog:
    """Our plugins' log file (the config's ``logFile``): each exec of ours logs its outcome under its pid."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def text(self, since: int = 0) -> str:
        return self.path.read_bytes()[since:].decode() if self.path.exists() else ""

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def execs(self, since: int = 0) -> set[int]:
        """The pids of the execs of ours that logged after byte ``since``."""
        return {int(m) for m in re.findall(r"^\S+ [A-Z]+ \[(\d+)\]", self.text(since), re.M)}


class ServedPerLog(Served):
    """Served, for runtimes that exec our plugins themselves: the calls are the execs of ours that the log
    shows during the test, and there must be some."""

    def __init__(self, request: Any, log: PluginLog) -> None:
        self.log = log
        self.start = log.size()
        super().__init__(request)

    def check(self) -> None:
        self.calls = len(self.log.execs(self.start))
        assert self.calls, f"no plugin of ours logged to {self.log.path}"
        super().check()


class MacvlanRunner:
    """Run a plugin (ours, from dist/ or from source) in the lab's node namespace, as a runtime does:
    ``plugin`` unless a call names another of the same directory."""

    def __init__(
        self, lab: Any, plugin_dir: Path, mode: str, served: Served | None = None, plugin: str = "macvlan"
    ) -> None:
        self.lab = lab
        self.plugin_dir = plugin_dir
        self.mode = mode
        self.served = served
        self.plugin = plugin

    def __call__(
        self,
        command: str,
        config: dict[str, Any],
        netns: str = "/run/netns/none",
        ifname: str = "eth0",
        container_id: str = "c1",
        plugin: str = "",
        **env: str,
    ) -> Outcome:
        full_env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_PATH": str(self.plugin_dir),
            **(self.served.zygote.env if self.served else {}),
            **env,
        }
        if self.served:
            self.served.calls += 1
        return self.lab.run([str(self.plugin_dir / (plugin or self.plugin))], full_env, config)
