"""Delegation: a plugin found in CNI_PATH is exec'd with our environment and the whole config."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cni import delegate
from cni.errors import CNIError
from cni.ip import AddressError
from cni.request import Request
from tests.support.configs import ipam_conf
from tests.support.layouts import dist_executable, upstream_plugin
from tests.support.runners import cni_env, json_bytes


def conf(data_dir: Path) -> dict:
    return ipam_conf(data_dir, "dnet", "10.70.0.0/24")


@pytest.mark.parametrize("impl", ["ours", "go"])
def test_delegated_add_check_del(impl: str, data_dir: Path) -> None:
    exe = dist_executable("host-local") if impl == "ours" else upstream_plugin("host-local")
    path = [str(exe.parent)]
    env = cni_env("ADD", CNI_PATH=str(exe.parent))
    stdin = json_bytes(conf(data_dir))
    result = delegate.invoke(delegate.find_in_path("host-local", path), "ADD", env, stdin, "1.0.0")
    assert result is not None
    assert [ip.address for ip in result.ips] == ["10.70.0.2/24"]
    assert delegate.invoke(delegate.find_in_path("host-local", path), "CHECK", env, stdin, "1.0.0") is None
    assert delegate.invoke(delegate.find_in_path("host-local", path), "DEL", env, stdin, "1.0.0") is None
    assert [p.name for p in (data_dir / "dnet").iterdir() if p.name[0].isdigit()] == []


def test_a_delegate_error_keeps_its_code_and_message(data_dir: Path) -> None:
    exe = dist_executable("host-local")
    bad = conf(data_dir)
    bad["ipam"]["subnet"] = "10.70.0.5/24"
    with pytest.raises(CNIError) as e:
        delegate.invoke(
            delegate.find_in_path("host-local", [str(exe.parent)]), "ADD", cni_env("ADD"), json_bytes(bad), "1.0.0"
        )
    assert e.value.code == 7
    assert "10.70.0.0" in e.value.msg


def test_a_missing_plugin_is_named_with_the_path(tmp_path: Path) -> None:
    with pytest.raises(CNIError) as e:
        delegate.find_in_path("host-local", [str(tmp_path), "/nonexistent"])
    assert e.value.msg == f'failed to find plugin "host-local" in path [{tmp_path} /nonexistent]'


@pytest.mark.parametrize("name", ["../bin/sh", "/bin/sh", "", ".."])
def test_a_type_that_is_a_path_is_refused(name: str) -> None:
    with pytest.raises(CNIError, match="invalid plugin type"):
        delegate.find_in_path(name, ["/usr/lib/cni"])


def test_a_delegate_that_prints_garbage_is_reported(tmp_path: Path) -> None:
    script = tmp_path / "broken"
    script.write_text("#!/bin/sh\necho 'panic: nil map'\nexit 2\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(CNIError) as e:
        delegate.invoke(delegate.find_in_path("broken", [str(tmp_path)]), "ADD", dict(os.environ), b"{}", "1.0.0")
    assert e.value.msg == 'netplugin failed: "panic: nil map": exit status 2'


def test_the_delegate_gets_the_verb_environment_and_whole_config(tmp_path: Path) -> None:
    script = tmp_path / "echoer"
    script.write_text(
        '#!/bin/sh\nread -r conf\nprintf \'{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.9/24"}],"dns":{"domain":"%s-%s"}}\' "$CNI_COMMAND" "$CNI_IFNAME"\n'
    )
    script.chmod(0o755)
    result = delegate.invoke(
        delegate.find_in_path("echoer", [str(tmp_path)]),
        "ADD",
        {"CNI_IFNAME": "net1", "PATH": "/usr/bin:/bin"},
        b'{"x":1}\n',
        "1.0.0",
    )
    assert result is not None and result.dns == {"domain": "ADD-net1"}


def test_an_add_result_whose_addresses_cant_be_read_is_released_before_the_error(tmp_path: Path) -> None:
    """Addresses are read once, where the result is parsed (cni/result.py): a delegate's ADD result that
    can't be read still gets its DEL, as any failure after the IPAM's ADD does, so no lease is left."""
    calls = tmp_path / "calls"
    script = tmp_path / "badaddr"
    script.write_text(
        f'#!/bin/sh\ncat >/dev/null\necho "$CNI_COMMAND" >> {calls}\n'
        'if [ "$CNI_COMMAND" = ADD ]; then printf \'{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.300/24"}]}\'; fi\n'
    )
    script.chmod(0o755)
    req = Request("ADD", {"cniVersion": "1.0.0", "name": "n"}, "1.0.0", b"{}", "c1", "/x", "eth0", "", (str(tmp_path),))
    with pytest.raises(AddressError):
        delegate.Delegate(req, "badaddr").run("ADD")
    assert calls.read_text().split() == ["ADD", "DEL"]
