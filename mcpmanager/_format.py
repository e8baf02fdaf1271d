"""Compact text forms of values for reprs: short strings, digests, times, type names.

Pure formatting of values already in memory: no I/O, no backend calls, and
nothing of the package's domain, so every module may use it.
"""

from __future__ import annotations

import enum
import html
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = [
    "MAX_ITEMS",
    "MAX_TEXT",
    "describe",
    "guarded",
    "named",
    "short",
    "short_digest",
    "short_time",
]

MAX_ITEMS = 4
"""Items of a mapping or sequence shown in a text repr before ``… +N more``."""
MAX_TEXT = 80
"""Characters of a string shown in a text repr before ``…``."""

_DIGEST = re.compile(r"(?P<algo>sha256|sha384|sha512):(?P<hex>[0-9a-f]{16,})")
DIGEST_HEX_SHOWN = 8
"""Hex digits of a digest shown in a table cell (``sha256:0123abcd…``); the rest is a tooltip."""


def short_digest(value: str) -> str:
    """``sha256:<64 hex>`` cut to ``sha256:0123abcd…``; any other text is returned as it is."""
    match = _DIGEST.fullmatch(value)
    if match is None:
        return value
    return f"{match['algo']}:{match['hex'][:DIGEST_HEX_SHOWN]}…"


def short_time(value: datetime | None) -> str:
    """A datetime to the second, ISO style (``2026-11-25 02:40:16+00:00``); None as ``None``."""
    if value is None:
        return "None"
    return value.isoformat(sep=" ", timespec="seconds")


def _more(shown: int, total: int) -> str:
    return f", … +{total - shown} more" if total > shown else ""


def short(value: object, max_items: int = MAX_ITEMS, max_text: int = MAX_TEXT) -> str:
    """A compact repr: long strings cut, at most ``max_items`` entries of containers.

    Meant as an attrs field ``repr=``; never raises.
    """
    try:
        return _short(value, max_items, max_text, depth=0)
    except Exception:
        return f"<{type(value).__name__}>"


def named(value: Sequence[object], max_items: int = MAX_ITEMS) -> str:
    """A sequence of named things (snapshots) as ``(N x: 'name', 'name', … +M more)``."""
    try:
        if not value:
            return "()"
        names = [short(getattr(v, "name", v), max_items) for v in value[:max_items]]
        kind = type(value[0]).__name__
        return f"({len(value)} x {kind}: " + ", ".join(names) + _more(len(names), len(value)) + ")"
    except Exception:
        return f"<{type(value).__name__}>"


def _short(value: object, max_items: int, max_text: int, depth: int) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= max_text else repr(value[:max_text]) + "…"
    if isinstance(value, datetime):
        return short_time(value)
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    inner_text = max(8, max_text // 2)
    if isinstance(value, Mapping):
        if depth > 1:
            return f"{{… {len(value)} items}}"
        items = list(value.items())
        shown = [
            f"{_short(k, max_items, inner_text, depth + 1)}: "
            f"{_short(v, max_items, inner_text, depth + 1)}"
            for k, v in items[:max_items]
        ]
        return "{" + ", ".join(shown) + _more(len(shown), len(items)) + "}"
    if isinstance(value, (tuple, list)):
        if depth > 1:
            return f"[… {len(value)} items]"
        shown = [_short(v, max_items, max_text, depth + 1) for v in value[:max_items]]
        body = ", ".join(shown) + _more(len(shown), len(value))
        if isinstance(value, list):
            return "[" + body + "]"
        return "(" + body + ("," if len(value) == 1 else "") + ")"
    text = repr(value)
    return text if len(text) <= 4 * max_text else text[: 4 * max_text] + "…"


def guarded(render: Callable[[], str], what: object, *, as_html: bool = False) -> str:
    """``render()``, or a short placeholder naming ``what``'s type if it raised."""
    try:
        return render()
    except Exception as exc:
        text = f"<{type(what).__name__} (cannot be shown: {type(exc).__name__})>"
        return f"<pre>{html.escape(text)}</pre>" if as_html else text


def describe(value: Any) -> str:
    """The type name of a value, or ``none`` for None (for one-line summaries)."""
    return "none" if value is None else type(value).__name__
