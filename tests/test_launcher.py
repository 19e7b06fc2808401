"""The launcher both layouts start with (launcher/cni-macvlan.c, launcher/_cni_boot.py).

A root executable on every node: whatever the environment it is exec'd with, it runs our code and
only ours, writes nothing but the plugin's own files, and hands delegates nothing of its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cni_macvlan import __version__
from tests.support import configs
from tests.support.layouts import PLUGIN_NAMES, dist_executable
from tests.support.runners import cni_env, json_bytes, run_exec

LAYOUTS = ["host-local", "fast/host-local"]


def ipam_conf(data_dir: Path, name: str = "launch") -> dict[str, object]:
    return configs.ipam_conf(data_dir, name, "10.66.0.0/29")


def test_a_single_file_runs_alone_and_unpacks_nothing(tmp_path: Path) -> None:
    """Copied on its own into an empty directory, the single file runs a full ADD/DEL, and leaves no
    file anywhere but its store (PyInstaller's onefile unpacked ~9 MB to $TMPDIR on every exec)."""
    bindir, tmp, store = tmp_path / "bin", tmp_path / "tmp", tmp_path / "store"
    for d in (bindir, tmp, store):
        d.mkdir()
    exe = bindir / "host-local"
    shutil.copy2(dist_executable("host-local"), exe)
    env = {"TMPDIR": str(tmp), "CNI_PATH": str(bindir)}
    added = run_exec(exe, cni_env("ADD", **env), json_bytes(ipam_conf(store)))
    assert added.code == 0, added.stdout
    assert added.json["ips"][0]["address"] == "10.66.0.2/29"
    assert sorted(p.name for p in (store / "launch").iterdir()) == ["10.66.0.2", "last_reserved_ip.0", "lock"]
    deleted = run_exec(exe, cni_env("DEL", **env), json_bytes(ipam_conf(store)))
    assert deleted.code == 0, deleted.stdout
    assert not (store / "launch" / "10.66.0.2").exists()
    assert list(tmp.iterdir()) == [], "nothing unpacked or written to TMPDIR"
    assert sorted(p.name for p in bindir.iterdir()) == ["host-local"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_python_environment_variables_are_ignored(tmp_path: Path, layout: str) -> None:
    """PYTHONPATH, PYTHONHOME, PYTHONSTARTUP & co. would let whoever sets a runtime's environment run
    code as root inside the plugin: the interpreter runs isolated and never reads them."""
    evil, marker, store = tmp_path / "evil", tmp_path / "pwned", tmp_path / "store"
    store.mkdir()
    plant = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    for module in ("cni_macvlan/__init__.py", "ipam/__init__.py", "_json.py", "_cni_boot.py", "encodings/__init__.py"):
        (evil / module).parent.mkdir(parents=True, exist_ok=True)
        (evil / module).write_text(plant)
    for module in ("sitecustomize.py", "usercustomize.py", "startup.py"):
        (evil / module).write_text(plant)
    hostile = {
        "PYTHONPATH": str(evil),
        "PYTHONHOME": str(evil),
        "PYTHONSTARTUP": str(evil / "startup.py"),
        "PYTHONUSERBASE": str(evil),
        "PYTHONINSPECT": "1",
        "PYTHONVERBOSE": "1",
        "PYTHONWARNINGS": "error",
        "PYTHONDONTWRITEBYTECODE": "",
        "PYTHONPYCACHEPREFIX": str(evil),
    }
    exe = dist_executable(layout)
    out = run_exec(exe, cni_env("ADD", **hostile), json_bytes(ipam_conf(store)))
    assert out.code == 0, out.stdout + out.stderr
    assert out.json["ips"][0]["address"] == "10.66.0.2/29"
    assert out.stderr == "", "no verbose import trace, no interactive prompt"
    assert not marker.exists(), f"planted code ran: {marker.read_text() if marker.exists() else ''}"
    assert not any(p.suffix == ".pyc" for p in evil.rglob("*")), "no bytecode written anywhere"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_utf8_without_any_locale(layout: str) -> None:
    """Runtimes often exec plugins with no locale at all: text is UTF-8 regardless, so a network
    name outside ASCII comes back intact in the error that refuses it."""
    exe = dist_executable(layout)
    conf = {"cniVersion": "1.0.0", "name": "réseau", "type": "host-local", "ipam": {"subnet": "10.66.0.0/29"}}
    proc = subprocess.run(
        [str(exe)],
        input=json.dumps(conf, ensure_ascii=False).encode(),
        env=cni_env("ADD"),  # no LANG, no LC_*
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 1
    error = json.loads(proc.stdout.decode("utf-8"))
    assert error["code"] == 4 or error["code"] == 7
    assert "réseau" in error["msg"] + error.get("details", "")


@pytest.mark.parametrize("layout", ["macvlan", "fast/macvlan"])
def test_an_unknown_plugin_name_exits_2_with_a_message(tmp_path: Path, layout: str) -> None:
    """The plugin is chosen by the name it is exec'd under; any other name is refused (exit code
    and message survive the launcher's fast exit)."""
    link = tmp_path / "bridge"
    link.symlink_to(dist_executable(layout).resolve())
    proc = subprocess.run([str(link)], env=cni_env("VERSION"), capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "unknown plugin name 'bridge'" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("layout", ["macvlan", "fast/macvlan"])
def test_a_delegate_inherits_no_descriptor_of_ours(tmp_path: Path, layout: str) -> None:
    """The single file loads extension modules from memory files; neither those nor any other
    descriptor of ours may leak into the IPAM it execs (only stdin, stdout and stderr)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "macvlan").symlink_to(dist_executable(layout).resolve())
    spy = bindir / "fdspy"
    spy.write_text(
        '#!/bin/sh\ncat >/dev/null\nls -l /proc/$$/fd > "$0.fds"\n'
        'printf \'{"cniVersion":"1.0.0","code":11,"msg":"spied"}\'\nexit 1\n'
    )
    spy.chmod(0o755)
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "macvlan", "master": "eth9", "ipam": {"type": "fdspy"}}
    out = run_exec(bindir / "macvlan", cni_env("DEL", CNI_PATH=str(bindir), CNI_NETNS=""), json_bytes(conf))
    assert out.code == 1 and out.json["msg"] == "spied", out.stdout
    listing = [line.split() for line in (bindir / "fdspy.fds").read_text().splitlines() if "->" in line]
    fds = {words[words.index("->") - 1]: words[-1] for words in listing}
    assert {fd for fd in fds if int(fd) < 10} == {"0", "1", "2"}, fds  # dash keeps its own at 10 and up
    assert not any("memfd" in target for target in fds.values())


def test_the_single_file_loads_extension_modules_from_memory() -> None:
    """_json (a C extension) cannot be imported from a zip member: the single file copies it into a
    memfd. Its output is the C encoder's (the pure-Python json is not shipped)."""
    exe = dist_executable("host-local")
    out = run_exec(exe, cni_env("VERSION"), b'{"cniVersion":"0.4.0"}')
    assert out.code == 0
    assert out.json == {
        "cniVersion": "1.1.0",
        "supportedVersions": ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    }
    assert os.path.getsize(exe) == os.path.getsize(dist_executable("macvlan")), "one program, two names"


@pytest.mark.netns
@pytest.mark.parametrize("layout", ["fast/macvlan", "macvlan"])
def test_every_module_of_ours_is_preloaded_for_add_check_and_del(lab, tmp_path: Path, layout: str) -> None:
    """build.spec records the modules each plugin imports; the launcher runs them before the plugin
    starts (launcher/_cni_boot.py, preload). A module of ours imported the slow way (through the
    import system: `-X importtime` lists it) is one the recorded order missed."""
    from tests.support.configs import macvlan_conf
    from tests.support.runners import MacvlanRunner

    run = MacvlanRunner(lab, dist_executable(layout).parent, "single")
    conf = macvlan_conf("preload", tmp_path / "leases", tmp_path / "state")
    c1 = lab.container("c1")
    slow: list[str] = []
    config: dict = conf
    for command in ("ADD", "CHECK", "DEL"):
        out = run(command, config, c1, CNI_MACVLAN_IMPORTTIME="1")
        assert out.code == 0, out.stdout
        if command == "ADD":
            config = {**conf, "prevResult": out.json}
        imported = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line]
        assert "encodings" in imported, "importtime is on (else this test proves nothing)"
        slow += [f"{command}: {name}" for name in imported if name.partition(".")[0] in ("cni", "cni_macvlan", "ipam")]
    assert slow == []


def version_of(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``argv --version`` with a stdin that never ends and no CNI variable: it must answer anyway."""
    with subprocess.Popen(
        [*argv, "--version"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        text=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=20)  # stdin stays open: a read of it would hang here
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("--version waited for its stdin") from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("name", PLUGIN_NAMES)
def test_version_prints_the_version_and_the_builds_identity_in_every_layout(name: str, zygote) -> None:
    """`<plugin> --version`: the version of cni_macvlan/__init__.py (the one source) and the build's
    identity, the same for the single file, the fast layout, a zygote's child and `cni-macvlan`
    itself; from source, "source". No stdin is read, no CNI variable needed."""
    lines = {}
    for layout, argv, env in [
        ("single", [str(dist_executable(name))], {"CNI_MACVLAN_ZYGOTE": ""}),
        ("fast", [str(dist_executable(f"fast/{name}"))], {"CNI_MACVLAN_ZYGOTE": ""}),
        ("zygote", [str(dist_executable(f"fast/{name}"))], {**zygote.env, "CNI_MACVLAN_DEBUG": "1"}),
        ("launcher", [str(dist_executable("cni-macvlan/cni-macvlan"))], {}),
        ("source", [sys.executable, "-m", "cni_macvlan", name], {}),
    ]:
        out = version_of(argv, env)
        assert out.returncode == 0, (layout, out.stderr)
        lines[layout] = out.stdout
        if layout == "zygote":
            assert f"run by the zygote {zygote.proc.pid}" in out.stderr
    identity = re.fullmatch(rf"{re.escape(name)} {re.escape(__version__)} \(build ([0-9a-f]{{12}})\)\n", lines["fast"])
    assert identity, lines["fast"]
    assert lines["single"] == lines["zygote"] == lines["fast"]
    assert lines["launcher"] == f"cni-macvlan {__version__} (build {identity.group(1)})\n"
    assert lines["source"] == f"{name} {__version__} (build source)\n"


def test_without_cni_command_the_about_text_goes_to_stderr() -> None:
    """No CNI_COMMAND and no argument: the "about" text on stderr, as before --version existed."""
    out = subprocess.run(
        [str(dist_executable("fast/macvlan"))], env={"CNI_MACVLAN_ZYGOTE": ""}, capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout == ""
    assert out.stderr.startswith(f"CNI macvlan plugin v{__version__} (cni-macvlan)\n")
