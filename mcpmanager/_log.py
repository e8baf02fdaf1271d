"""Logging with the bot ID in every record of a bot operation.

The Manager marks each bot operation with :func:`bot_context`; every library
logger made by :func:`get_logger` then adds that bot's ID to its records
(``record.bot_id``) and to the front of the message, whichever module logs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, MutableMapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

__all__ = ["BotLogger", "bot_context", "current_bot", "for_bot", "get_logger"]

if TYPE_CHECKING:
    _Adapter = logging.LoggerAdapter[logging.Logger]
else:  # LoggerAdapter is subscriptable at run time only from Python 3.11
    _Adapter = logging.LoggerAdapter

_current_bot: ContextVar[str] = ContextVar("mcpmanager_bot", default="")


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


class BotLogger(_Adapter):
    """Adds the bot (its own, or the current operation's) to ``extra`` and the message."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        """Tag the record with ``bot_id`` when there is one; leave it alone otherwise."""
        bot_id = (self.extra or {}).get("bot_id") or _current_bot.get()
        if not bot_id:
            return msg, kwargs
        kwargs["extra"] = {**kwargs.get("extra", {}), "bot_id": bot_id}
        return f"[bot {bot_id}] {msg}", kwargs


def get_logger(name: str) -> BotLogger:
    """The logger of a library module; its records carry the current bot's ID."""
    return BotLogger(logging.getLogger(name), {})


def for_bot(logger: logging.Logger, bot_id: str) -> BotLogger:
    """A logger adapter that tags every record with ``bot_id``."""
    return BotLogger(logger, {"bot_id": bot_id})
