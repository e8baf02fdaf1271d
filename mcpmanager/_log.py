"""Logging with the bot ID on every record of the ``mcpmanager`` logger tree.

The Manager marks each bot operation with :func:`bot_context`. Every record
of a library logger then carries ``record.bot_id``: the ID of the bot being
worked on, or ``""`` when there is none (start-up, the store, an agent
thread). A formatter such as ``"%(name)s %(bot_id)s %(message)s"`` therefore
works on every record of the package; the message text itself never repeats
the bot.

Two pieces make that hold: :class:`BotLogger` (what :func:`get_logger` and
:func:`for_bot` return) puts the bot in ``extra``, and :class:`BotIdFilter`,
installed on every logger of the package (also those made with plain
``logging.getLogger``, such as the in-container agent's), fills in the current
bot, or ``""``, on records that lack it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, MutableMapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

__all__ = [
    "PACKAGE_LOGGERS",
    "BotIdFilter",
    "BotLogger",
    "bot_context",
    "current_bot",
    "for_bot",
    "get_logger",
    "install_bot_id_filter",
]

if TYPE_CHECKING:
    _Adapter = logging.LoggerAdapter[logging.Logger]
else:  # LoggerAdapter is subscriptable at run time only from Python 3.11
    _Adapter = logging.LoggerAdapter

_current_bot: ContextVar[str] = ContextVar("mcpmanager_bot", default="")

PACKAGE_LOGGERS = (
    "mcpmanager",
    "mcpmanager.agent",
    "mcpmanager.archive",
    "mcpmanager.containerd",
    "mcpmanager.containerd.cni",
    "mcpmanager.containerd.pull",
    "mcpmanager.data",
    "mcpmanager.fake",
    "mcpmanager.mounts",
    "mcpmanager.store",
    "mcpmanager.versions",
)
"""Every logger name the package logs on; each gets a :class:`BotIdFilter` at import.

A filter on a logger sees only the records logged on that very logger (not
those of its children), so each name must be listed; a test imports every
module and checks that no ``mcpmanager`` logger is missing the filter.
"""


def current_bot() -> str:
    """The bot whose operation is running in this context, or ``""``."""
    return _current_bot.get()


@contextlib.contextmanager
def bot_context(bot_id: str) -> Iterator[None]:
    """Mark the block as an operation on ``bot_id`` for every library logger."""
    token = _current_bot.set(bot_id)
    try:
        yield
    finally:
        _current_bot.reset(token)


class BotIdFilter(logging.Filter):
    """Gives a record without ``bot_id`` the current bot's ID, or ``""``; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Fill in ``record.bot_id`` when it is missing; always keep the record."""
        if not hasattr(record, "bot_id"):
            record.bot_id = _current_bot.get()
        return True


_FILTER = BotIdFilter()


def install_bot_id_filter(logger: logging.Logger) -> logging.Logger:
    """Add the package's :class:`BotIdFilter` to ``logger`` (once) and return it."""
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


class BotLogger(_Adapter):
    """Adds the bot (its own, or the current operation's) to ``extra`` as ``bot_id``."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        """Tag the record with the bot's ID, ``""`` when there is none; keep the text."""
        bot_id = (self.extra or {}).get("bot_id") or _current_bot.get()
        kwargs["extra"] = {**kwargs.get("extra", {}), "bot_id": bot_id}
        return msg, kwargs


def get_logger(name: str) -> BotLogger:
    """The logger of a library module; its records carry the current bot's ID."""
    return BotLogger(install_bot_id_filter(logging.getLogger(name)), {})


def for_bot(logger: logging.Logger, bot_id: str) -> BotLogger:
    """A logger adapter that tags every record with ``bot_id`` (``logger`` is left as it is)."""
    return BotLogger(logger, {"bot_id": bot_id})


for _name in PACKAGE_LOGGERS:
    install_bot_id_filter(logging.getLogger(_name))
del _name
