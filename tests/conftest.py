from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ipam.plugin import PLUGIN as HOST_LOCAL
from tests.helpers import DIST, GO_PLUGINS, Outcome, cni_env, run_exec, run_inprocess

ALL_VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
# Debian's Go plugins (v1.1.1) stop at 1.0.0
GO_VERSIONS = ALL_VERSIONS[:-1]


def dist_executable(name: str) -> Path:
    path = DIST / name
    if not path.exists():
        if os.environ.get("CNI_REQUIRE_DIST"):
            pytest.fail(f"{path} is missing: run `make build` first")
        pytest.skip(f"{path} not built (run `make build`)")
    return path


def go_plugin(name: str) -> Path:
    path = GO_PLUGINS / name
    if not path.exists():
        if os.environ.get("CNI_REQUIRE_GO"):
            pytest.fail(f"{path} is missing: apt-get install containernetworking-plugins")
        pytest.skip(f"{path} missing (apt-get install containernetworking-plugins)")
    return path


Runner = Callable[..., Outcome]


@pytest.fixture(params=["inprocess", "exec"])
def host_local(request: pytest.FixtureRequest) -> Runner:
    """Run our host-local: in-process through the skeleton, or as dist/host-local exec'd like a runtime does."""
    from tests.helpers import json_bytes

    if request.param == "exec":
        exe = dist_executable("host-local")

        def run(command: str, config: dict[str, Any], **env: Any) -> Outcome:
            return run_exec(exe, cni_env(command, **env), json_bytes(config))
    else:

        def run(command: str, config: dict[str, Any], **env: Any) -> Outcome:
            return run_inprocess(HOST_LOCAL, cni_env(command, **env), json_bytes(config))

    run.mode = request.param  # type: ignore[attr-defined]
    return run


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "ipam-store"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def go_host_local() -> Path:
    return go_plugin("host-local")
