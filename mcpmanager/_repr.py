"""Compact text reprs and HTML tables for notebooks, shared by the value types and the Manager.

Everything here is pure formatting of values already in memory: no I/O, no
calls into a backend. The entry points used by ``_repr_html_`` methods never
raise; a value that cannot be shown becomes a short placeholder instead.
"""

from __future__ import annotations

import enum
import html
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .types import SnapshotInfo
    from .versions import BotSnapshotData, ManagedSnapshotMeta, VersionInfo

__all__ = [
    "MAX_ITEMS",
    "MAX_ROWS",
    "MAX_TEXT",
    "ManagerView",
    "StatusBoard",
    "bot_rows",
    "describe",
    "guarded",
    "html_table",
    "manager_html",
    "manager_text",
    "named",
    "short",
    "short_digest",
    "short_time",
    "snapshot_data_html",
    "versions_html",
]

MAX_ITEMS = 4
"""Items of a mapping or sequence shown in a text repr before ``… +N more``."""
MAX_TEXT = 80
"""Characters of a string shown in a text repr before ``…``."""
MAX_ROWS = 200
"""Rows of an HTML table shown before a closing ``… N more`` row."""


_DIGEST = re.compile(r"(?P<algo>sha256|sha384|sha512):(?P<hex>[0-9a-f]{16,})")
DIGEST_HEX_SHOWN = 8
"""Hex digits of a digest shown in a table cell (``sha256:0123abcd…``); the rest is a tooltip."""

_TABLE_STYLE = "border-collapse:collapse;max-width:100%"
_CELL_STYLE = "text-align:left;vertical-align:top;white-space:normal;overflow-wrap:anywhere"
"""Inline, so tables wrap long names instead of overflowing, whatever the page's CSS."""


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


def guarded(render: Callable[[], str], what: object, *, as_html: bool = False) -> str:
    """``render()``, or a short placeholder naming ``what``'s type if it raised."""
    try:
        return render()
    except Exception as exc:
        text = f"<{type(what).__name__} (cannot be shown: {type(exc).__name__})>"
        return f"<pre>{html.escape(text)}</pre>" if as_html else text


class StatusBoard:
    """What a Manager last saw of each bot (``running``, ``stopped``...), for its repr.

    Cheap and thread-safe; it never asks the backend. Bots noted as deleted are
    kept only for the last ``keep_deleted`` deletions, so the board stays small.
    """

    def __init__(self, keep_deleted: int = 32) -> None:
        self._mu = threading.Lock()
        self._status: dict[str, str] = {}
        self._deleted: OrderedDict[str, str] = OrderedDict()
        self._keep_deleted = keep_deleted

    def note(self, bot_id: str, status: str) -> None:
        """Record the bot's status; one starting with ``deleted`` moves it to the deleted list."""
        with self._mu:
            if status.startswith("deleted"):
                self._status.pop(bot_id, None)
                self._deleted[bot_id] = status
                self._deleted.move_to_end(bot_id)
                while len(self._deleted) > self._keep_deleted:
                    self._deleted.popitem(last=False)
            else:
                self._deleted.pop(bot_id, None)
                self._status[bot_id] = status

    def items(self) -> list[tuple[str, str]]:
        """(bot, status) of the live bots, then of the recently deleted ones."""
        with self._mu:
            return list(self._status.items()) + list(self._deleted.items())


def bot_rows(
    board: StatusBoard, ips: Mapping[str, str], prefix: str
) -> list[tuple[str, str, str, str]]:
    """(bot, container, status, ip) rows: bots on the board or in the IP cache, sorted."""
    status: dict[str, str] = dict(board.items())
    for bot in ips:
        status.setdefault(bot, "unknown")
    return [(bot, prefix + bot, status[bot], ips.get(bot, "")) for bot in sorted(status, key=str)]


