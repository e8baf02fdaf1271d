"""Errors of the in-container protocol, and the mapping of gRPC failures onto them.

The agent reports failures as gRPC status codes; :func:`map_rpc_error` turns
each into the matching :mod:`mcpmanager.errors` class (``PermissionDenied``
and ``ExecTimedOut`` are defined there and re-exported here) with a message that
names the bot (or the agent's address), the operation and its path.
"""

from __future__ import annotations

import grpc

from .. import errors
from .._grpc_status import error_class, status_of
from ..errors import ExecTimedOut, PermissionDenied

__all__ = ["ExecTimedOut", "PermissionDenied", "map_rpc_error"]


def map_rpc_error(
    err: grpc.RpcError, *, subject: str, op: str, what: str = "", timeout: float | None = None
) -> errors.MCPManagerError:
    """The :mod:`mcpmanager.errors` exception for a failed call.

    ``subject`` names the bot (or the agent's address), ``op`` the operation
    and ``what`` its path or command, all of which go into the message.
    """
    code, details = status_of(err)
    if code is None:
        cls = error_class(None, details)
        return cls(describe(subject, op, what, f"grpc failure: {details}"))
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        limit = f" within {timeout:g}s" if timeout is not None else ""
        reason = f"the agent did not answer{limit}"
    elif code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED):
        reason = f"agent unavailable: {details or code.name.lower()}"
    elif code is grpc.StatusCode.CANCELLED:
        reason = f"call cancelled: {details or 'the client was closed'}"
    elif error_class(code) is not errors.MCPManagerError:
        reason = details or code.name.lower().replace("_", " ")
    else:
        reason = f"grpc {code.name}: {details}"
    return error_class(code, details)(describe(subject, op, what, reason))


def describe(subject: str, op: str, what: str, reason: str) -> str:
    """``"bot b1: read_file '/data/x': no such file"``."""
    target = f" {what!r}" if what else ""
    return f"{subject}: {op}{target}: {reason}"
