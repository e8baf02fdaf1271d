"""HTML tables for notebooks: escaped, wrapping, and cut after a row limit."""

from __future__ import annotations

import enum
import html
from collections.abc import Iterable, Sequence
from datetime import datetime

from ._format import short_digest, short_time

__all__ = ["MAX_ROWS", "html_table"]

MAX_ROWS = 200
"""Rows of an HTML table shown before a closing ``… N more`` row."""

_TABLE_STYLE = "border-collapse:collapse;max-width:100%"
_CELL_STYLE = "text-align:left;vertical-align:top;white-space:normal;overflow-wrap:anywhere"
"""Inline, so tables wrap long names instead of overflowing, whatever the page's CSS."""


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return short_time(value)
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def html_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    limit: int = MAX_ROWS,
) -> str:
    """An HTML ``<table>``; every header and cell is escaped. Over ``limit`` rows are cut.

    Cells wrap rather than widen the table; a digest cell shows its first
    hex digits and keeps the full value as the cell's tooltip.
    """
    head = "".join(f'<th style="{_CELL_STYLE}">{html.escape(c)}</th>' for c in columns)
    body: list[str] = []
    extra = 0
    for row in rows:
        if len(body) >= limit:
            extra += 1
            continue
        cells = "".join(_td(_cell(v)) for v in row)
        body.append(f"<tr>{cells}</tr>")
    if extra:
        body.append(f'<tr><td colspan="{len(columns)}">… {extra} more</td></tr>')
    return (
        f'<table class="mcpmanager" style="{_TABLE_STYLE}">'
        f"<thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody>"
        "</table>"
    )


def _td(text: str) -> str:
    shown = short_digest(text)
    title = f' title="{html.escape(text)}"' if shown != text else ""
    return f'<td style="{_CELL_STYLE}"{title}>{html.escape(shown)}</td>'
