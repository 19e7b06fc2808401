"""Named crash points for the crash tests: ``CNI_MACVLAN_CRASH_AT=<step>`` makes the plugin kill itself
(SIGKILL, as `kill -9` would) when it reaches that step, so tests can prove that whatever a crash
leaves behind, the next DEL or GC cleans up. Costs one dict lookup per step when unset.
"""

from __future__ import annotations

import os

_AT = os.environ.get("CNI_MACVLAN_CRASH_AT", "")


def step(name: str) -> None:
    if name == _AT:
        os.kill(os.getpid(), 9)
