"""JSON decode and encode on the C accelerators of the stdlib, without importing the ``json`` package.

``import json`` pulls in ``re`` and ``enum`` (about 6 ms per exec, docs/design.md, "What stays off
the exec path"); ``_json`` alone costs 0.3 ms. Output mimics Go's ``json.MarshalIndent`` with four
spaces and no trailing newline, which is what the upstream plugins print.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class DecodeError(ValueError):
    """The input is not one complete JSON document."""


def _parse_constant(name: str) -> Any:
    raise DecodeError(f"{name} is not valid JSON")


class _Context:
    """The attributes ``_json.make_scanner`` reads from a decoder object."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_parse_constant)
    memo: dict[str, str] = {}


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]
_WHITESPACE = " \t\n\r"


def loads(data: bytes | str) -> Any:
    """Parse one JSON document; raise DecodeError with a position on anything else."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError(f"not UTF-8: {e}") from None
    else:
        text = data
    idx = 0
    end = len(text)
    while idx < end and text[idx] in _WHITESPACE:
        idx += 1
    if idx == end:
        raise DecodeError("unexpected end of JSON input")
    try:
        value, idx = _scan(text, idx)
    except StopIteration as e:
        raise DecodeError(f"invalid character at offset {e.value}") from None
    except SystemError:
        # The C scanner reports syntax errors through json.decoder.JSONDecodeError, which it looks up
        # in sys.modules only: load it (error path only) and scan again for the real message.
        import json.decoder  # noqa: F401

        return loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise DecodeError(str(e)) from None
    finally:
        _Context.memo.clear()
    while idx < end and text[idx] in _WHITESPACE:
        idx += 1
    if idx != end:
        raise DecodeError(f"invalid character after top-level value at offset {idx}")
    return value


_quote = _json.encode_basestring_ascii


def _dump(obj: Any, indent: str | None, out: list[str]) -> None:
    """Append obj's JSON to out: indented by four spaces per level, or on one line when indent is None."""
    if isinstance(obj, str):
        out.append(_quote(obj))
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif obj is None:
        out.append("null")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        out.append(float.__repr__(obj))
    elif isinstance(obj, (dict, list, tuple)):
        is_dict = isinstance(obj, dict)
        opening, closing = ("{", "}") if is_dict else ("[", "]")
        if not obj:
            out.append(opening + closing)
            return
        inner = None if indent is None else indent + "    "
        newline = "" if inner is None else "\n" + inner
        out.append(opening)
        items: Any = obj.items() if isinstance(obj, dict) else obj
        for i, item in enumerate(items):
            out.append(("," if i else "") + newline)
            if is_dict:
                out.append(_quote(str(item[0])))
                out.append(":" if inner is None else ": ")
                item = item[1]
            _dump(item, inner, out)
        out.append(closing if indent is None else "\n" + indent + closing)
    else:
        raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def dumps(obj: Any) -> str:
    """Indented JSON as Go's MarshalIndent(obj, "", "    ") prints it, without a trailing newline."""
    out: list[str] = []
    _dump(obj, "", out)
    return "".join(out)


def dumps_compact(obj: Any) -> str:
    """One-line JSON for files, logs and the stdin of delegated plugins."""
    out: list[str] = []
    _dump(obj, None, out)
    return "".join(out)
