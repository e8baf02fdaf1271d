"""One cached client per bot, replaced when its channel has gone bad."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable

import attrs
import grpc

from .. import errors
from .client import Client
from .handle import BotClient
from .protocol import DEFAULT_PORT

__all__ = ["CONNECTING_TIMEOUT", "Pool"]

#: Seconds a channel may stay CONNECTING before the next ``get`` replaces it.
CONNECTING_TIMEOUT = 30.0

_clock = time.monotonic  # seconds; replaceable so tests need not wait

# A failed dial raced with remove(): look the address up again at most this often.
_MAX_REDIALS = 3


@attrs.define
class _Dial:
    """Serializes the first calls for one bot, so its channel is made once."""

    lock: threading.Lock = attrs.field(factory=threading.Lock)
    users: int = 0
    invalidated: bool = False


class Pool:
    """Clients for the agents of many bots, keyed by bot ID.

    ``ip_func(bot_id)`` gives the bot's container IP, or ``""`` when it is not
    known (then :meth:`get` raises Unavailable). The first :meth:`get` for a
    bot makes its client; later ones return the same client until its channel
    is in TRANSIENT_FAILURE or SHUTDOWN, or has been CONNECTING for more than
    30 s, when it is closed and replaced. Threads asking for the same bot at
    once dial once; different bots never wait on each other (the pool's own
    lock only guards its maps: address look-ups, dials, channel state checks
    and closes all happen outside it).

    The pool stays usable after :meth:`close_all`, like memoh's.
    """

    def __init__(self, ip_func: Callable[[str], str], port: int = DEFAULT_PORT) -> None:
        self._ip_func = ip_func
        self._port = port
        self._lock = threading.Lock()
        self._clients: dict[str, Client] = {}
        self._dials: dict[str, _Dial] = {}
        self._handles: weakref.WeakValueDictionary[str, BotClient] = weakref.WeakValueDictionary()
        self._closed = False

    @property
    def port(self) -> int:
        """The agents' port."""
        return self._port

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def handle(self, bot_id: str) -> Client:
        """A client of the bot that stays valid while the pool is open (a :class:`BotClient`).

        Checks now that the bot can be dialled (Unavailable naming the bot if
        it has no IP); every call on it then uses the bot's current client.
        The same object is returned for a bot while anyone holds it.
        """
        self.get(bot_id)
        with self._lock:
            handle = self._handles.get(bot_id)
            if handle is None:
                handle = BotClient(self, bot_id)
                self._handles[bot_id] = handle
            return handle

    def connection(self, bot_id: str) -> Client:
        """The bot's current client, for one call of a :class:`BotClient`."""
        return self.get(bot_id)

    def get(self, bot_id: str) -> Client:
        """The bot's client, made (or remade) when needed.

        Raises FailedPrecondition after :meth:`close`, Unavailable when the
        bot has no IP.
        """
        with self._lock:
            self._check_open(bot_id)
            client = self._clients.get(bot_id)
        # The channel's state is asked outside the pool's lock: other bots never wait on it.
        if client is not None and not _stale(client):
            return client
        with self._lock:
            self._check_open(bot_id)
            dial = self._dials.get(bot_id)
            if dial is None:
                dial = self._dials[bot_id] = _Dial()
            dial.users += 1
        try:
            with dial.lock:
                return self._dial(bot_id, dial)
        finally:
            with self._lock:
                dial.users -= 1
                if dial.users == 0 and self._dials.get(bot_id) is dial:
                    del self._dials[bot_id]

    def _dial(self, bot_id: str, dial: _Dial) -> Client:
        with self._lock:
            client = self._clients.get(bot_id)
        if client is not None:
            if not _stale(client):
                return client
            with self._lock:
                # Unless remove() took it meanwhile (and closes it itself), it is ours to drop.
                mine = self._clients.get(bot_id) is client
                if mine:
                    del self._clients[bot_id]
            if mine:
                client.close()
        for _ in range(_MAX_REDIALS):
            dial.invalidated = False
            with self._lock:
                self._check_open(bot_id)
            ip = self._ip_func(bot_id)
            if not ip:
                raise errors.Unavailable(
                    f"bot {bot_id}: no IP known for its container (is it running?)"
                )
            client = Client(_target(ip, self._port), bot_id=bot_id)
            with self._lock:
                if not dial.invalidated and not self._closed:
                    self._clients[bot_id] = client
                    return client
            client.close()  # removed while we looked the address up: look again
        raise errors.Unavailable(f"bot {bot_id}: its client kept being removed while dialing")

    def remove(self, bot_id: str) -> None:
        """Close and forget the bot's client (a dial in progress looks the IP up again)."""
        with self._lock:
            client = self._clients.pop(bot_id, None)
            dial = self._dials.get(bot_id)
            if dial is not None:
                dial.invalidated = True
        if client is not None:
            client.close()

    def close_all(self) -> None:
        """Close and forget every client."""
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
            for dial in self._dials.values():
                dial.invalidated = True
        for client in clients:
            client.close()

    def close(self) -> None:
        """Close every client for good: later calls (handles included) fail.

        They raise FailedPrecondition "the Manager is closed", as this is what
        closing a Manager does to its pool. Idempotent.
        """
        with self._lock:
            self._closed = True
        self.close_all()

    def _check_open(self, bot_id: str) -> None:
        if self._closed:
            raise errors.FailedPrecondition(
                f"bot {bot_id}: the Manager is closed (its client pool is shut down)"
            )

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)

    def __contains__(self, bot_id: object) -> bool:
        with self._lock:
            return bot_id in self._clients


def _target(ip: str, port: int) -> str:
    if ":" in ip and not ip.startswith("["):
        return f"[{ip}]:{port}"
    return f"{ip}:{port}"


def _stale(client: Client) -> bool:
    """Whether a cached client must be replaced; records when it was last seen settled."""
    if client.closed:
        return True
    state = client._connectivity()
    now = _clock()
    if state in (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN):
        return True
    if state is grpc.ChannelConnectivity.CONNECTING:
        return now - client._not_connecting_at > CONNECTING_TIMEOUT
    client._not_connecting_at = now
    return False
