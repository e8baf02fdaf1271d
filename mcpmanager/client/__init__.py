"""The in-container protocol, client side: talk to the agent in each bot's container.

:class:`Client` wraps the ``mcpcontainer.ContainerService`` gRPC API (files,
commands, raw transfers) of one agent; :class:`Pool` keeps one client per bot
and hands out :class:`BotClient` handles that follow a bot across restarts.
Failures are :mod:`mcpmanager.errors` exceptions.
"""

from __future__ import annotations

from .client import CHANNEL_OPTIONS, DEFAULT_TIMEOUT, EXEC_DEADLINE_MARGIN, Client, ExecStream
from .errors import ExecTimedOut, PermissionDenied
from .handle import BotClient
from .pool import CONNECTING_TIMEOUT, Pool
from .protocol import DEFAULT_EXEC_TIMEOUT, DEFAULT_PORT, DEFAULT_WORKDIR, RAW_CHUNK_SIZE
from .results import ExecChunk, ExecResult, FileEntry, ReadFileResult

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
