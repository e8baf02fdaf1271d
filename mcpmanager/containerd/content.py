"""Blobs in containerd's content store: write (streamed), read, label.

:func:`write_blob` is shared by image import and registry pulls. Writes
should run under a lease (``with conn.lease() as leased``) so the daemon's
garbage collector keeps the blob until an image record references it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from typing import IO

import grpc
from google.protobuf import field_mask_pb2

from .. import errors
from .._log import get_logger
from ._conn import Connection
from ._errors import from_rpc_error
from .api import content_pb2

__all__ = ["CHUNK_SIZE", "blob_exists", "read_blob", "set_blob_labels", "write_blob"]

log = get_logger("mcpmanager.containerd")

CHUNK_SIZE = 1 << 20
"""Bytes per Write message."""

WRITE_TIMEOUT = 3600.0
"""Seconds one blob upload may take in total."""


class _Requests:
    """The Write messages for one blob; stops cleanly when the source fails.

    gRPC logs an exception raised while it iterates requests and reports it
    only as ``UNKNOWN``, so a failure of the source (a read error, the
    registry stream's digest check, a size mismatch) is caught here instead:
    it is kept in :attr:`error` and the iterator simply ends without the
    ``COMMIT`` message. That half-closes the stream, the daemon ends the call
    having committed nothing, and :func:`write_blob` aborts the ingest and
    re-raises :attr:`error`.
    """

    def __init__(
        self, stream: IO[bytes], ref: str, digest: str, size: int, labels: Mapping[str, str]
    ) -> None:
        self.stream, self.ref, self.digest, self.size = stream, ref, digest, size
        self.labels = dict(labels)
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[content_pb2.WriteContentRequest]:
        try:
            yield from self._messages()
        except OSError as err:
            error = errors.InvalidArgument(f"blob {self.digest}: cannot read data: {err}")
            error.__cause__ = err
            self.error = error
        except Exception as err:  # any source failure: re-raised by write_blob
            self.error = err

    def _read(self) -> Iterator[bytes]:
        while chunk := self.stream.read(CHUNK_SIZE):
            yield chunk

    def _message(
        self, action: int, offset: int, data: bytes = b"", labels: Mapping[str, str] | None = None
    ) -> content_pb2.WriteContentRequest:
        return content_pb2.WriteContentRequest(
            action=action,  # type: ignore[arg-type]
            ref=self.ref,
            total=self.size,
            expected=self.digest,
            offset=offset,
            data=data,
            labels=labels,
        )

    def _messages(self) -> Iterator[content_pb2.WriteContentRequest]:
        offset = 0
        for chunk in self._read():
            if offset + len(chunk) > self.size:
                break
            yield self._message(content_pb2.WRITE, offset, chunk)
            offset += len(chunk)
        else:
            if offset == self.size:
                yield self._message(content_pb2.COMMIT, offset, labels=self.labels)
                return
        raise errors.InvalidArgument(
            f"blob {self.digest}: data does not have the expected size {self.size}"
        )


def write_blob(
    conn: Connection,
    stream: IO[bytes],
    digest: str,
    size: int,
    labels: Mapping[str, str] | None = None,
) -> None:
    """Store ``size`` bytes read from ``stream`` as blob ``digest`` with ``labels``.

    The daemon verifies digest and size at commit (``FailedPrecondition`` on a
    mismatch). A blob that is already stored is not written again; its labels
    are merged in instead, and it joins ``conn``'s lease (a blob written
    under a lease joins it when committed). If reading ``stream`` fails (``stream.read`` raises,
    or the data is shorter or longer than ``size``), nothing is committed, the
    partial upload is aborted and the original exception is raised (an
    ``OSError`` as :class:`~mcpmanager.errors.InvalidArgument`).
    """
    labels = dict(labels or {})
    ref = f"mcpmanager-{digest.replace(':', '-')}-{uuid.uuid4().hex[:12]}"
    what = f"write blob {digest}"
    requests = _Requests(stream, ref, digest, size, labels)
    try:
        _upload(conn, requests, what)
    except errors.AlreadyExists:
        if requests.error is None:
            # Stored meanwhile by someone else: hold it as if we had written it.
            conn.hold(digest, "content", f"lease blob {digest}")
            if labels:
                set_blob_labels(conn, digest, labels)
            return
    except errors.MCPManagerError as err:
        if requests.error is None:
            _abort(conn, ref)
            raise err from None
    if requests.error is not None:
        _abort(conn, ref)
        raise requests.error
    log.debug("wrote blob %s (%d bytes)", digest, size)


def _upload(conn: Connection, requests: _Requests, what: str) -> None:
    """Run one Write call fed by ``requests``; gRPC errors leave as mcpmanager errors."""
    call = conn.content.Write(iter(requests), timeout=WRITE_TIMEOUT, metadata=conn.metadata)
    try:
        for _ in call:
            pass
    except grpc.RpcError as err:
        raise from_rpc_error(err, what) from None
    finally:
        call.cancel()  # no-op once the call is over; stops the request thread otherwise


def _abort(conn: Connection, ref: str) -> None:
    with contextlib.suppress(errors.MCPManagerError):
        conn.unary(conn.content.Abort, content_pb2.AbortRequest(ref=ref), what=f"abort write {ref}")


def set_blob_labels(conn: Connection, digest: str, labels: Mapping[str, str]) -> None:
    """Set (add or overwrite) ``labels`` on the stored blob ``digest``."""
    info = content_pb2.Info(digest=digest, labels=dict(labels))
    mask = field_mask_pb2.FieldMask(paths=[f"labels.{k}" for k in labels])
    conn.unary(
        conn.content.Update,
        content_pb2.UpdateRequest(info=info, update_mask=mask),
        what=f"label blob {digest}",
    )


def blob_exists(conn: Connection, digest: str) -> bool:
    """True when blob ``digest`` is in this namespace's content store."""
    try:
        conn.unary(conn.content.Info, content_pb2.InfoRequest(digest=digest), what=f"stat {digest}")
    except errors.NotFound:
        return False
    return True


def read_blob(conn: Connection, digest: str, max_size: int = 64 << 20) -> bytes:
    """Return the whole blob ``digest`` (meant for manifests and configs)."""
    what = f"read blob {digest}"
    parts: list[bytes] = []
    total = 0
    for resp in conn.collect(
        conn.content.Read, content_pb2.ReadContentRequest(digest=digest), what=what
    ):
        parts.append(resp.data)
        total += len(resp.data)
        if total > max_size:
            raise errors.InvalidArgument(f"{what}: larger than {max_size} bytes")
    return b"".join(parts)
