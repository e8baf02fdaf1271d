"""The gRPC connection to one containerd namespace.

Every call carries the ``containerd-namespace`` metadata and a deadline, and
every gRPC failure leaves as an :mod:`mcpmanager.errors` exception. The channel
reconnects on its own (short back-off) so a restarted daemon is picked up
without a new object; a daemon that is down fails fast as ``Unavailable``.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import grpc

from .. import errors
from .._log import get_logger
from ._errors import from_rpc_error
from .api import leases_pb2, leases_pb2_grpc

__all__ = ["DEFAULT_TIMEOUT", "LEASE_EXPIRE_LABEL", "Connection"]

log = get_logger("mcpmanager.containerd")

DEFAULT_TIMEOUT = 30.0
"""Seconds a unary call may take unless the caller asks for another limit."""

CONNECT_TIMEOUT = 3.0
"""Seconds to wait for the daemon to (re)accept connections before giving up."""

LEASE_EXPIRE_LABEL = "containerd.io/gc.expire"
"""Lease label after which containerd's GC drops a lease we failed to delete."""

_MAX_MESSAGE = 64 * 1024 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),
]

S = TypeVar("S")


def _target(address: str) -> str:
    if address.startswith("unix:"):
        return address
    return "unix:" + address


class _Channel:
    """The shared, lazily created gRPC channel and its stubs."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._stubs: dict[Callable[[grpc.Channel], Any], Any] = {}
        self._closed = False
        self.state: grpc.ChannelConnectivity | None = None

    def channel(self) -> grpc.Channel:
        with self._lock:
            if self._closed:
                raise errors.FailedPrecondition(
                    f"containerd connection to {self.address} is closed"
                )
            if self._channel is None:
                self._channel = grpc.insecure_channel(
                    _target(self.address), options=_CHANNEL_OPTIONS
                )
                self._channel.subscribe(self._on_state)
            return self._channel

    def _on_state(self, state: grpc.ChannelConnectivity) -> None:
        self.state = state

    def reconnecting(self) -> bool:
        """True while the channel is between failed connection attempts."""
        return bool(self.state == grpc.ChannelConnectivity.TRANSIENT_FAILURE)

    def stub(self, cls: Callable[[grpc.Channel], S]) -> S:
        channel = self.channel()
        with self._lock:
            stub: S | None = self._stubs.get(cls)
            if stub is None:
                stub = self._stubs[cls] = cls(channel)
            return stub

    def wait_ready(self, timeout: float) -> bool:
        try:
            grpc.channel_ready_future(self.channel()).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._channel is not None:
                self._channel.close()
            self._channel = None
            self._stubs.clear()


class Connection:
    """A containerd client bound to one namespace (and optionally one lease).

    Thread-safe. :meth:`with_lease` and :meth:`lease` return views that share
    the same channel and add the ``containerd-lease`` metadata.
    """

    def __init__(
        self,
        address: str,
        namespace: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        _shared: _Channel | None = None,
        _lease: str = "",
    ) -> None:
        self._shared = _shared or _Channel(address)
        self.namespace = namespace
        self.timeout = timeout
        self.lease_id = _lease
        md = [("containerd-namespace", namespace)]
        if _lease:
            md.append(("containerd-lease", _lease))
        self.metadata: tuple[tuple[str, str], ...] = tuple(md)

    @property
    def address(self) -> str:
        """The daemon's socket path."""
        return self._shared.address

    def stub(self, cls: Callable[[grpc.Channel], S]) -> S:
        """Return the generated stub ``cls`` bound to the current channel."""
        return self._shared.stub(cls)

    def unary(
        self,
        stub_cls: type[Any],
        method: str,
        request: Any,
        *,
        what: str,
        timeout: float | None = None,
        idempotent: bool = True,
    ) -> Any:
        """Call ``stub_cls.method(request)``; errors name ``what``.

        An idempotent call that finds the daemon unreachable waits briefly for
        it to come back and tries once more (a restarted daemon); any other
        call first waits briefly for a channel that is reconnecting.
        """
        if not idempotent and self._shared.reconnecting():
            self._shared.wait_ready(CONNECT_TIMEOUT)
        try:
            return self._invoke(stub_cls, method, request, timeout)
        except grpc.RpcError as err:
            if not (idempotent and _is_unavailable(err)):
                raise from_rpc_error(err, what) from None
            if not self._shared.wait_ready(CONNECT_TIMEOUT):
                raise from_rpc_error(err, what) from None
        try:
            return self._invoke(stub_cls, method, request, timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err, what) from None

    def _invoke(self, stub_cls: type[Any], method: str, request: Any, timeout: float | None) -> Any:
        fn = getattr(self.stub(stub_cls), method)
        return fn(request, timeout=timeout or self.timeout, metadata=self.metadata)

    def server_stream(
        self,
        stub_cls: type[Any],
        method: str,
        request: Any,
        *,
        what: str,
        timeout: float | None = None,
    ) -> Iterator[Any]:
        """Yield the responses of a server-streaming call, mapping errors."""
        fn = getattr(self.stub(stub_cls), method)
        try:
            yield from fn(request, timeout=timeout or self.timeout, metadata=self.metadata)
        except grpc.RpcError as err:
            raise from_rpc_error(err, what) from None

    def collect(
        self,
        stub_cls: type[Any],
        method: str,
        request: Any,
        *,
        what: str,
        timeout: float | None = None,
    ) -> list[Any]:
        """Return every response of a server-streaming call (retried once if unreachable)."""
        try:
            return list(self.server_stream(stub_cls, method, request, what=what, timeout=timeout))
        except errors.Unavailable:
            if not self._shared.wait_ready(CONNECT_TIMEOUT):
                raise
        return list(self.server_stream(stub_cls, method, request, what=what, timeout=timeout))

    def bidi_stream(
        self,
        stub_cls: type[Any],
        method: str,
        requests: Iterator[Any],
        *,
        what: str,
        timeout: float | None = None,
    ) -> Iterator[Any]:
        """Yield the responses of a bidirectional call fed by ``requests``."""
        fn = getattr(self.stub(stub_cls), method)
        try:
            yield from fn(requests, timeout=timeout or self.timeout, metadata=self.metadata)
        except grpc.RpcError as err:
            raise from_rpc_error(err, what) from None

    def with_lease(self, lease_id: str) -> Connection:
        """Return a view of this connection whose calls run under lease ``lease_id``."""
        return Connection(
            self.address,
            self.namespace,
            timeout=self.timeout,
            _shared=self._shared,
            _lease=lease_id,
        )

    @contextlib.contextmanager
    def lease(self, expire: float = 24 * 3600.0) -> Iterator[Connection]:
        """Create a lease, yield a connection using it, delete the lease at exit.

        Content and snapshots made under the lease survive garbage collection
        until the lease is gone, so they must be referenced by then (an image
        record, a container). ``expire`` bounds a lease we fail to delete.
        """
        lease_id = f"mcpmanager-{uuid.uuid4().hex}"
        until = datetime.now(timezone.utc) + timedelta(seconds=expire)
        labels = {LEASE_EXPIRE_LABEL: until.strftime("%Y-%m-%dT%H:%M:%SZ")}
        request = leases_pb2.CreateRequest(id=lease_id, labels=labels)
        self.unary(
            leases_pb2_grpc.LeasesStub,
            "Create",
            request,
            what=f"create lease {lease_id}",
            idempotent=False,
        )
        try:
            yield self.with_lease(lease_id)
        finally:
            self._drop_lease(lease_id)

    def _drop_lease(self, lease_id: str) -> None:
        try:
            self.unary(
                leases_pb2_grpc.LeasesStub,
                "Delete",
                leases_pb2.DeleteRequest(id=lease_id),
                what=f"delete lease {lease_id}",
            )
        except errors.NotFound:
            pass
        except errors.MCPManagerError as err:
            log.warning("could not delete lease %s (it expires on its own): %s", lease_id, err)

    def close(self) -> None:
        """Close the channel; later calls raise FailedPrecondition."""
        self._shared.close()


def _is_unavailable(err: grpc.RpcError) -> bool:
    return isinstance(err, grpc.Call) and err.code() == grpc.StatusCode.UNAVAILABLE
