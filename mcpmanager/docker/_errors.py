"""Translate docker-py and HTTP failures into :mod:`mcpmanager.errors`.

Docker answers with HTTP statuses (404 missing, 409 conflict, 400 bad input)
and, for registry trouble, a 500 whose message says what went wrong; a dead
socket shows up as a ``requests`` connection error. Every call of the backend
runs inside :func:`mapped`, so only mcpmanager errors leave it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import docker.errors
import requests.exceptions

from .. import errors

__all__ = ["from_api_error", "mapped", "translate"]

_UNREACHABLE = (
    "connection refused",
    "no such host",
    "dial tcp",
    "i/o timeout",
    "network is unreachable",
    "no route to host",
    "tls handshake",
    "server gave http response to https client",
    "connection reset",
)
_MISSING = ("manifest unknown", "not found", "no such", "does not exist")
_TAKEN = ("already in use", "already exists")


def from_api_error(status: int, message: str, what: str) -> errors.MCPManagerError:
    """The mcpmanager error for a Docker API answer of ``status`` saying ``message``."""
    text = f"{what}: {message}".rstrip(": ")
    low = message.lower()
    if status == 404:
        return errors.NotFound(text)
    if status == 409:
        if any(m in low for m in _TAKEN):
            return errors.AlreadyExists(text)
        return errors.FailedPrecondition(text)
    if status == 400:
        return errors.InvalidArgument(text)
    if status in (401, 403):
        return errors.FailedPrecondition(text)
    if "context deadline exceeded" in low or "timeout exceeded" in low:
        return errors.DeadlineExceeded(text)
    if status == 503 or any(m in low for m in _UNREACHABLE):
        return errors.Unavailable(text)
    if any(m in low for m in _MISSING):
        return errors.NotFound(text)
    return errors.MCPManagerError(f"{text} (Docker answered HTTP {status})")


def translate(exc: BaseException, what: str) -> errors.MCPManagerError:
    """The mcpmanager error standing for ``exc``, raised while doing ``what``."""
    if isinstance(exc, errors.MCPManagerError):
        return exc
    if isinstance(exc, docker.errors.APIError):
        status = exc.status_code or 500
        return from_api_error(status, str(exc.explanation or exc), what)
    if isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc).lower():
        return errors.DeadlineExceeded(f"{what}: Docker did not answer in time: {exc}")
    if isinstance(exc, (requests.exceptions.ConnectionError, ConnectionError)):
        return errors.Unavailable(f"{what}: cannot reach the Docker daemon: {exc}")
    if isinstance(exc, docker.errors.InvalidArgument | ValueError):
        return errors.InvalidArgument(f"{what}: {exc}")
    if isinstance(exc, docker.errors.DockerException | requests.exceptions.RequestException):
        return errors.Unavailable(f"{what}: {exc}")
    if isinstance(exc, OSError):
        return errors.Unavailable(f"{what}: {exc}")
    return errors.MCPManagerError(f"{what}: unexpected Docker client error: {exc!r}")


@contextlib.contextmanager
def mapped(what: str) -> Iterator[None]:
    """Re-raise any Docker client failure in the block as an mcpmanager error about ``what``."""
    try:
        yield
    except errors.MCPManagerError:
        raise
    except Exception as exc:
        raise translate(exc, what) from exc
