"""CNI_ARGS: ``K=V;K=V`` pairs, parsed with libcni's rules.

Keys are case-sensitive. Each plugin declares the keys it understands; any other key is an error
unless ``IgnoreUnknown`` is true (runtimes and Multus always send it). Empty segments (a trailing
``;``) are tolerated, and a value may contain ``=`` (split on the first one, as Multus does).
"""

from __future__ import annotations

from .errors import INVALID_ENVIRONMENT, CNIError

_TRUE = {"1", "true"}
_FALSE = {"0", "false"}


def parse(raw: str, known: frozenset[str]) -> dict[str, str]:
    """Return the known pairs; raise CNIError (code 4) for a malformed pair or an unknown key."""
    pairs: dict[str, str] = {}
    unknown: list[str] = []
    ignore_unknown = False
    for segment in raw.split(";"):
        if not segment.strip():
            continue
        key, sep, value = segment.partition("=")
        if not sep or not key:
            raise CNIError(
                INVALID_ENVIRONMENT,
                f'ARGS: invalid pair "{segment}"',
                "CNI_ARGS must be KEY=VALUE pairs separated by ';'",
            )
        if key == "IgnoreUnknown":
            flag = value.strip().lower()
            if flag not in _TRUE | _FALSE:
                raise CNIError(
                    INVALID_ENVIRONMENT,
                    f"ARGS: IgnoreUnknown={value!r} is not a boolean",
                    "use IgnoreUnknown=1 or IgnoreUnknown=true",
                )
            ignore_unknown = flag in _TRUE
        elif key in known:
            pairs[key] = value
        else:
            unknown.append(segment)
    if unknown and not ignore_unknown:
        listed = " ".join(f'"{u}"' for u in unknown)
        raise CNIError(
            INVALID_ENVIRONMENT,
            f"ARGS: unknown args [{listed}]",
            f"known keys: {', '.join(sorted(known | {'IgnoreUnknown'}))}; add IgnoreUnknown=1 to pass others",
        )
    return pairs
