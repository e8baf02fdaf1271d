"""Errors reported by CNI plugins, as :mod:`mcpmanager.errors` classes.

A plugin that fails prints ``{"code": N, "msg": ..., "details": ...}`` on
stdout and exits non-zero. :class:`CNIError` keeps that code and the plugin's
name; the subclasses also derive from the generic error that fits the code, so
callers can catch ``InvalidArgument`` or ``Unavailable`` without knowing CNI.
"""

from __future__ import annotations

from .. import errors

__all__ = [
    "CODE_DECODING_FAILURE",
    "CODE_INCOMPATIBLE_VERSION",
    "CODE_INVALID_ENVIRONMENT",
    "CODE_INVALID_NETWORK_CONFIG",
    "CODE_IO_FAILURE",
    "CODE_NOT_AVAILABLE",
    "CODE_NOT_AVAILABLE_LIMITED",
    "CODE_TRY_AGAIN_LATER",
    "CODE_UNKNOWN_CONTAINER",
    "CODE_UNSUPPORTED_FIELD",
    "CNIContainerUnknown",
    "CNIError",
    "CNIInvalidConfig",
    "CNINotSupported",
    "CNITimeout",
    "CNIUnavailable",
    "cni_error",
]

CODE_INCOMPATIBLE_VERSION = 1
CODE_UNSUPPORTED_FIELD = 2
CODE_UNKNOWN_CONTAINER = 3
CODE_INVALID_ENVIRONMENT = 4
CODE_IO_FAILURE = 5
CODE_DECODING_FAILURE = 6
CODE_INVALID_NETWORK_CONFIG = 7
CODE_TRY_AGAIN_LATER = 11
CODE_NOT_AVAILABLE = 50
CODE_NOT_AVAILABLE_LIMITED = 51


class CNIError(errors.MCPManagerError):
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


class CNIInvalidConfig(CNIError, errors.InvalidArgument):
    """The plugin rejected its configuration or environment (codes 2, 4, 6, 7)."""


class CNIUnavailable(CNIError, errors.Unavailable):
    """The plugin asked to be tried again later, or is not available (11, 50, 51)."""


class CNIContainerUnknown(CNIError, errors.NotFound):
    """The plugin does not know the container or it does not exist (code 3)."""


class CNINotSupported(CNIError, errors.NotSupported):
    """The plugin does not support the configuration's CNI version (code 1)."""


class CNITimeout(CNIError, errors.DeadlineExceeded):
    """The plugin did not finish within its time limit and was killed."""


_CLASS_BY_CODE: dict[int, type[CNIError]] = {
    CODE_INCOMPATIBLE_VERSION: CNINotSupported,
    CODE_UNSUPPORTED_FIELD: CNIInvalidConfig,
    CODE_UNKNOWN_CONTAINER: CNIContainerUnknown,
    CODE_INVALID_ENVIRONMENT: CNIInvalidConfig,
    CODE_DECODING_FAILURE: CNIInvalidConfig,
    CODE_INVALID_NETWORK_CONFIG: CNIInvalidConfig,
    CODE_TRY_AGAIN_LATER: CNIUnavailable,
    CODE_NOT_AVAILABLE: CNIUnavailable,
    CODE_NOT_AVAILABLE_LIMITED: CNIUnavailable,
}


def cni_error(
    what: str, *, code: int, plugin: str, command: str, msg: str, details: str = ""
) -> CNIError:
    """Build the :class:`CNIError` subclass for ``code``; ``what`` names container and network."""
    cls = _CLASS_BY_CODE.get(code, CNIError)
    text = f"{what}: CNI plugin {plugin!r} failed ({command}): code {code}: {msg}"
    if details:
        text += f" ({details})"
    return cls(text, code=code, plugin=plugin, command=command, msg=msg, details=details)
