"""The status board: what a Manager last saw of each bot, and how its repr shows it.

It never asks the backend: the Manager notes each status as it goes, and the
reprs read the board and the IP cache only.
"""

from __future__ import annotations

import html
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import NamedTuple

from ._format import _more, short
from ._html import html_table

__all__ = [
    "MAX_BOTS_IN_TEXT",
    "ManagerView",
    "StatusBoard",
    "bot_rows",
    "manager_html",
    "manager_text",
]


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
