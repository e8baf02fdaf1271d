"""Errors reported by CNI plugins, as :mod:`mcpmanager.errors` classes.

A plugin that fails prints ``{"code": N, "msg": ..., "details": ...}`` on
stdout and exits non-zero. :class:`CNIError` keeps that code and the plugin's
name; the subclasses also derive from the generic error that fits the code, so
callers can catch ``InvalidArgument`` or ``Unavailable`` without knowing CNI.
The classes live in :mod:`mcpmanager.errors`; they are re-exported here.
"""

from __future__ import annotations

from ..errors import (
    CNIContainerUnknown,
    CNIError,
    CNIInvalidConfig,
    CNINotSupported,
    CNITimeout,
    CNIUnavailable,
)

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
