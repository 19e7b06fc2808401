"""The YAML that kubeconfig files are written in, parsed without PyYAML (not on the exec path).

Rule of membership: the one reader of kubeconfig text. kubectl, kubeadm and client-go write YAML;
YAML is a superset of JSON, so a JSON kubeconfig is read as JSON. What kubeconfigs use is read:
block mappings and block sequences (a sequence may sit at its key's indent, as kubectl writes it),
plain, single- and double-quoted scalars (folded over several lines too), ``|`` and ``>`` block
scalars, comments, JSON-style flow collections (``{}``, ``[]``, ``["a", "b"]``), one document
(``---`` and ``...`` markers). Plain scalars resolve as YAML 1.2's core schema: null, booleans,
integers, else strings. Anything else (anchors and aliases, tags, complex keys, several documents,
flow collections that are not JSON) is refused with its line number, never guessed at.
"""

from __future__ import annotations

from cni import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class YAMLError(ValueError):
    """Text this reader can't read; the message names the line."""


_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}


def loads(text: str) -> Any:
    """The document in ``text`` (YAML or JSON)."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return jsonio.loads(stripped.encode())
        except jsonio.DecodeError:
            pass  # a flow mapping that is YAML, not JSON: read below (and refused there)
    lines = _lines(text)
    if not lines:
        return None
    value, i = _block(lines, 0, lines[0][1])
    if i < len(lines):
        raise YAMLError(f"line {lines[i][0]}: unexpected text {lines[i][2][:40]!r} (bad indentation?)")
    return value


# A line: (number, indent, content without its comment), blank and comment lines dropped; block
# scalars need the raw lines too, so each keeps its raw text as well.
Line = tuple[int, int, str, str]


def _strip_comment(s: str) -> str:
    """``s`` without a trailing ``# comment`` (a # at the start or after a blank, outside quotes)."""
    quote = ""
    for i, ch in enumerate(s):
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"':
                pass
        elif ch in "\"'" and (i == 0 or s[i - 1] in " \t:[{,-"):
            quote = ch
        elif ch == "#" and (i == 0 or s[i - 1] in " \t"):
            return s[:i].rstrip()
    return s.rstrip()


