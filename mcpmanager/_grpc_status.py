"""The one table from gRPC status codes to :mod:`mcpmanager.errors` classes.

Both gRPC peers of mcpmanager, containerd and the in-container agent, report
failures as status codes; the containerd backend and the agent client each
word their own message but take the class from :func:`error_class`, so a code
means the same error whichever side sent it.
"""

from __future__ import annotations

import grpc

from . import errors

__all__ = ["error_class", "status_of"]

_BY_CODE: dict[grpc.StatusCode, type[errors.MCPManagerError]] = {
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: errors.InvalidArgument,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.ABORTED: errors.Unavailable,
    grpc.StatusCode.CANCELLED: errors.Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceeded,
    grpc.StatusCode.UNIMPLEMENTED: errors.NotSupported,
}

# containerd passes a call's deadline on to its shims and reports their
# timeout as UNKNOWN with Go's context error text.
_DEADLINE_TEXT = "context deadline exceeded"


def error_class(code: grpc.StatusCode | None, details: str = "") -> type[errors.MCPManagerError]:
    """The error class for a failed call's status ``code`` (None: no status known).

    Codes without a closer meaning (INTERNAL, UNKNOWN, RESOURCE_EXHAUSTED...)
    give :class:`~mcpmanager.errors.MCPManagerError`, except a Go deadline
    reported as UNKNOWN, which is a :class:`~mcpmanager.errors.DeadlineExceeded`.
    """
    cls = _BY_CODE.get(code) if code is not None else None
    if cls is not None:
        return cls
    if _DEADLINE_TEXT in details:
        return errors.DeadlineExceeded
    return errors.MCPManagerError


def status_of(err: grpc.RpcError) -> tuple[grpc.StatusCode | None, str]:
    """The status code (None if ``err`` carries none) and details of a failed call."""
    return _code(err), _details(err)


def _code(err: grpc.RpcError) -> grpc.StatusCode | None:
    code = getattr(err, "code", None)
    if not callable(code):
        return None
    try:
        value = code()
    except Exception:
        return None
    return value if isinstance(value, grpc.StatusCode) else None


def _details(err: grpc.RpcError) -> str:
    details = getattr(err, "details", None)
    if not callable(details):
        return str(err)
    try:
        value = details()
    except Exception:
        return str(err)
    return str(value) if value else ""
