"""Config key lookup with Go's rule: an exact match first, else a key equal to it ignoring case.
Every key of a network config is read with it (``get`` for one, ``fields`` for the keys of one object).

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


def fields(obj: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The keys ``names`` of ``obj``, each found as ``get`` finds it, in one pass: name -> value for
    those present. How a config reader takes the keys of one object, once."""
    out: dict[str, Any] = {}
    folded: dict[str, Any] | None = None
    for name in names:
        if name in obj:
            out[name] = obj[name]
            continue
        if folded is None:
            folded = {}
            for k, v in obj.items():
                folded.setdefault(k.lower(), v)  # the first of a name ignoring case, as get
        lower = name.lower()
        if lower in folded:
            out[name] = folded[lower]
    return out


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