def _lines(text: str) -> list[Line]:
    out: list[Line] = []
    started = False
    for n, raw in enumerate(text.splitlines(), 1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise YAMLError(f"line {n}: a tab in the indentation (YAML indents with spaces)")
        content = _strip_comment(raw.lstrip(" "))
        if not content:
            out.append((n, -1, "", raw))  # blank: kept for block scalars only
            continue
        if content.startswith("%"):
            raise YAMLError(f"line {n}: YAML directives are not supported")
        if content == "---" or content.startswith("--- "):
            if started:
                raise YAMLError(f"line {n}: a second YAML document: a kubeconfig is one")
            started = True
            rest = content[3:].strip()
            if not rest:
                continue
            content, raw = rest, rest
        if content == "...":
            break
        started = True
        out.append((n, len(raw) - len(raw.lstrip(" ")), content, raw))
    # blank lines at the ends carry nothing
    while out and out[-1][1] < 0:
        out.pop()
    while out and out[0][1] < 0:
        out.pop(0)
    return out


def _next(lines: list[Line], i: int) -> int:
    """The index of the first non-blank line at or after ``i``."""
    while i < len(lines) and lines[i][1] < 0:
        i += 1
    return i


def _is_item(content: str) -> bool:
    return content == "-" or content.startswith("- ")


def _split_key(content: str, n: int) -> tuple[str, str] | None:
    """``key: rest`` -> (key, rest); None when the line is not a mapping entry."""
    if content[0] in "\"'":
        quote = content[0]
        end = 1
        while True:
            end = content.find(quote, end)
            if end < 0:
                return None
            if quote == "'" and content[end + 1 : end + 2] == "'":
                end += 2
                continue
            if quote == '"' and content[end - 1] == "\\":
                end += 1
                continue
            break
        rest = content[end + 1 :]
        if not (rest == ":" or rest.startswith(": ")):
            return None
        return _scalar(content[: end + 1], n), rest[1:].strip()
    if content[0] in "[{":
        return None
    if content.startswith("? "):
        raise YAMLError(f"line {n}: complex mapping keys are not supported")
    pos = content.find(": ")
    if pos < 0:
        if not content.endswith(":"):
            return None
        pos = len(content) - 1
    key = content[:pos].rstrip()
    if not key:
        return None
    return key, content[pos + 1 :].strip()


def _block(lines: list[Line], i: int, indent: int) -> tuple[Any, int]:
    """The block node whose lines start at ``i`` with ``indent``; (value, the index after it)."""
    i = _next(lines, i)
    n, ind, content, _ = lines[i]
    if ind != indent:
        raise YAMLError(f"line {n}: bad indentation")
    if _is_item(content):
        return _sequence(lines, i, indent)
    if _split_key(content, n) is not None:
        return _mapping(lines, i, indent)
    return _flow_scalar(lines, i, indent - 1)


def _sequence(lines: list[Line], i: int, indent: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    while True:
        i = _next(lines, i)
        if i >= len(lines):
            return items, i
        n, ind, content, raw = lines[i]
        if ind != indent or not _is_item(content):
            if ind > indent:
                raise YAMLError(f"line {n}: bad indentation")
            return items, i
        rest = content[1:].lstrip(" ")
        if not rest:
            j = _next(lines, i + 1)
            if j < len(lines) and lines[j][1] > indent:
                value, i = _block(lines, j, lines[j][1])
            else:
                value, i = None, i + 1
        else:
            # the item's content as a line of its own, at its column: "- a: b" is a mapping there
            column = ind + len(content) - len(rest)
            lines = [*lines[:i], (n, column, rest, raw), *lines[i + 1 :]]
            value, i = _block(lines, i, column)
        items.append(value)


def _mapping(lines: list[Line], i: int, indent: int) -> tuple[dict[str, Any], int]:
    mapping: dict[str, Any] = {}
    while True:
        i = _next(lines, i)
        if i >= len(lines):
            return mapping, i
        n, ind, content, _ = lines[i]
        if ind < indent or (ind == indent and _is_item(content)):
            return mapping, i
        if ind > indent:
            raise YAMLError(f"line {n}: bad indentation")
        entry = _split_key(content, n)
        if entry is None:
            raise YAMLError(f"line {n}: expected 'key: value', got {content[:40]!r}")
        key, rest = entry
        if not isinstance(key, str):
            key = "" if key is None else str(key).lower() if isinstance(key, bool) else str(key)
        if key in mapping:
            raise YAMLError(f"line {n}: the key {key!r} twice")
        if rest and rest[0] in "|>":
            mapping[key], i = _block_scalar(lines, i, indent, rest)
        elif rest:
            lines = [*lines[:i], (n, ind, rest, rest), *lines[i + 1 :]]
            mapping[key], i = _flow_scalar(lines, i, indent)
        else:
            j = _next(lines, i + 1)
            if j < len(lines) and (lines[j][1] > indent or (lines[j][1] == indent and _is_item(lines[j][2]))):
                mapping[key], i = _block(lines, j, lines[j][1])
            else:
                mapping[key], i = None, i + 1


def _flow_scalar(lines: list[Line], i: int, parent: int) -> tuple[Any, int]:
    """A scalar (or a JSON-like flow collection) at line ``i``, continued on the following lines
    indented deeper than ``parent`` (YAML folds them with one space)."""
    n, _, text, _ = lines[i]
    i += 1
    while True:
        j = _next(lines, i)
        if j >= len(lines) or lines[j][1] <= parent:
            break
        text += " " + lines[j][2]
        i = j + 1
    return _scalar(text, n), i


def _block_scalar(lines: list[Line], i: int, indent: int, header: str) -> tuple[str, int]:
    """``|`` (literal) or ``>`` (folded), with an optional ``-``/``+`` chomping indicator."""
    n = lines[i][0]
    style, chomp = header[0], header[1:].strip()
    if chomp not in ("", "-", "+"):
        raise YAMLError(f"line {n}: block scalar header {header!r} is not supported (use | or >, - or +)")
    body: list[str] = []
    i += 1
    block_indent = -1
    while i < len(lines):
        _, ind, _, raw = lines[i]
        if ind >= 0:
            if block_indent < 0:
                block_indent = ind
            if ind < block_indent or ind <= indent:
                break
            body.append(raw[block_indent:])
        else:
            body.append("")
        i += 1
    while body and body[-1] == "":
        body.pop()
    if style == "|":
        text = "\n".join(body)
    else:
        text = ""
        for k, line in enumerate(body):
            if k == 0:
                text = line
            elif line == "" or body[k - 1] == "":
                text += "\n" + line if line else ""
            else:
                text += " " + line
    return text + ("" if chomp == "-" or not body else "\n"), i


def _scalar(text: str, n: int) -> Any:
    if text[0] == '"':
        if not text.endswith('"') or len(text) < 2:
            raise YAMLError(f"line {n}: an unterminated double-quoted string")
        try:
            return jsonio.loads(text.encode())
        except jsonio.DecodeError:
            raise YAMLError(f"line {n}: a double-quoted string with escapes this reader does not know") from None
    if text[0] == "'":
        if not text.endswith("'") or len(text) < 2:
            raise YAMLError(f"line {n}: an unterminated single-quoted string")
        return text[1:-1].replace("''", "'")
    if text[0] in "[{":
        try:
            return jsonio.loads(text.encode())
        except jsonio.DecodeError:
            raise YAMLError(
                f"line {n}: the flow collection {text[:40]!r} is not JSON: write it in block style"
            ) from None
    if text[0] in "&*!|>@`%":
        raise YAMLError(f"line {n}: {text[:40]!r}: anchors, aliases and tags are not supported")
    if text in _NULLS:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    digits = text[1:] if text[0] in "+-" else text
    if digits.isdigit() and digits.isascii():
        if len(digits) > 1 and digits[0] == "0":  # YAML 1.1 (PyYAML): 010 is octal; 08 is no number
            return int(text, 8) if all(c in "01234567" for c in digits) else text
        return int(text)
    return text
