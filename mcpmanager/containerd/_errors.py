"""Translate gRPC failures from containerd into :mod:`mcpmanager.errors` classes."""

from __future__ import annotations

import grpc

from .. import errors
from .._grpc_status import error_class, status_of

__all__ = ["from_rpc_error"]


def from_rpc_error(err: grpc.RpcError, what: str) -> errors.MCPManagerError:
    """Return the mcpmanager error for ``err``; ``what`` names the object and operation.

    The class comes from the package's one status table
    (:func:`mcpmanager._grpc_status.error_class`).
    """
    code, details = status_of(err)
    name = code.name if code is not None else "UNKNOWN"
    return error_class(code, details)(f"{what}: containerd: {name}: {details}")
