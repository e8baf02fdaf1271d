"""A bot's client that stays valid while its pool is open: :class:`BotClient`."""

from __future__ import annotations

from typing import Any, Protocol

from .client import Client

__all__ = ["BotClient", "Connections"]


class Connections(Protocol):
    """Where a :class:`BotClient` gets the bot's current client (a :class:`Pool`)."""

    @property
    def closed(self) -> bool:
        """True once no more connections are handed out."""
        ...

    def connection(self, bot_id: str) -> Client:
        """The bot's current client, for one call."""
        ...


class BotClient(Client):
    """A :class:`Client` of one bot that finds the bot's agent anew for every call.

    Each call asks the :class:`~mcpmanager.client.Pool` for the bot's current
    connection, so a saved client keeps working after the bot restarts, is
    replaced, or changes IP. A call raises
    :class:`~mcpmanager.errors.FailedPrecondition` once the pool is closed
    (its Manager was closed) and :class:`~mcpmanager.errors.Unavailable`,
    naming the bot, while the bot has no address. :meth:`close` does nothing:
    the pool owns the connections, and other holders share this client.
    """

    # Client.__init__ is not called on purpose: a BotClient owns no channel.
    def __init__(self, pool: Connections, bot_id: str) -> None:
        self._pool = pool
        self._bot_id = bot_id
        self._target = ""
        self._owns_channel = False
        self._closed = False
        self._stub = _ResolvingStub(self)

    @property
    def target(self) -> str:
        """The address of the bot's agent at the last call ("" before the first)."""
        return self._target

    @property
    def closed(self) -> bool:
        """True once the pool (the Manager) is closed: calls then fail."""
        return self._pool.closed

    def close(self) -> None:
        """Nothing to do: the pool owns the connection (see the class docstring)."""

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        where = f" at {self._target}" if self._target else ""
        return f"<BotClient {self._subject()}{where} ({state})>"

    def _connection(self) -> Client:
        client = self._pool.connection(self._bot_id)
        self._target = client.target
        return client

    def _invoke(self, method: str, variant: str, args: Any, kwargs: Any) -> Any:
        """Start an RPC on the bot's current channel.

        A channel closed between looking it up and starting the call (the pool
        replaced it) sent nothing, so the call is started again on the new one.
        """
        for attempt in (1, 2):
            client = self._connection()
            func = getattr(client._stub, method)
            if variant:
                func = getattr(func, variant)
            try:
                return func(*args, **kwargs)
            except ValueError:
                if attempt == 2 or not client.closed:
                    raise
        raise AssertionError("unreachable")


class _ResolvingStub:
    """Stands for a generated stub: each method runs on the bot's current channel."""

    def __init__(self, handle: BotClient) -> None:
        self._handle = handle

    def __getattr__(self, name: str) -> _ResolvingMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _ResolvingMethod(self._handle, name)


class _ResolvingMethod:
    """One stub method: call it, or its ``future`` (client-streaming uploads)."""

    def __init__(self, handle: BotClient, name: str) -> None:
        self._handle = handle
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._handle._invoke(self._name, "", args, kwargs)

    def future(self, *args: Any, **kwargs: Any) -> Any:
        return self._handle._invoke(self._name, "future", args, kwargs)
