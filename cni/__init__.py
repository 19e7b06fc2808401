"""The CNI protocol core every plugin stands on: the request (environment and stdin), versions,
results, errors, CNI_ARGS, IP math, JSON, config keys, delegation, the skeleton, the log, the state
files' primitive and the crash points.

The bottom layer (tests/test_layers.py): it imports nothing of ours, and the IPAM (``ipam``) and the
link plugins (``cni_macvlan``) stand on it. A plugin it runs in-process (delegate.py) it knows only
by the module name the entry point registers.

Rules of membership, for this package and every module of ours on the exec path:
- nothing here knows about macvlan or address allocation, and nothing imports a third-party package;
- every module is on the exec path of every plugin call, so each imports only C built-ins and small
  stdlib modules (docs/design.md, "What stays off the exec path");
- no module reads the environment at import time: a zygote's child (launcher/_cni_zygote.py) gets
  its environment after our modules were loaded, so each run reads it when it starts (skel.handle,
  log.start, faults.step).
"""
