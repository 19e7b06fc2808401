"""The CNI skeleton: environment and config checks in libcni's order and wording, VERSION, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cni import cniargs, skel
from cni.errors import CNIError
from cni.result import IPConfig, Result
from tests.support.cni_schema import validate_error
from tests.support.layouts import ALL_VERSIONS
from tests.support.runners import cni_env

CONF = {"cniVersion": "1.0.0", "name": "mynet", "type": "test"}


def echo_add(req):
    return Result(ips=[IPConfig.text("10.0.0.2/24", "10.0.0.1")])


def boom(req):
    raise KeyError("surprise")


PLUGIN = skel.Plugin(
    "test",
    {"ADD": echo_add, "DEL": lambda r: None, "CHECK": lambda r: None, "GC": boom, "STATUS": lambda r: None},
)


def call(env: dict[str, str], conf: object = CONF) -> tuple[int, Any, str]:
    stdin = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    code, out, err = skel.handle(PLUGIN, env, stdin, "9.9")
    data = json.loads(out) if out else None
    if code:
        assert data is not None
        validate_error(data)
    return code, data, err


def test_no_command_prints_the_about_line_on_stderr() -> None:
    code, out, err = call({})
    assert (code, out) == (0, None)
    assert "CNI test plugin v9.9 (cni-macvlan)" in err and "0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0" in err


@pytest.mark.parametrize("asked", ["0.4.0", "", "9.9.9", "garbage"])
def test_version_answers_the_current_version_and_lists_every_supported_one(asked: str) -> None:
    """As libcni: the answer's cniVersion is the plugin's own, whatever the caller's config says."""
    stdin = b"garbage" if asked == "garbage" else json.dumps({"cniVersion": asked}).encode() if asked else b""
    code, out, _ = call({"CNI_COMMAND": "VERSION"}, stdin)
    assert code == 0
    assert out == {"cniVersion": "1.1.0", "supportedVersions": ALL_VERSIONS}


def test_unknown_command() -> None:
    code, out, _ = call(cni_env("FOO"))
    assert (code, out["code"], out["msg"]) == (1, 4, "unknown CNI_COMMAND: FOO")


@pytest.mark.parametrize(
    "command,drop,missing",
    [
        ("ADD", ["CNI_NETNS"], "CNI_NETNS"),
        ("ADD", ["CNI_IFNAME", "CNI_PATH"], "CNI_IFNAME,CNI_PATH"),
        ("DEL", ["CNI_CONTAINERID"], "CNI_CONTAINERID"),
        ("CHECK", ["CNI_NETNS"], "CNI_NETNS"),
        ("GC", ["CNI_PATH"], "CNI_PATH"),
    ],
)
def test_missing_environment_is_named(command: str, drop: list[str], missing: str) -> None:
    env = {k: v for k, v in cni_env(command).items() if k not in drop}
    code, out, _ = call(env)
    assert (code, out["code"], out["msg"]) == (1, 4, f"required env variables [{missing}] missing")


def test_del_needs_no_netns() -> None:
    env = cni_env("DEL")
    del env["CNI_NETNS"]
    assert call(env)[0] == 0


@pytest.mark.parametrize("stdin", [b"", b"{", b'{"cniVersion": "1.0.0",}', b"[1]", b"\xff\xfe"])
def test_undecodable_config_is_code_6(stdin: bytes) -> None:
    code, out, _ = call(cni_env("ADD"), stdin)
    assert (code, out["code"]) == (1, 6)
    assert out["msg"].startswith("error parsing network config")


@pytest.mark.parametrize("version", ["9.9.9", "1.0", 1, "0.2"])
def test_unknown_versions_are_code_1(version: object) -> None:
    code, out, _ = call(cni_env("ADD"), {**CONF, "cniVersion": version})
    assert (code, out["code"], out["msg"]) == (1, 1, "incompatible CNI versions")
    assert "plugin supports" in out["details"]


def test_missing_version_means_0_1_0() -> None:
    code, out, _ = call(cni_env("ADD"), {"name": "mynet"})
    assert code == 0
    assert out["cniVersion"] == "0.1.0" and out["ip4"]["ip"] == "10.0.0.2/24"


