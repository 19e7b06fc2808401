"""Which CNI spec versions we speak and which verbs each allows.

The result schema of each version lives in result.py; this file only answers "is this version
known" and "may this verb run under it".
"""

from __future__ import annotations

SUPPORTED: tuple[str, ...] = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT = "1.1.0"

# verb -> the first spec version that defines it
VERB_SINCE: dict[str, str] = {
    "ADD": "0.1.0",
    "DEL": "0.1.0",
    "VERSION": "0.2.0",
    "CHECK": "0.4.0",
    "GC": "1.1.0",
    "STATUS": "1.1.0",
}


def parse(version: str) -> tuple[int, int, int]:
    """'0.3.1' -> (0, 3, 1); ValueError for anything that is not three dot-separated integers."""
    parts = version.split(".")
    if len(parts) != 3:
        raise ValueError(f"invalid version {version!r}")
    major, minor, patch = (int(p) for p in parts)
    return major, minor, patch


def at_least(version: str, minimum: str) -> bool:
    return parse(version) >= parse(minimum)


def supported_list() -> str:
    """The list as Go's %q formatting of a []string prints it, for messages that mirror libcni's."""
    return "[" + " ".join(f'"{v}"' for v in SUPPORTED) + "]"
