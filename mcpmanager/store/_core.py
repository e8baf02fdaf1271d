"""``SQLStore``: the one implementation of ``VersionStore``, on a small ``Dialect``.

Every method body, argument check, record layout and the numbering rule live
here once. A backend supplies a ``Dialect``: how to get a connection (to read,
or inside one write transaction), how to serialise the numbering of one
container across threads and processes, how its driver's errors sort into
``Failure`` kinds, and how it stores timestamps. The statements themselves are
shared (``_sql``); the dialect's sessions render them for their engine.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Protocol, TypeVar

from mcpmanager.errors import AlreadyExists, FailedPrecondition, NotFound
from mcpmanager.store import _rows
from mcpmanager.store import _sql as q
from mcpmanager.store._errors import Failure, translate
from mcpmanager.store._values import (
    SnapshotArgs,
    check_version,
    encode_payload,
    require_text,
    snapshot_args,
)
from mcpmanager.store.base import ContainerRecord, EventRecord, SnapshotRecord, VersionRecord
from mcpmanager.store.migrations import MIGRATIONS, bootstrap

from .._log import get_logger

__all__ = ["Dialect", "Rows", "SQLStore", "Session"]

logger = get_logger("mcpmanager.store")

_S = TypeVar("_S", bound="SQLStore")


class Rows(Protocol):
    """The result of one statement (a DB-API cursor)."""

    def fetchone(self) -> Any:
        """The next row, or None."""
        ...

    def fetchall(self) -> list[Any]:
        """Every remaining row."""
        ...


class Session(Protocol):
    """One borrowed connection that runs ``_sql`` templates."""

    def execute(self, template: str, params: Sequence[object] = ()) -> Rows:
        """Render ``template`` for this engine (once) and run it with ``params``."""
        ...

    def stream(self, template: str, params: Sequence[object] = ()) -> Iterable[Any]:
        """Run a query whose rows may be many; iterate them while the rest arrive.

        Consume it whole before the next statement on this session.
        """
        ...


class Dialect(Protocol):
    """What one database engine does differently; everything else is ``SQLStore``'s."""

    name: str
    """Which statements of ``migrations.Migration`` to run: ``postgres`` or ``sqlite``."""

    where: str
    """The database in messages, e.g. ``'/var/lib/bots.db'`` or ``schema mcpmanager``."""

    when: Callable[[Any], datetime]
    """A stored timestamp back as an aware UTC ``datetime`` (runs per row: keep it cheap)."""

    def times(self, session: Session) -> Callable[[Any], datetime] | None:
        """``when`` for the rows of ``session``, or None when its driver already gives UTC."""
        ...

    def read(self) -> AbstractContextManager[Session]:
        """A session whose statements each commit on their own (reads, one-statement writes)."""
        ...

    def write(self) -> AbstractContextManager[Session]:
        """A session inside one transaction: committed on success, else rolled back."""
        ...

    def lock_numbering(self, session: Session, container_id: str) -> None:
        """Hold, until the write transaction ends, the lock numbering ``container_id``.

        It must exclude every other thread and process numbering the same container.
        """
        ...

    def begin_migration(self, session: Session) -> None:
        """Prepare a write session to migrate: lock out other migrators, create the schema."""
        ...

    def classify(self, exc: Exception) -> tuple[Failure, str] | None:
        """Sort a driver exception into a ``Failure`` with a one-line detail (None: not ours)."""
        ...

    def stamp(self, when: datetime) -> object:
        """A UTC ``datetime`` as this engine stores it."""
        ...

    def close(self) -> None:
        """Release the engine's connections."""
        ...


def _new_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(timezone.utc)


