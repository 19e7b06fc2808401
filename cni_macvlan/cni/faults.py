"""Re-export for launcher/ (cni_macvlan/cni/__init__.py): the module is cni/faults.py."""

from cni.faults import step

__all__ = ["step"]
