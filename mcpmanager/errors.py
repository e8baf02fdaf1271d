"""The errors every public call of mcpmanager raises.

Backends translate their own failures (gRPC status codes, errno values, CNI
error codes, HTTP statuses, database errors) into these classes, so callers
handle one hierarchy whichever backend sits underneath.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "DataLossPrevented",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "MCPManagerError",
    "NotFound",
    "NotSupported",
    "RestartFailed",
    "Unavailable",
]


class MCPManagerError(Exception):
    """Base class of every error raised by mcpmanager."""


class NotFound(MCPManagerError):
    """The named object (bot, container, image, snapshot, version, file) does not exist."""


class AlreadyExists(MCPManagerError):
    """An object with that name exists already."""


class InvalidArgument(MCPManagerError, ValueError):
    """The caller passed a value that can never be valid (bad ID, path, archive, version)."""


class FailedPrecondition(MCPManagerError):
    """The call is valid but the system is not in a state that allows it now."""


class Unavailable(MCPManagerError):
    """A backend (daemon, registry, agent, database) could not be reached."""


class NotSupported(MCPManagerError):
    """The backend cannot do this; the Manager may take a fallback path."""


class DeadlineExceeded(MCPManagerError, TimeoutError):
    """The operation did not finish within its time limit."""


class DataLossPrevented(MCPManagerError):
    """An operation refused to go on because going on would lose data.

    The underlying failure is available as ``__cause__``.
    """


class RestartFailed(Unavailable):
    """A data operation finished, but the bot could not be started again after it.

    The data step's result stands (``completed`` names it, e.g. ``"import /data"``);
    the bot is left stopped, and the next :meth:`mcpmanager.Manager.start`
    brings it up.
    """

    def __init__(self, message: str, *, bot_id: str = "", completed: str = "") -> None:
        super().__init__(message)
        self.bot_id = bot_id
        self.completed = completed
