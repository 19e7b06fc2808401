"""Config key lookup with Go's rule: an exact match first, else a key equal to it ignoring case.

Go's encoding/json matches struct fields case-insensitively, so upstream plugins accept
``RuntimeConfig`` for ``runtimeConfig`` (upstream's own macvlan test sends it that way).
Also the one rule for a key naming a directory we write in (``ipam.dataDir``, ``stateDir``).
"""

from __future__ import annotations

from .errors import INVALID_CONFIG, CNIError

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


def directory(key: str, value: Any) -> str:
    """A directory path we write in: a string, without NUL, absolute (a relative one would depend on
    the runtime's working directory). Else a config error naming ``key``."""
    if not isinstance(value, str) or "\0" in value:
        raise CNIError(INVALID_CONFIG, f"{key} must be a directory path, got {value!r}")
    if not value.startswith("/"):
        raise CNIError(
            INVALID_CONFIG, f'{key} "{value}" is relative', "give an absolute path (a relative one depends on the cwd)"
        )
    return value