class ManagerView(NamedTuple):
    """What a Manager's repr shows, copied out of it in one go."""

    backend: str
    image: str
    store: str
    closed: bool
    rows: list[tuple[str, str, str, str]]

    def shown_rows(self) -> list[tuple[str, str, str, str]]:
        """The rows to display: once closed, no bot is shown as running or with an IP.

        A closed Manager tracks nothing any more, so each status becomes what it
        last saw (``was running``) and the cached IPs, dropped by ``close()``, go.
        """
        if not self.closed:
            return self.rows
        return [(bot, cid, f"was {status}", "") for bot, cid, status, _ in self.rows]


MAX_BOTS_IN_TEXT = 8
"""Bots listed in a Manager's one-line text repr before ``… +N more``."""


def manager_text(view: ManagerView) -> str:
    """One line: backend, image, store, and each bot as ``bot (container, status, ip)``."""
    bots = [
        f"{bot} ({cid}, {status}{', ' + ip if ip else ''})"
        for bot, cid, status, ip in view.shown_rows()[:MAX_BOTS_IN_TEXT]
    ]
    listed = ", ".join(bots) + _more(len(bots), len(view.rows)) if bots else "none known"
    closed = " closed" if view.closed else ""
    return (
        f"<Manager{closed} on {view.backend} image={short(view.image)} store={view.store} "
        f"bots: {listed}>"
    )


def manager_html(view: ManagerView) -> str:
    """A heading line and a table of the bots (bot, container, status, IP), all escaped."""
    closed = " (closed)" if view.closed else ""
    e = html.escape
    head = (
        f"<p><b>Manager</b>{closed} on {e(view.backend)} · image <code>{e(view.image)}</code>"
        f" · store {e(view.store)} · {len(view.rows)} bot{'s' if len(view.rows) != 1 else ''}"
        " known</p>"
    )
    table = html_table(("bot", "container", "status", "IP"), view.shown_rows())
    if view.closed:
        note = "<p><small>Closed: each status is the last one seen before close().</small></p>"
    else:
        note = "<p><small>Status as this Manager last saw it; no backend calls.</small></p>"
    return f'<div class="mcpmanager">{head}{table}{note}</div>'


def versions_html(versions: Iterable[VersionInfo]) -> str:
    """Versions as a table: version, snapshot name, display name, runtime snapshot, created."""
    rows = [
        (v.version, v.snapshot_name, v.display_name, v.runtime_snapshot_name, v.created_at)
        for v in versions
    ]
    table = html_table(
        ("version", "snapshot name", "display name", "runtime snapshot", "created"), rows
    )
    return f'<div class="mcpmanager"><p><b>{len(rows)} version(s)</b></p>{table}</div>'


def snapshot_data_html(data: BotSnapshotData) -> str:
    """A bot's container (id, image, snapshot, labels) and its snapshotter's snapshots."""
    e = html.escape
    info = data.info
    label_rows = list(info.labels.items())
    head = (
        f"<p><b>{e(data.container_id)}</b> · image <code>{e(info.image)}</code>"
        f" · snapshot <code>{e(info.snapshot_key)}</code> on {e(data.snapshotter)}</p>"
    )
    label_table = html_table(("label", "value"), label_rows, limit=20) if label_rows else ""
    snaps = [
        _snapshot_row(snap, data.managed_meta.get(snap.name), info.snapshot_key)
        for snap in data.runtime_snapshots
    ]
    snap_table = html_table(
        ("snapshot", "kind", "parent", "created", "in use", "source", "version", "display name"),
        snaps,
    )
    return (
        f'<div class="mcpmanager">{head}{label_table}'
        f"<p>{len(snaps)} snapshot(s) in {e(data.snapshotter)}</p>{snap_table}</div>"
    )


def _snapshot_row(
    snap: SnapshotInfo, meta: ManagedSnapshotMeta | None, active: str
) -> tuple[object, ...]:
    in_use = "yes" if snap.name == active else ""
    if meta is None:
        return (snap.name, snap.kind, snap.parent, snap.created, in_use, "", "", "")
    return (
        snap.name,
        snap.kind,
        snap.parent,
        snap.created,
        in_use,
        meta.source,
        meta.version,
        meta.display_name,
    )


def describe(value: Any) -> str:
    """The type name of a value, or ``none`` for None (for one-line summaries)."""
    return "none" if value is None else type(value).__name__
