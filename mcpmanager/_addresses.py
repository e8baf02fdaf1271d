"""The address book: each bot's container IP and the agent client made for it.

Reads of a known IP take no lock at all (a dict read is atomic); a change of
IP drops the bot's client, whose channel points at the old address.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import errors
from ._log import for_bot

if TYPE_CHECKING:
    from .client import Client, Pool

__all__ = ["AddressBook"]


class AddressBook:
    """Known container IPs by bot, and the pool of agent clients that dials them.

    ``resolve(bot_id)`` is what the pool asks for an address it does not
    know: the Manager's :meth:`~mcpmanager.Manager.container_ip`, which also
    recovers a lost IP.
    """

    def __init__(self, resolve: Callable[[str], str], port: int, logger: logging.Logger) -> None:
        self._resolve = resolve
        self._logger = logger
        self._port = port
        self._ips: dict[str, str] = {}
        self._ips_mu = threading.Lock()
        self._pool: Pool | None = None
        self._pool_mu = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    def ip(self, bot_id: str) -> str:
        """The cached IP of the bot, or ``""``; lock-free."""
        return self._ips.get(bot_id, "")

    def ips(self) -> dict[str, str]:
        """A copy of every cached IP."""
        with self._ips_mu:
            return dict(self._ips)

    def put(self, bot_id: str, ip: str) -> None:
        """Record the bot's IP; if it changed, its stale client is dropped."""
        if not ip:
            return
        with self._ips_mu:
            old = self._ips.get(bot_id, "")
            self._ips[bot_id] = ip
        if old and old != ip:
            self.evict(bot_id)
            log = for_bot(self._logger, bot_id)
            log.info("IP changed from %s to %s; dropped its client", old, ip)

    def forget(self, bot_id: str) -> None:
        """Drop the bot's IP and its client."""
        self.evict(bot_id)
        with self._ips_mu:
            self._ips.pop(bot_id, None)

    def client(self, bot_id: str) -> Client:
        """A client of the bot's agent that stays valid across restarts and IP changes.

        Each call on it uses the bot's current connection (dialled on first
        use); after :meth:`close` its calls raise FailedPrecondition.
        """
        return self._client_pool().handle(bot_id)

    def _client_pool(self) -> Pool:
        with self._pool_mu:
            if self._closed:
                raise errors.FailedPrecondition("this Manager is closed")
            if self._pool is None:
                from .client import Pool

                self._pool = Pool(self._resolve, port=self._port)
            return self._pool

    def evict(self, bot_id: str) -> None:
        """Close and drop the bot's client (the next :meth:`client` dials again)."""
        with self._pool_mu:
            pool = self._pool
        if pool is not None:
            pool.remove(bot_id)

    def close(self) -> bool:
        """Close every client; False if this book was already closed."""
        with self._pool_mu:
            if self._closed:
                return False
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        return True
