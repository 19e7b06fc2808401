"""Re-export for launcher/ (cni_macvlan/cni/__init__.py): the module is cni/statefile.py."""

from cni.statefile import Locked, check_private, lock_exclusive, open_regular, read, write_atomic, write_new

__all__ = ["Locked", "check_private", "lock_exclusive", "open_regular", "read", "write_atomic", "write_new"]
