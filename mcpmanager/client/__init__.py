"""The in-container protocol, client side: talk to the agent in each bot's container.

:class:`Client` wraps the ``mcpcontainer.ContainerService`` gRPC API (files,
commands, raw transfers) of one agent; :class:`Pool` keeps one client per bot
and hands out :class:`BotClient` handles that follow a bot across restarts.
Failures are :mod:`mcpmanager.errors` exceptions.

The names below load on first use (PEP 562): the agent imports this package's
generated protocol modules without loading the client, the pool and attrs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .client import CHANNEL_OPTIONS, DEFAULT_TIMEOUT, Client
    from .errors import ExecTimedOut, PermissionDenied
    from .exec import EXEC_DEADLINE_MARGIN, ExecStream
    from .handle import BotClient
    from .pool import CONNECTING_TIMEOUT, Pool
    from .protocol import DEFAULT_EXEC_TIMEOUT, DEFAULT_PORT, DEFAULT_WORKDIR, RAW_CHUNK_SIZE
    from .results import ExecChunk, ExecResult, FileEntry, ReadFileResult

#: Where each public name lives: ``name -> submodule``.
_EXPORTS: dict[str, str] = {
    "CHANNEL_OPTIONS": "client",
    "CONNECTING_TIMEOUT": "pool",
    "DEFAULT_EXEC_TIMEOUT": "protocol",
    "DEFAULT_PORT": "protocol",
    "DEFAULT_TIMEOUT": "client",
    "DEFAULT_WORKDIR": "protocol",
    "EXEC_DEADLINE_MARGIN": "exec",
    "RAW_CHUNK_SIZE": "protocol",
    "BotClient": "handle",
    "Client": "client",
    "ExecChunk": "results",
    "ExecResult": "results",
    "ExecStream": "exec",
    "ExecTimedOut": "errors",
    "FileEntry": "results",
    "PermissionDenied": "errors",
    "Pool": "pool",
    "ReadFileResult": "results",
}

__all__ = [
    "CHANNEL_OPTIONS",
    "CONNECTING_TIMEOUT",
    "DEFAULT_EXEC_TIMEOUT",
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WORKDIR",
    "EXEC_DEADLINE_MARGIN",
    "RAW_CHUNK_SIZE",
    "BotClient",
    "Client",
    "ExecChunk",
    "ExecResult",
    "ExecStream",
    "ExecTimedOut",
    "FileEntry",
    "PermissionDenied",
    "Pool",
    "ReadFileResult",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), __all__)
