"""Errors of the in-container protocol, and the mapping of gRPC failures onto them.

The agent reports failures as gRPC status codes; :func:`map_rpc_error` turns
each into the matching :mod:`mcpmanager.errors` class (``PermissionDenied``
and ``ExecTimedOut`` are defined there and re-exported here) with a message that
names the bot (or the agent's address), the operation and its path.
"""

from __future__ import annotations

import grpc

from .. import errors
from ..errors import ExecTimedOut, PermissionDenied

__all__ = ["ExecTimedOut", "PermissionDenied", "map_rpc_error"]


_BY_CODE: dict[grpc.StatusCode, type[errors.MCPManagerError]] = {
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: errors.InvalidArgument,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.ABORTED: errors.Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceeded,
    grpc.StatusCode.UNIMPLEMENTED: errors.NotSupported,
}


def map_rpc_error(
    err: grpc.RpcError, *, subject: str, op: str, what: str = "", timeout: float | None = None
) -> errors.MCPManagerError:
    """The :mod:`mcpmanager.errors` exception for a failed call.

    ``subject`` names the bot (or the agent's address), ``op`` the operation
    and ``what`` its path or command, all of which go into the message.
    """
    code = _code(err)
    details = _details(err)
    if code is None:
        return errors.MCPManagerError(describe(subject, op, what, f"grpc failure: {details}"))
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        limit = f" within {timeout:g}s" if timeout is not None else ""
        reason = f"the agent did not answer{limit}"
    elif code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED):
        reason = f"agent unavailable: {details or code.name.lower()}"
    elif code is grpc.StatusCode.CANCELLED:
        reason = f"call cancelled: {details or 'the client was closed'}"
    elif code in _BY_CODE:
        reason = details or code.name.lower().replace("_", " ")
    else:
        reason = f"grpc {code.name}: {details}"
    cls = errors.Unavailable if code is grpc.StatusCode.CANCELLED else _BY_CODE.get(code)
    if cls is None:
        cls = errors.MCPManagerError
    return cls(describe(subject, op, what, reason))


def describe(subject: str, op: str, what: str, reason: str) -> str:
    """``"bot 'b1': read_file '/data/x': no such file"``."""
    target = f" {what!r}" if what else ""
    return f"{subject}: {op}{target}: {reason}"


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
