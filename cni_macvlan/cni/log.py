"""Debug logging to stderr (never stdout: stdout carries only the result or the error).

Off unless CNI_MACVLAN_DEBUG is set; the `logging` package stays off the exec path (10 ms).
"""

from __future__ import annotations

import os
import sys

ENABLED = bool(os.environ.get("CNI_MACVLAN_DEBUG"))


def debug(message: str) -> None:
    if ENABLED:
        sys.stderr.write(f"cni-macvlan[{os.getpid()}]: {message}\n")
