"""Re-export for launcher/ (cni_macvlan/cni/__init__.py): the module is cni/jsonio.py."""

from cni.jsonio import DecodeError, dumps, dumps_compact, loads

__all__ = ["DecodeError", "dumps", "dumps_compact", "loads"]
