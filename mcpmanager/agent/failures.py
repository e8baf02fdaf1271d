"""The agent's failures, as gRPC status codes with a message."""

from __future__ import annotations

import errno

import grpc

__all__ = ["AgentError", "from_os_error"]


class AgentError(Exception):
    """A request failed; the servicer answers with ``code`` and ``message``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def invalid(cls, message: str) -> AgentError:
        """INVALID_ARGUMENT."""
        return cls(grpc.StatusCode.INVALID_ARGUMENT, message)

    @classmethod
    def not_found(cls, message: str) -> AgentError:
        """NOT_FOUND."""
        return cls(grpc.StatusCode.NOT_FOUND, message)

    @classmethod
    def denied(cls, message: str) -> AgentError:
        """PERMISSION_DENIED."""
        return cls(grpc.StatusCode.PERMISSION_DENIED, message)


_BY_ERRNO: dict[int, grpc.StatusCode] = {
    errno.ENOENT: grpc.StatusCode.NOT_FOUND,
    errno.ENOTDIR: grpc.StatusCode.NOT_FOUND,
    errno.EACCES: grpc.StatusCode.PERMISSION_DENIED,
    errno.EPERM: grpc.StatusCode.PERMISSION_DENIED,
    errno.EROFS: grpc.StatusCode.PERMISSION_DENIED,
    # A symlink appeared where the agent had checked there was none.
    errno.ELOOP: grpc.StatusCode.PERMISSION_DENIED,
    errno.EEXIST: grpc.StatusCode.ALREADY_EXISTS,
    errno.ENOTEMPTY: grpc.StatusCode.FAILED_PRECONDITION,
    errno.EBUSY: grpc.StatusCode.FAILED_PRECONDITION,
    errno.EXDEV: grpc.StatusCode.FAILED_PRECONDITION,
    errno.EISDIR: grpc.StatusCode.INVALID_ARGUMENT,
    errno.EINVAL: grpc.StatusCode.INVALID_ARGUMENT,
    errno.ENAMETOOLONG: grpc.StatusCode.INVALID_ARGUMENT,
    errno.ENXIO: grpc.StatusCode.INVALID_ARGUMENT,
    errno.ENOSPC: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errno.EDQUOT: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

_REASONS: dict[int, str] = {
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "not a directory",
    errno.ELOOP: "a symlink appeared in the path while it was being used",
}


def from_os_error(exc: OSError, op: str, path: str) -> AgentError:
    """The status for an ``OSError`` met while doing ``op`` on container path ``path``."""
    code = _BY_ERRNO.get(exc.errno or 0, grpc.StatusCode.INTERNAL)
    reason = _REASONS.get(exc.errno or 0) or exc.strerror or str(exc)
    return AgentError(code, f"{op} {path}: {reason}")
