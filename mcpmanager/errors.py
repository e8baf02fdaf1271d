"""The errors every public call of mcpmanager raises.

Backends translate their own failures (gRPC status codes, errno values, CNI
error codes, HTTP statuses, database errors) into these classes, so callers
handle one hierarchy whichever backend sits underneath. Every public exception
class of the package is defined here; a class in brackets is a built-in base
as well, so ``except ValueError`` or ``except TimeoutError`` work too::

    MCPManagerError
    ├── NotFound
    │   └── CNIContainerUnknown (CNIError)
    ├── AlreadyExists
    ├── InvalidArgument [ValueError]
    │   └── CNIInvalidConfig (CNIError)
    ├── FailedPrecondition
    │   ├── PermissionDenied [PermissionError]
    │   └── RegistryAuthError
    ├── Unavailable
    │   ├── RestartFailed
    │   └── CNIUnavailable (CNIError)
    ├── NotSupported
    │   └── CNINotSupported (CNIError)
    ├── DeadlineExceeded [TimeoutError]
    │   ├── ExecTimedOut
    │   └── CNITimeout (CNIError)
    ├── DataLossPrevented
    ├── InvalidContent
    │   └── DigestMismatch
    └── CNIError
        └── CNIContainerUnknown, CNIInvalidConfig, CNIUnavailable,
            CNINotSupported, CNITimeout
"""

from __future__ import annotations

from typing import Protocol, TypeVar


class ExecOutcome(Protocol):
    """What a command left behind (:class:`mcpmanager.client.ExecResult` is one)."""

    @property
    def stdout(self) -> str:
        """Its standard output, decoded."""
        ...

    @property
    def stderr(self) -> str:
        """Its standard error, decoded."""
        ...

    @property
    def exit_code(self) -> int:
        """Its exit status."""
        ...


__all__ = [
    "AlreadyExists",
    "CNIContainerUnknown",
    "CNIError",
    "CNIInvalidConfig",
    "CNINotSupported",
    "CNITimeout",
    "CNIUnavailable",
    "DataLossPrevented",
    "DeadlineExceeded",
    "DigestMismatch",
    "ExecTimedOut",
    "FailedPrecondition",
    "InvalidArgument",
    "InvalidContent",
    "MCPManagerError",
    "NotFound",
    "NotSupported",
    "PermissionDenied",
    "RegistryAuthError",
    "RestartFailed",
    "Unavailable",
]


_E = TypeVar("_E", bound="MCPManagerError")


class MCPManagerError(Exception):
    """Base class of every error raised by mcpmanager.

    :meth:`with_context` prefixes the message with what was being done, on
    the exception itself, so its class and attributes (a CNI error's code and
    plugin, an exec's partial result) survive the trip up the stack.
    """

    _context: tuple[str, ...] = ()

    @property
    def context(self) -> tuple[str, ...]:
        """The prefixes added by :meth:`with_context`, outermost first."""
        return self._context

    def with_context(self: _E, prefix: str) -> _E:
        """Prefix ``prefix`` to the message of this very exception and return it.

        ``str(exc)`` becomes ``"<prefix>: <message>"``; ``args`` and every
        attribute stay as they were. Re-raise the result as it is (``raise
        exc.with_context(...)``): chaining it ``from`` itself adds nothing.
        An empty prefix changes nothing.
        """
        if prefix:
            self._context = (prefix, *self._context)
        return self

    def __str__(self) -> str:
        message = super().__str__()
        return ": ".join((*self._context, message)) if self._context else message


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


# --------------------------------------------------------------- the agent


class PermissionDenied(FailedPrecondition, PermissionError):
    """The agent refused access: file permissions, or a path outside the container.

    A :class:`FailedPrecondition` because the request is well formed and the
    refusal comes from the state of the container's files (permissions,
    ownership, where a symlink points), which can change; also a built-in
    :class:`PermissionError`, so ``except PermissionError`` catches it.
    """


class ExecTimedOut(DeadlineExceeded):
    """A command ran past its time limit and was killed with its process group.

    ``result`` carries what it wrote before that (for ``exec``; empty for
    ``exec_stream``, whose output was already handed out) and its exit code.
    """

    def __init__(self, message: str, result: ExecOutcome) -> None:
        super().__init__(message)
        self.result = result


# ---------------------------------------------------------- registries (OCI)


class InvalidContent(MCPManagerError):
    """A registry sent content that is malformed, oversized or not what was asked for.

    Not an ``InvalidArgument``: the caller's input was fine, the remote side
    (or something between) is at fault, and retrying may or may not help.
    """


class DigestMismatch(InvalidContent):
    """Received bytes do not hash to the digest (or size) they were fetched by."""


class RegistryAuthError(FailedPrecondition):
    """The registry refused our credentials (HTTP 401/403).

    A ``FailedPrecondition``: the request is valid but needs credentials (in
    ``~/.docker/config.json``) that are missing or wrong; retrying will not help.
    """


# ----------------------------------------------------------------------- CNI


class CNIError(MCPManagerError):
    """A CNI plugin failed.

    ``code`` is the plugin's CNI error code (0 when it gave none, e.g. it
    crashed or timed out), ``plugin`` its type (the executable's name),
    ``command`` ADD, DEL or CHECK, and ``msg``/``details`` what it reported.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int = 0,
        plugin: str = "",
        command: str = "",
        msg: str = "",
        details: str = "",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.plugin = plugin
        self.command = command
        self.msg = msg
        self.details = details


class CNIInvalidConfig(CNIError, InvalidArgument):
    """The plugin rejected its configuration or environment (codes 2, 4, 6, 7)."""


class CNIUnavailable(CNIError, Unavailable):
    """The plugin asked to be tried again later, or is not available (11, 50, 51)."""


class CNIContainerUnknown(CNIError, NotFound):
    """The plugin does not know the container or it does not exist (code 3)."""


class CNINotSupported(CNIError, NotSupported):
    """The plugin does not support the configuration's CNI version (code 1)."""


class CNITimeout(CNIError, DeadlineExceeded):
    """The plugin did not finish within its time limit and was killed."""
