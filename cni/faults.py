"""Named crash points for the crash tests: ``CNI_MACVLAN_CRASH_AT=<step>`` makes the plugin kill itself
(SIGKILL, as `kill -9` would) when it reaches that step, so tests can prove that whatever a crash
leaves behind, the next DEL or GC cleans up. Costs one string comparison per step when unset.

Steps: macvlan and ipvlan ADD ``parent-recorded``, ``parent-created`` (cni_macvlan/links/parents.py),
``parent-acquired``, ``link-created``, ``ipam-added`` (cni_macvlan/attach/verbs.py); host-local
``lease-written`` (the temporary file, before it is linked to its address) and ``lease-reserved``
(before last_reserved_ip is updated) (ipam/disk.py).
"""

from __future__ import annotations

import os


def step(name: str) -> None:
    # read at each step, not at import: a zygote's child (launcher/_cni_zygote.py) gets its
    # environment after our modules were loaded
    if name == os.environ.get("CNI_MACVLAN_CRASH_AT"):
        os.kill(os.getpid(), 9)