@pytest.mark.parametrize(
    "command,version", [("CHECK", "0.3.1"), ("GC", "1.0.0"), ("STATUS", "1.0.0"), ("CHECK", "0.1.0")]
)
def test_verbs_are_refused_below_their_version(command: str, version: str) -> None:
    code, out, _ = call(cni_env(command), {**CONF, "cniVersion": version})
    assert (code, out["code"], out["msg"]) == (1, 1, f"config version does not allow {command}")


@pytest.mark.parametrize(
    "name,code", [("", 7), ("-bad", 7), ("a/b", 7), ("../etc", 7), ("x y", 7), (5, 7), ("ok.name_1-2", 0)]
)
def test_network_names(name: object, code: int) -> None:
    _, out, _ = call(cni_env("ADD"), {**CONF, "name": name})
    assert (out or {}).get("code", 0) == code, out


@pytest.mark.parametrize("cid,code", [("abc", 0), ("a/b", 4), ("../x", 4), (".x", 4), ("a" * 300, 0), ("x\0y", 4)])
def test_container_ids(cid: str, code: int) -> None:
    _, out, _ = call(cni_env("ADD", container_id=cid))
    assert (out or {}).get("code", 0) == code, out


@pytest.mark.parametrize(
    "ifname,ok",
    [
        ("eth0", True),
        ("a" * 15, True),
        ("a" * 16, False),
        (".", False),
        ("..", False),
        ("a/b", False),
        ("a:b", False),
        ("a b", False),
        ("a\tb", False),
    ],
)
def test_interface_names(ifname: str, ok: bool) -> None:
    code, out, _ = call(cni_env("ADD", ifname=ifname))
    assert (code == 0) is ok
    if not ok:
        assert out["code"] == 4


def test_missing_container_id_is_code_3_when_set_but_empty_is_missing() -> None:
    env = cni_env("ADD", container_id="")
    _, out, _ = call(env)
    assert out["code"] == 4 and "CNI_CONTAINERID" in out["msg"]


def test_same_netns_as_the_plugin_is_refused_unless_overridden() -> None:
    code, out, _ = call(cni_env("ADD", CNI_NETNS="/proc/self/ns/net"))
    assert (code, out["code"]) == (1, 8)
    assert call(cni_env("ADD", CNI_NETNS="/proc/self/ns/net", CNI_NETNS_OVERRIDE="1"))[0] == 0


def test_an_unexpected_exception_is_a_cni_error_not_a_traceback() -> None:
    code, out, err = call(cni_env("GC"), {**CONF, "cniVersion": "1.1.0"})
    assert (code, out["code"]) == (1, 999)
    assert "KeyError" in out["details"]
    assert "Traceback" not in err


def test_errors_carry_the_config_version() -> None:
    _, out, _ = call(cni_env("ADD", ifname="a/b"), {**CONF, "cniVersion": "0.4.0"})
    assert out["cniVersion"] == "0.4.0"


# ---- CNI_ARGS ----


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("", {}),
        ("IP=10.0.0.5", {"IP": "10.0.0.5"}),
        ("IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.0.0.5", {"IP": "10.0.0.5"}),
        ("IgnoreUnknown=true;FOO=bar", {}),
        ("IgnoreUnknown=TRUE;FOO=bar;", {}),
        ("IP=10.0.0.5;", {"IP": "10.0.0.5"}),
    ],
)
def test_cni_args_accepted(raw: str, expected: dict[str, str]) -> None:
    assert cniargs.parse(raw, frozenset({"IP"})) == expected


@pytest.mark.parametrize(
    "raw,message",
    [
        ("FOO=bar", 'ARGS: unknown args ["FOO=bar"]'),
        ("IgnoreUnknown=0;FOO=bar", 'ARGS: unknown args ["FOO=bar"]'),
        ("garbage", 'ARGS: invalid pair "garbage"'),
        ("=x", 'ARGS: invalid pair "=x"'),
        ("ip=10.0.0.5", 'ARGS: unknown args ["ip=10.0.0.5"]'),
        ("IgnoreUnknown=maybe", "is not a boolean"),
    ],
)
def test_cni_args_refused(raw: str, message: str) -> None:
    with pytest.raises(CNIError) as e:
        cniargs.parse(raw, frozenset({"IP"}))
    assert e.value.code == 4
    assert message in e.value.msg
