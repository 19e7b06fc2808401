"""Logging for operators: a log file and a level from the config or the environment, never stdout.

stdout carries only the result or the CNI error. Log lines go to ``logFile`` (config key) or
``CNI_MACVLAN_LOG_FILE`` (environment, which wins), at ``logLevel`` / ``CNI_MACVLAN_LOG_LEVEL``
(debug, info, warning, error; default info when a file is set). Without a file nothing is logged,
except that ``CNI_MACVLAN_DEBUG=1`` sends debug lines to stderr. Each line is one ``write`` to a file
opened for appending, so lines of concurrent plugin runs never interleave. The ``logging`` package
stays off the exec path (10 ms of imports).
"""

from __future__ import annotations

import os
import time

from .keys import fields
from .statefile import open_regular

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}

# set per run by start() and configure(), never at import (the core's rule: cni/__init__.py)
_threshold = 100
_fd = -1
_context = ""


def start(plugin: str, env: Mapping[str, str]) -> None:
    """A run begins: debug lines to stderr if CNI_MACVLAN_DEBUG is set, nothing logged otherwise
    until configure() has read the config."""
    global _fd, _threshold, _context
    if _fd > 2:
        os.close(_fd)  # a previous run in this process (tests call handle() many times)
    _fd, _threshold = (2, 10) if env.get("CNI_MACVLAN_DEBUG") else (-1, 100)
    _context = f"{plugin} {env.get('CNI_COMMAND', '')} container={env.get('CNI_CONTAINERID', '')}"
    _context += f" ifname={env.get('CNI_IFNAME', '')}"


def configure(env: Mapping[str, str], config: dict[str, Any]) -> str:
    """Set the log file and level for this run from the config and the environment (which wins);
    the problem with the settings, if any."""
    global _fd, _threshold
    found = fields(config, ("logFile", "logLevel"))  # read as every config key is (keys.py)
    path = env.get("CNI_MACVLAN_LOG_FILE") or found.get("logFile") or ""
    level = str(env.get("CNI_MACVLAN_LOG_LEVEL") or found.get("logLevel") or "info").lower()
    problem = ""
    if level not in LEVELS:
        problem = f"unknown log level {level!r} (use debug, info, warning or error)"
        level = "info"
    if isinstance(path, str) and path and not path.startswith("/"):
        problem = f"log file {path!r} is relative: give an absolute path; not logging"
    elif isinstance(path, str) and path:
        try:
            _fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # no symlink, FIFO or device
            _threshold = LEVELS[level]
        except OSError as e:
            problem = f"cannot open log file {path!r}: {e.strerror}"
    return problem


def _emit(level: str, message: str) -> None:
    if LEVELS[level] < _threshold or _fd < 0:
        return
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    line = f"{stamp} {level.upper()} [{os.getpid()}] {_context}: {message}\n"
    try:
        os.write(_fd, line.encode("utf-8", "replace"))
    except OSError:
        pass  # logging never fails a CNI operation


def debug(message: str) -> None:
    _emit("debug", message)


def info(message: str) -> None:
    _emit("info", message)


def warning(message: str) -> None:
    _emit("warning", message)


def error(message: str) -> None:
    _emit("error", message)
