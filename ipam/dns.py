"""resolv.conf -> the result's ``dns`` object, as upstream host-local's ``resolvConf`` key does."""

from __future__ import annotations

import errno
import os
import stat

MAX_SIZE = 1 << 16  # a resolv.conf is a few lines; glibc reads at most a few KiB of it


def read_resolv_conf(path: str) -> str:
    """The file's text. It may be a symlink (/etc/resolv.conf often is), but must end at a regular
    file no larger than MAX_SIZE: a FIFO would stall the plugin, a device could feed it for ever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = os.read(fd, MAX_SIZE + 1)
        if len(data) > MAX_SIZE:
            raise OSError(errno.EFBIG, f"larger than {MAX_SIZE} bytes")
        return data.decode("utf-8")
    finally:
        os.close(fd)


def parse_resolv_conf(text: str) -> dict[str, object]:
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    domain = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        fields = line.split()
        key, values = fields[0], fields[1:]
        if key == "nameserver" and values:
            nameservers.append(values[0])
        elif key == "domain" and values:
            domain = values[0]
        elif key == "search":
            search.extend(values)
        elif key == "options":
            options.extend(values)
    dns: dict[str, object] = {}
    if nameservers:
        dns["nameservers"] = nameservers
    if domain:
        dns["domain"] = domain
    if search:
        dns["search"] = search
    if options:
        dns["options"] = options
    return dns
