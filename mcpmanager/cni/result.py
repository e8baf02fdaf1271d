"""Reading addresses out of a CNI result (any spec version)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["first_ip", "result_ips"]

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def result_ips(result: Mapping[str, Any] | None) -> list[str]:
    """Every address in ``result``, without prefix length, in the order given.

    Handles ``ips`` (spec 0.3.0 and later) and ``ip4``/``ip6`` (0.1.0, 0.2.0).
    """
    return [str(a) for a in _addresses(result or {})]


def first_ip(result: Mapping[str, Any] | None) -> str:
    """The first non-loopback address (IPv4 preferred) without prefix length; "" if none."""
    candidates = [a for a in _addresses(result or {}) if not a.is_loopback]
    for addr in candidates:
        if addr.version == 4:
            return str(addr)
    return str(candidates[0]) if candidates else ""


def _addresses(result: Mapping[str, Any]) -> Iterator[_Address]:
    entries: list[Any] = []
    ips = result.get("ips")
    if isinstance(ips, list):
        entries.extend(e.get("address") for e in ips if isinstance(e, Mapping))
    for key in ("ip4", "ip6"):
        legacy = result.get(key)
        if isinstance(legacy, Mapping):
            entries.append(legacy.get("ip"))
    for entry in entries:
        addr = _parse(entry)
        if addr is not None:
            yield addr


def _parse(value: object) -> _Address | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return ipaddress.ip_interface(value).ip
    except ValueError:
        return None
