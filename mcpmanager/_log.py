"""Logging with the bot ID in every record."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

__all__ = ["BotLogger", "for_bot"]

if TYPE_CHECKING:
    _Adapter = logging.LoggerAdapter[logging.Logger]
else:  # LoggerAdapter is subscriptable at run time only from Python 3.11
    _Adapter = logging.LoggerAdapter


class BotLogger(_Adapter):
    """Puts ``bot_id`` in each record's ``extra`` and at the front of its message."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        """Add the bot ID to the record (``record.bot_id``) and to the message text."""
        bot_id = self.extra["bot_id"] if self.extra else ""
        kwargs["extra"] = {**kwargs.get("extra", {}), "bot_id": bot_id}
        return f"[bot {bot_id}] {msg}", kwargs


def for_bot(logger: logging.Logger, bot_id: str) -> BotLogger:
    """A logger adapter that tags every record with ``bot_id``."""
    return BotLogger(logger, {"bot_id": bot_id})
