"""Logging: a file and a level from the config or the environment; stdout stays the result alone."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.configs import ipam_conf
from tests.support.runners import Runner


def conf(data_dir: Path, **top: object) -> dict:
    return ipam_conf(data_dir, "lognet", "10.1.2.0/24", top=top)


def test_a_log_file_from_the_config(host_local: Runner, data_dir: Path, tmp_path: Path) -> None:
    logfile = tmp_path / "cni.log"
    out = host_local("ADD", conf(data_dir, logFile=str(logfile)), container_id="c42")
    assert json.loads(out.stdout)["ips"][0]["address"] == "10.1.2.2/24", "stdout is the result alone"
    assert out.stderr == ""
    err = host_local("ADD", conf(data_dir, logFile=str(logfile)), container_id="c42")
    assert err.code == 1
    lines = logfile.read_text().splitlines()
    assert len(lines) == 2
    assert "INFO" in lines[0] and "host-local ADD container=c42 ifname=eth0" in lines[0] and "10.1.2.2/24" in lines[0]
    assert "ERROR" in lines[1] and "duplicate allocation" in lines[1]
    assert oct(logfile.stat().st_mode & 0o777) == "0o600"


def test_the_log_keys_are_found_as_every_config_key_is(host_local: Runner, data_dir: Path, tmp_path: Path) -> None:
    """Go's rule (cni/keys.py): an exact match first, else a key equal to it ignoring case."""
    logfile = tmp_path / "cni.log"
    host_local("ADD", conf(data_dir, LogFile=str(logfile), LOGLEVEL="error"), container_id="c1").ok()
    assert logfile.read_text() == "", "an info line is below the error level"
    host_local("ADD", conf(data_dir, LogFile=str(logfile), LOGLEVEL="info"), container_id="c2").ok()
    assert "INFO" in logfile.read_text()


def test_the_environment_wins_and_a_level_filters(host_local: Runner, data_dir: Path, tmp_path: Path) -> None:
    from_env, from_conf = tmp_path / "env.log", tmp_path / "conf.log"
    config = conf(data_dir, logFile=str(from_conf))
    host_local("ADD", config, CNI_MACVLAN_LOG_FILE=str(from_env), CNI_MACVLAN_LOG_LEVEL="error").ok()
    assert not from_conf.exists()
    assert from_env.read_text() == "", "an info line is below the error level"
    host_local("ADD", config, CNI_MACVLAN_LOG_FILE=str(from_env), CNI_MACVLAN_LOG_LEVEL="error")
    assert "ERROR" in from_env.read_text()


def test_no_log_settings_log_nothing(host_local: Runner, data_dir: Path) -> None:
    out = host_local("ADD", conf(data_dir))
    out.ok()
    assert out.stderr == ""


def test_an_unusable_log_file_does_not_fail_the_operation(host_local: Runner, data_dir: Path, tmp_path: Path) -> None:
    out = host_local("ADD", conf(data_dir, logFile=str(tmp_path / "no" / "such" / "dir.log")))
    out.ok()
