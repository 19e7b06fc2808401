"""IP addresses and prefixes as plain integers: parsing, formatting and prefix arithmetic.

An address is ``(family, value)`` with family 4 or 6 and value an int. Parsing uses the C
``inet_pton`` (strict: no leading zeros, no zones), formatting follows Go's ``net.IP.String``
(RFC 5952 for IPv6), so files and results read the same as the upstream plugins'. This replaces
``ipaddress``/netaddr on the exec path: 0 ms of imports instead of 3 ms / 28 ms.
"""

from __future__ import annotations

from _socket import AF_INET, AF_INET6, inet_pton

BITS = {4: 32, 6: 128}


class AddressError(ValueError):
    pass


def parse_ip(text: str) -> tuple[int, int]:
    """'10.1.2.3' -> (4, 167838211); AddressError for anything else."""
    if not isinstance(text, str):
        raise AddressError(f"invalid IP address: {text!r}")
    try:
        if ":" in text:
            return 6, int.from_bytes(inet_pton(AF_INET6, text), "big")
        return 4, int.from_bytes(inet_pton(AF_INET, text), "big")
    except (OSError, ValueError):
        raise AddressError(f"invalid IP address: {text}") from None


def format_ip(family: int, value: int) -> str:
    if family == 4:
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
    groups = [(value >> (112 - 16 * i)) & 0xFFFF for i in range(8)]
    # the longest run of two or more zero groups is written as "::" (the first one on a tie)
    best_start, best_len, start = -1, 1, -1
    for i, g in enumerate([*groups, 1]):
        if g == 0:
            if start < 0:
                start = i
        elif start >= 0:
            if i - start > best_len:
                best_start, best_len = start, i - start
            start = -1
    if best_start < 0:
        return ":".join(f"{g:x}" for g in groups)
    head = ":".join(f"{g:x}" for g in groups[:best_start])
    tail = ":".join(f"{g:x}" for g in groups[best_start + best_len :])
    return f"{head}::{tail}"


def parse_cidr(text: str) -> tuple[int, int, int]:
    """'10.1.2.3/24' -> (family, address value, prefix length); the host bits are kept."""
    if not isinstance(text, str):
        raise AddressError(f"invalid CIDR address: {text!r}")
    addr, sep, plen = text.partition("/")
    if not sep or not plen.isdigit() or (len(plen) > 1 and plen[0] == "0"):
        raise AddressError(f"invalid CIDR address: {text}")
    try:
        family, value = parse_ip(addr)
    except AddressError:
        raise AddressError(f"invalid CIDR address: {text}") from None
    prefix = int(plen)
    if prefix > BITS[family]:
        raise AddressError(f"invalid CIDR address: {text}")
    return family, value, prefix


def parse_ip_or_cidr(text: str) -> tuple[int, int, int | None]:
    """An address with an optional '/prefix' (as CNI_ARGS IP= and args.cni.ips allow)."""
    if isinstance(text, str) and "/" in text:
        return parse_cidr(text)
    family, value = parse_ip(text)
    return family, value, None


def host_mask(family: int, prefix: int) -> int:
    return (1 << (BITS[family] - prefix)) - 1


def network(family: int, value: int, prefix: int) -> int:
    return value & ~host_mask(family, prefix)


def last_address(family: int, value: int, prefix: int) -> int:
    return value | host_mask(family, prefix)


def format_cidr(family: int, value: int, prefix: int) -> str:
    return f"{format_ip(family, value)}/{prefix}"
