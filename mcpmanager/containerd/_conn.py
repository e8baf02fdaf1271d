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
from typing import Any, Generic, TypeVar

import grpc

from .. import errors
from .._log import get_logger
from ._errors import from_rpc_error
from ._rpc import Bidi, ServerStream, Unary, UnaryFuture
from .api import (
    containers_pb2_grpc,
    content_pb2_grpc,
    diff_pb2_grpc,
    images_pb2_grpc,
    leases_pb2,
    leases_pb2_grpc,
    snapshots_pb2_grpc,
    tasks_pb2_grpc,
)

__all__ = ["DEFAULT_TIMEOUT", "LEASE_EXPIRE_LABEL", "Connection", "Pending"]

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
Req = TypeVar("Req")
Resp = TypeVar("Resp")


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
        self._stubs: dict[Callable[[grpc.Channel], Any], Any] = {}  # class -> instance
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


class Pending(Generic[Resp]):
    """A unary call on its way: :meth:`result` waits for it, :meth:`cancel` drops it.

    Lets a caller have the daemon work on a call (a ``Wait`` for an exit)
    while it makes another one, instead of paying the round trips in turn.
    """

    def __init__(self, future: UnaryFuture[Resp], what: str) -> None:
        self._future = future
        self._what = what

    def result(self) -> Resp:
        """The answer; gRPC failures leave as :mod:`mcpmanager.errors` naming the call."""
        try:
            return self._future.result()
        except grpc.RpcError as err:
            raise from_rpc_error(err, self._what) from None

    def cancel(self) -> None:
        """Abandon the call; its answer, if any, is dropped."""
        self._future.cancel()


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

    # --- the services, as typed generated stubs ------------------------------

    @property
    def containers(self) -> containers_pb2_grpc.ContainersStub:
        """containerd's Containers service."""
        return self._shared.stub(containers_pb2_grpc.ContainersStub)

    @property
    def content(self) -> content_pb2_grpc.ContentStub:
        """containerd's Content service."""
        return self._shared.stub(content_pb2_grpc.ContentStub)

    @property
    def diff(self) -> diff_pb2_grpc.DiffStub:
        """containerd's Diff service."""
        return self._shared.stub(diff_pb2_grpc.DiffStub)

    @property
    def images(self) -> images_pb2_grpc.ImagesStub:
        """containerd's Images service."""
        return self._shared.stub(images_pb2_grpc.ImagesStub)

    @property
    def leases(self) -> leases_pb2_grpc.LeasesStub:
        """containerd's Leases service."""
        return self._shared.stub(leases_pb2_grpc.LeasesStub)

    @property
    def snapshots(self) -> snapshots_pb2_grpc.SnapshotsStub:
        """containerd's Snapshots service."""
        return self._shared.stub(snapshots_pb2_grpc.SnapshotsStub)

    @property
    def tasks(self) -> tasks_pb2_grpc.TasksStub:
        """containerd's Tasks service."""
        return self._shared.stub(tasks_pb2_grpc.TasksStub)

    # --- calls: metadata, deadline, one retry, mapped errors -----------------

    def unary(
        self,
        method: Unary[Req, Resp],
        request: Req,
        *,
        what: str,
        timeout: float | None = None,
        idempotent: bool = True,
    ) -> Resp:
        """Call ``method(request)`` (e.g. ``conn.tasks.Get``); errors name ``what``.

        An idempotent call that finds the daemon unreachable waits briefly for
        it to come back and tries once more (a restarted daemon); any other
        call first waits briefly for a channel that is reconnecting.
        """
        if not idempotent and self._shared.reconnecting():
            self._shared.wait_ready(CONNECT_TIMEOUT)
        try:
            return method(request, timeout=timeout or self.timeout, metadata=self.metadata)
        except grpc.RpcError as err:
            if not (idempotent and _is_unavailable(err)):
                raise from_rpc_error(err, what) from None
            if not self._shared.wait_ready(CONNECT_TIMEOUT):
                raise from_rpc_error(err, what) from None
        try:
            return method(request, timeout=timeout or self.timeout, metadata=self.metadata)
        except grpc.RpcError as err:
            raise from_rpc_error(err, what) from None

    def send(
        self,
        method: Unary[Req, Resp],
        request: Req,
        *,
        what: str,
        timeout: float | None = None,
    ) -> Pending[Resp]:
        """Send ``method(request)`` without waiting; errors name ``what`` (never retried)."""
        future = method.future(request, timeout=timeout or self.timeout, metadata=self.metadata)
        return Pending(future, what)

    def server_stream(
        self,
        method: ServerStream[Req, Resp],
        request: Req,
        *,
        what: str,
        timeout: float | None = None,
    ) -> Iterator[Resp]:
        """Yield the responses of a server-streaming call, mapping errors."""
        try:
            yield from method(request, timeout=timeout or self.timeout, metadata=self.metadata)
        except grpc.RpcError as err:
            raise from_rpc_error(err, what) from None

    def collect(
        self,
        method: ServerStream[Req, Resp],
        request: Req,
        *,
        what: str,
        timeout: float | None = None,
    ) -> list[Resp]:
        """Return every response of a server-streaming call (retried once if unreachable)."""
        try:
            return list(self.server_stream(method, request, what=what, timeout=timeout))
        except errors.Unavailable:
            if not self._shared.wait_ready(CONNECT_TIMEOUT):
                raise
        return list(self.server_stream(method, request, what=what, timeout=timeout))

    def bidi_stream(
        self,
        method: Bidi[Req, Resp],
        requests: Iterator[Req],
        *,
        what: str,
        timeout: float | None = None,
    ) -> Iterator[Resp]:
        """Yield the responses of a bidirectional call fed by ``requests``."""
        try:
            yield from method(requests, timeout=timeout or self.timeout, metadata=self.metadata)
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
            self.leases.Create,
            request,
            what=f"create lease {lease_id}",
            idempotent=False,
        )
        try:
            yield self.with_lease(lease_id)
        finally:
            self._drop_lease(lease_id)

    def hold(self, resource_id: str, kind: str, what: str) -> None:
        """Add a resource (``kind`` "content" or "snapshots/<snapshotter>") to our lease.

        Keeps something that exists already from the garbage collector until
        the lease ends; without a lease it does nothing.
        """
        if not self.lease_id:
            return
        resource = leases_pb2.Resource(id=resource_id, type=kind)
        self.unary(
            self.leases.AddResource,
            leases_pb2.AddResourceRequest(id=self.lease_id, resource=resource),
            what=what,
        )

    def _drop_lease(self, lease_id: str) -> None:
        try:
            self.unary(
                self.leases.Delete,
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
