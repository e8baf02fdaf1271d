"""Translate gRPC failures from containerd into :mod:`mcpmanager.errors` classes."""

from __future__ import annotations

import grpc

from .. import errors

__all__ = ["from_rpc_error"]

_BY_CODE: dict[grpc.StatusCode, type[errors.MCPManagerError]] = {
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: errors.InvalidArgument,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceeded,
    grpc.StatusCode.UNIMPLEMENTED: errors.NotSupported,
}


def from_rpc_error(err: grpc.RpcError, what: str) -> errors.MCPManagerError:
    """Return the mcpmanager error for ``err``; ``what`` names the object and operation."""
    code = err.code() if isinstance(err, grpc.Call) else None
    details = err.details() if isinstance(err, grpc.Call) else str(err)
    cls = _BY_CODE.get(code, errors.MCPManagerError) if code is not None else errors.MCPManagerError
    if cls is errors.MCPManagerError and "context deadline exceeded" in (details or ""):
        # The daemon passes our deadline on to shims and reports their timeout as UNKNOWN.
        cls = errors.DeadlineExceeded
    name = code.name if code is not None else "UNKNOWN"
    return cls(f"{what}: containerd: {name}: {details}")