class SQLStore:
    """A ``VersionStore`` on a SQL database; ``PostgresStore`` and ``SQLiteStore`` are these.

    Safe to use from many threads, and several processes may share a database:
    version numbers stay unique and gapless per container. Every failure is an
    ``mcpmanager.errors`` class naming the operation and the container.
    """

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """Release the connections; later calls raise ``FailedPrecondition``. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._dialect.close()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def migrate(self) -> None:
        """Create the tables or apply newer migrations, in one transaction.

        Idempotent, and safe to run from several threads and processes at once:
        each migration runs exactly once.
        """
        done: list[int] = []
        d = self._dialect
        with self._transaction(f"migrate version store {d.where}") as s:
            d.begin_migration(s)
            s.execute(bootstrap(d.name))
            applied = {int(row[0]) for row in s.execute(q.APPLIED_MIGRATIONS).fetchall()}
            for migration in MIGRATIONS:
                if migration.version in applied:
                    continue
                for statement in migration.statements(d.name):
                    s.execute(statement)
                stamp = d.stamp(_now())
                s.execute(q.RECORD_MIGRATION, (migration.version, migration.name, stamp))
                done.append(migration.version)
        for version in done:
            logger.info("version store %s: applied migration %d", d.where, version)

    def upsert_container(
        self, container_id: str, bot_id: str, image: str, snapshotter: str
    ) -> None:
        """Register a container, or update its bot, image and snapshotter."""
        cid = require_text(container_id, "container_id")
        bot = require_text(bot_id, "bot_id")
        now = self._dialect.stamp(_now())
        params = (_new_id(), bot, cid, cid, image, snapshotter, now, now)
        with self._session(f"upsert container {cid!r}") as s:
            s.execute(q.UPSERT_CONTAINER, params)

    def get_container(self, container_id: str) -> ContainerRecord:
        """Return a registered container; ``NotFound`` if it is not registered."""
        cid = require_text(container_id, "container_id")
        with self._session(f"get container {cid!r}") as s:
            row = s.execute(q.GET_CONTAINER, (cid,)).fetchone()
        if row is None:
            raise NotFound(f"container {cid!r} is not registered in the version store")
        return _rows.container(row, self._dialect.when)

    def delete_container(self, container_id: str) -> None:
        """Forget a container with its snapshots, versions and events (no error if absent)."""
        cid = require_text(container_id, "container_id")
        with self._session(f"delete container {cid!r}") as s:
            s.execute(q.DELETE_CONTAINER, (cid,))

    def record_snapshot(
        self,
        container_id: str,
        runtime_snapshot_name: str,
        *,
        display_name: str = "",
        parent_runtime_snapshot_name: str = "",
        snapshotter: str,
        source: str = "manual",
    ) -> VersionRecord:
        """Record a committed runtime snapshot as the container's next version, once.

        Atomic, and idempotent on (container, runtime snapshot name): a second
        call with the same name and details returns the version recorded first
        and writes nothing, even when the calls race in threads or processes,
        so retrying a move never numbers twice. The same name with other
        details is ``AlreadyExists``; an unregistered container is ``NotFound``.
        """
        a = snapshot_args(
            container_id,
            runtime_snapshot_name,
            display_name,
            parent_runtime_snapshot_name,
            snapshotter,
            source,
        )
        operation = f"record snapshot {a.runtime_snapshot_name!r} of container {a.container_id!r}"
        with self._transaction(operation) as s:
            self._dialect.lock_numbering(s, a.container_id)
            found = s.execute(q.RECORDED, (a.container_id, a.runtime_snapshot_name)).fetchone()
            if found is not None and found[6] is not None:
                rec = self._recorded_before(operation, a, found)
            else:
                rec = self._number(s, a, None if found is None else found[0])
        return rec

    def _recorded_before(
        self, operation: str, a: SnapshotArgs, row: Sequence[Any]
    ) -> VersionRecord:
        """The version an earlier call recorded, if it recorded the same snapshot."""
        _, display, parent, snapshotter, source, vid, version, at = row
        pairs = (
            ("display name", display, a.display_name or ""),
            ("parent", parent, a.parent_runtime_snapshot_name or ""),
            ("snapshotter", snapshotter, a.snapshotter),
            ("source", source, a.source),
        )
        differ = [f"{field} {old!r}, not {new!r}" for field, old, new in pairs if old != new]
        if differ:
            raise AlreadyExists(
                f"{operation}: already recorded as version {version} with " + ", ".join(differ)
            )
        logger.debug("%s: already version %d", operation, version)
        return VersionRecord(
            vid, a.container_id, version, a.runtime_snapshot_name, display, source,
            self._dialect.when(at),
        )  # fmt: skip

    def _number(self, s: Session, a: SnapshotArgs, snapshot_id: str | None) -> VersionRecord:
        """Insert the snapshot row (unless it exists) and the container's next version."""
        now = _now()
        stamp = self._dialect.stamp(now)
        display = a.display_name or ""
        if snapshot_id is None:
            snapshot_id = _new_id()
            s.execute(
                q.INSERT_SNAPSHOT,
                (
                    snapshot_id, a.container_id, a.runtime_snapshot_name, a.display_name,
                    a.parent_runtime_snapshot_name, a.snapshotter, a.source, stamp,
                ),
            )  # fmt: skip
        else:  # a snapshot row without a version: adopt it with the details given now
            s.execute(
                q.UPDATE_SNAPSHOT,
                (
                    a.display_name, a.parent_runtime_snapshot_name, a.snapshotter, a.source,
                    snapshot_id,
                ),
            )  # fmt: skip
        vid = _new_id()
        (version,) = s.execute(
            q.INSERT_NEXT_VERSION,
            (
                vid, a.container_id, snapshot_id, a.container_id,
                a.runtime_snapshot_name, display, a.source, stamp,
            ),
        ).fetchone()  # fmt: skip
        logger.debug("record snapshot %s: version %d", a.runtime_snapshot_name, version)
        return VersionRecord(
            vid, a.container_id, int(version), a.runtime_snapshot_name, display, a.source, now
        )

    def find_version_by_snapshot(
        self, container_id: str, runtime_snapshot_name: str
    ) -> VersionRecord | None:
        """The version recorded for a runtime snapshot (the newest if several), or None.

        This is how a caller retrying a move asks whether its record was written.
        """
        cid = require_text(container_id, "container_id")
        name = require_text(runtime_snapshot_name, "runtime_snapshot_name")
        with self._session(f"find version of snapshot {name!r} of container {cid!r}") as s:
            row = s.execute(q.FIND_VERSION, (cid, name)).fetchone()
        return None if row is None else _rows.version(row, cid, self._dialect.when)

    def list_versions(self, container_id: str) -> list[VersionRecord]:
        """All versions of a container, version 1 first; empty if it has none."""
        cid = require_text(container_id, "container_id")
        with self._session(f"list versions of container {cid!r}") as s:
            rows = s.stream(q.LIST_VERSIONS, (cid,))
            # Built while the rows stream in (on PostgreSQL the server sends the
            # rest meanwhile).
            return _rows.versions(rows, cid, self._dialect.times(s))

    def get_version(self, container_id: str, version: int) -> VersionRecord:
        """One version of a container; ``NotFound`` if it does not exist."""
        cid = require_text(container_id, "container_id")
        check_version(cid, version)
        with self._session(f"get version {version} of container {cid!r}") as s:
            row = s.execute(q.GET_VERSION, (cid, version)).fetchone()
        if row is None:
            raise NotFound(f"version {version} of container {cid!r} does not exist")
        return _rows.version(row, cid, self._dialect.when)

    def list_snapshots(self, container_id: str) -> list[SnapshotRecord]:
        """All recorded snapshots of a container, newest first, with their version numbers."""
        cid = require_text(container_id, "container_id")
        with self._session(f"list snapshots of container {cid!r}") as s:
            rows = s.execute(q.LIST_SNAPSHOTS, (cid,)).fetchall()
        return [_rows.snapshot(row, self._dialect.when) for row in rows]

    def add_event(self, container_id: str, event_type: str, payload: Mapping[str, object]) -> None:
        """Append a lifecycle event; ``NotFound`` if the container is not registered."""
        cid = require_text(container_id, "container_id")
        etype = require_text(event_type, "event_type")
        body = encode_payload(cid, etype, payload)
        params = (_new_id(), cid, etype, body, self._dialect.stamp(_now()))
        with self._session(f"add event {etype!r} to container {cid!r}") as s:
            s.execute(q.INSERT_EVENT, params)

    def list_events(self, container_id: str) -> list[EventRecord]:
        """A container's lifecycle events in the order they were added."""
        cid = require_text(container_id, "container_id")
        with self._session(f"list events of container {cid!r}") as s:
            rows = s.execute(q.LIST_EVENTS, (cid,)).fetchall()
        return [_rows.event(row, self._dialect.when) for row in rows]

    @contextmanager
    def _session(self, operation: str) -> Iterator[Session]:
        """A session whose statements commit one by one; failures become mcpmanager errors."""
        with translate(operation, self._dialect.classify):
            self._check_open()
            with self._dialect.read() as session:
                yield session

    @contextmanager
    def _transaction(self, operation: str) -> Iterator[Session]:
        """A session inside one transaction; failures become mcpmanager errors."""
        with translate(operation, self._dialect.classify):
            self._check_open()
            with self._dialect.write() as session:
                yield session

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition(f"version store {self._dialect.where} is closed")
