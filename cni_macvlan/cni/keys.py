"""Config key lookup with Go's rule: an exact match first, else a key equal to it ignoring case.

Go's encoding/json matches struct fields case-insensitively, so upstream plugins accept
``RuntimeConfig`` for ``runtimeConfig`` (upstream's own macvlan test sends it that way).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def get(obj: dict[str, Any], key: str, default: Any = None) -> Any:
    if key in obj:
        return obj[key]
    lower = key.lower()
    for k, v in obj.items():
        if k.lower() == lower:
            return v
    return default
