"""The shapes of containerd's generated client methods, for type checking.

grpcio ships no type information, so ``scripts/gen-protos`` writes a ``.pyi``
beside each ``*_pb2_grpc`` module that declares every stub method as one of
these protocols with its request and response messages. :class:`~._conn.Connection`
takes such a method, so every call site knows what it sends and gets back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, TypeVar

__all__ = ["Bidi", "Metadata", "ServerStream", "StreamingCall", "Unary", "UnaryFuture"]

_Req = TypeVar("_Req", contravariant=True)
_Resp = TypeVar("_Resp", covariant=True)

Metadata = Sequence[tuple[str, str]]
"""gRPC call metadata: (key, value) pairs."""


class StreamingCall(Protocol[_Resp]):
    """A running streaming call: iterate it for the responses; cancel it to stop early."""

    def __iter__(self) -> Iterator[_Resp]: ...
    def __next__(self) -> _Resp: ...
    def cancel(self) -> bool:
        """Stop the call (a no-op once it has finished)."""
        ...


class UnaryFuture(Protocol[_Resp]):
    """A unary call sent without waiting: ``result()`` blocks for the answer."""

    def result(self, timeout: float | None = ...) -> _Resp: ...
    def cancel(self) -> bool:
        """Abandon the call (a no-op once it has finished)."""
        ...


class Unary(Protocol[_Req, _Resp]):
    """A unary method: one request, one response (``future`` sends it without waiting)."""

    def __call__(
        self, request: _Req, /, timeout: float | None = ..., metadata: Metadata | None = ...
    ) -> _Resp: ...
    def future(
        self, request: _Req, /, timeout: float | None = ..., metadata: Metadata | None = ...
    ) -> UnaryFuture[_Resp]: ...


class ServerStream(Protocol[_Req, _Resp]):
    """A server-streaming method: one request, a stream of responses."""

    def __call__(
        self, request: _Req, /, timeout: float | None = ..., metadata: Metadata | None = ...
    ) -> StreamingCall[_Resp]: ...


class Bidi(Protocol[_Req, _Resp]):
    """A bidirectional method: a stream of requests, a stream of responses."""

    def __call__(
        self,
        requests: Iterator[_Req],
        /,
        timeout: float | None = ...,
        metadata: Metadata | None = ...,
    ) -> StreamingCall[_Resp]: ...
