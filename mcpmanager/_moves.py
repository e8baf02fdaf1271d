"""Snapshot moves: snapshots, versions and rollback, journaled so none is ever lost.

A snapshot or version commits the container's active snapshot and moves the
container onto a fresh active snapshot prepared from it; a rollback moves it
onto one prepared from an older version. The move (stop, commit, prepare,
delete the container, recreate it, start) is written to an intent file under
``<data_root>/intents/`` before its first step and removed only once the
store has recorded it. A move a fault or a crash cut short is finished (or, if
it had not got far, undone) from that intent: by :meth:`Moves.reconcile_one`,
and by the next move of the same bot before it starts, so a plain retry works.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

import attrs

from . import errors, naming
from ._atomic import atomic_write
from ._runtime import Runtime
from ._worker import run_to_completion
from .types import ContainerInfo
from .versions import (
    SOURCE_PRE_EXEC,
    SOURCE_ROLLBACK,
    BotSnapshotData,
    ManagedSnapshotMeta,
    ReconcileResult,
    display_snapshot_name,
)

if TYPE_CHECKING:
    from .store import VersionRecord, VersionStore

__all__ = ["Intent", "IntentJournal", "Moves"]


@attrs.frozen
class Intent:
    """A snapshot move in progress, written before its first step.

    ``commit_name`` is the committed snapshot the old active one becomes (empty
    for a rollback); ``parent`` is what ``new_key`` is prepared from;
    ``record`` is the store write to make once the move is done (None for a
    rollback, whose event is in ``event``).
    """

    bot_id: str
    container_id: str
    snapshotter: str
    image: str
    labels: Mapping[str, str]
    old_key: str
    new_key: str
    parent: str
    commit_name: str
    was_running: bool
    record: Mapping[str, Any] | None = None
    event: Mapping[str, Any] | None = None


class IntentJournal:
    """Intent files under ``<data_root>/intents``, one per bot, written atomically."""

    def __init__(self, data_root: str) -> None:
        self._dir = os.path.join(data_root, "intents")

    def _path(self, bot_id: str) -> str:
        return os.path.join(self._dir, f"{bot_id}.json")

    def write(self, intent: Intent) -> None:
        """Record ``intent`` durably before the move starts."""
        payload = json.dumps(attrs.asdict(intent), sort_keys=True).encode()

        def write(f: IO[bytes]) -> int:
            f.write(payload)
            return len(payload)

        atomic_write(self._path(intent.bot_id), write)

    def read(self, bot_id: str) -> Intent | None:
        """The bot's unfinished intent, if any."""
        try:
            with open(self._path(bot_id), encoding="utf-8") as f:
                raw = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise errors.FailedPrecondition(
                f"bot {bot_id}: unreadable intent file {self._path(bot_id)}: {exc}"
            ) from exc
        return Intent(**raw)

    def remove(self, bot_id: str) -> None:
        """Forget the bot's intent once its move and record are complete."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._path(bot_id))

    def bots(self) -> list[str]:
        """Bots with an unfinished intent."""
        try:
            names = os.listdir(self._dir)
        except FileNotFoundError:
            return []
        return sorted(n[: -len(".json")] for n in names if n.endswith(".json"))


def _event_of(intent: Intent, rec: VersionRecord) -> tuple[str, dict[str, object]]:
    """The lifecycle event of a finished snapshot or version, as the original wrote it."""
    assert intent.record is not None
    name = intent.record["runtime_snapshot_name"]
    if intent.record["source"] == SOURCE_PRE_EXEC and not rec.display_name:
        return "version_create", {
            "snapshot_name": name,
            "version": rec.version,
            "version_id": rec.id,
        }
    return "snapshot_create", {
        "snapshot_name": display_snapshot_name(rec.display_name, rec.version),
        "display_name": rec.display_name,
        "runtime_snapshot_name": name,
        "snapshotter": intent.snapshotter,
        "source": rec.source,
        "version": rec.version,
    }


class Moves:
    """Carries out, records and repairs snapshot moves (bot lock held by the caller)."""

    def __init__(
        self, runtime: Runtime, journal: IntentJournal, store: VersionStore | None
    ) -> None:
        self._rt = runtime
        self._journal = journal
        self.store = store

    # -- the operations ----------------------------------------------------------

    def snapshot(
        self, store: VersionStore, bot_id: str, kind: str, display: str, source: str
    ) -> tuple[ContainerInfo, VersionRecord]:
        """Commit the bot's filesystem as a numbered snapshot; a retry finishes a failed one.

        If the bot's last move was cut short, it is finished first; when it was
        this same request (same display name and source), its result is the
        answer, so a plain retry neither loses nor doubles a version.
        """
        done = self.finish_pending(bot_id)
        if done is not None:
            intent, rec = done
            asked = {"display_name": display, "source": source}
            record = intent.record or {}
            if rec is not None and all(record.get(k) == v for k, v in asked.items()):
                return self._rt.service.get_container(intent.container_id), rec
        commit = naming.runtime_name(naming.container_id(bot_id), kind)
        return run_to_completion(
            lambda: self.commit(store, bot_id, commit, display, source), f"snapshot-{bot_id}"
        )

    def roll_back(self, bot_id: str, target: str, version: int) -> None:
        """Move the bot onto ``target``; a retry after a fault finishes the failed move."""
        done = self.finish_pending(bot_id)
        if done is not None and done[0].record is None and done[0].parent == target:
            return
        run_to_completion(
            lambda: self.rollback(bot_id, target, version, SOURCE_ROLLBACK), f"rollback-{bot_id}"
        )

    def snapshot_data(self, bot_id: str) -> BotSnapshotData:
        """The bot's container, its own snapshots with their ancestry, and the store's metadata."""
        service = self._rt.service
        cid = naming.container_id(bot_id)
        info = service.get_container(cid)
        snapshotter = info.snapshotter.strip() or self._rt.snapshotter()
        runtime = naming.own_lineage(
            service.list_snapshots(snapshotter), cid, bot_id, info.snapshot_key
        )
        records = self.store.list_snapshots(cid) if self.store is not None else []
        meta = {
            r.runtime_snapshot_name: ManagedSnapshotMeta(r.source, r.version, r.display_name)
            for r in records
            if r.runtime_snapshot_name
        }
        return BotSnapshotData(cid, info, snapshotter, tuple(runtime), meta)

    # -- starting a move ---------------------------------------------------------

    def commit(
        self, store: VersionStore, bot_id: str, commit: str, display: str, source: str
    ) -> tuple[ContainerInfo, VersionRecord]:
        """Commit the bot's filesystem as ``commit`` and move it onto a fresh active snapshot."""
        info = self._rt.service.get_container(naming.container_id(bot_id))
        snapshotter = info.snapshotter or self._rt.snapshotter()
        # Registering first means an unreachable store fails before anything moves.
        store.upsert_container(info.id, bot_id, info.image, snapshotter)
        record = {
            "runtime_snapshot_name": commit,
            "display_name": display,
            "parent_runtime_snapshot_name": info.snapshot_key,
            "source": source,
        }
        intent = self._intent(info, bot_id, "active", parent=commit, commit_name=commit)
        rec = self.carry_out(attrs.evolve(intent, record=record))
        assert rec is not None
        self._rt.log(bot_id).info("committed %s as version %d", commit, rec.version)
        return info, rec

    def rollback(self, bot_id: str, target: str, version: int, source: str) -> None:
        """Move the bot's container onto a fresh snapshot prepared from ``target``."""
        info = self._rt.service.get_container(naming.container_id(bot_id))
        event: dict[str, object] = {
            "type": "version_rollback",
            "payload": {"snapshot_name": target, "version": version, "source": source},
        }
        intent = self._intent(info, bot_id, "rollback", parent=target)
        self.carry_out(attrs.evolve(intent, event=event))

    def finish_pending(self, bot_id: str) -> tuple[Intent, VersionRecord | None] | None:
        """Finish (or undo) the bot's interrupted move, if it has one.

        Run before every new move, so a move retried after a fault picks up
        where the failed one stopped instead of stranding its data. Returns
        the intent and its record when the move was finished, None when there
        was none or it was undone.
        """
        pending = self._journal.read(bot_id)
        if pending is None:
            return None
        result, rec = self._resume(pending)
        self._rt.log(bot_id).warning("%s %s", result.action, result.snapshot)
        return (pending, rec) if result.snapshot == pending.new_key else None

    def _intent(
        self, info: ContainerInfo, bot_id: str, kind: str, *, parent: str, commit_name: str = ""
    ) -> Intent:
        return Intent(
            bot_id=bot_id,
            container_id=info.id,
            snapshotter=info.snapshotter or self._rt.snapshotter(),
            image=info.image,
            labels=dict(info.labels),
            old_key=info.snapshot_key,
            new_key=naming.runtime_name(info.id, kind),
            parent=parent,
            commit_name=commit_name,
            was_running=self._rt.is_running(info.id),
        )

    def carry_out(self, intent: Intent) -> VersionRecord | None:
        """Journal the move, make it, record it, and only then forget the intent."""
        self._journal.write(intent)
        self._move(intent)
        self._drop_abandoned(intent)
        rec = self._record(intent)
        self._journal.remove(intent.bot_id)
        return rec

    # -- the steps -----------------------------------------------------------------

    def _move(self, intent: Intent) -> None:
        """Stop, commit (unless rolling back), prepare, recreate the container, restart."""
        service, snapshotter = self._rt.service, intent.snapshotter
        if intent.was_running:
            self._rt.halt(intent.bot_id)
        if intent.commit_name:
            labels = naming.bot_labels(intent.bot_id)  # the backend keeps it from its GC
            service.commit_snapshot(snapshotter, intent.commit_name, intent.old_key, labels)
        service.prepare_snapshot(
            snapshotter, intent.new_key, intent.parent, naming.bot_labels(intent.bot_id)
        )
        self._land(intent, intent.new_key)

    def _land(self, intent: Intent, key: str) -> None:
        """Put the container on ``key`` and restart it if it was running."""
        self._rt.replace_container(
            intent.bot_id,
            key,
            image=intent.image,
            snapshotter=intent.snapshotter,
            labels=dict(intent.labels),
        )
        if intent.was_running:
            self._rt.ensure_running(intent.bot_id)

    def _drop_abandoned(self, intent: Intent) -> None:
        """Remove the active snapshot a rollback moved the container off.

        A snapshot or version commits (and so consumes) the old active
        snapshot; a rollback leaves it behind, and a snapshot left behind would
        later look like an orphan holding the bot's data.
        """
        if not intent.commit_name and intent.old_key != intent.new_key:
            self._rt.remove_snapshot(intent.bot_id, intent.snapshotter, intent.old_key)

    def _record(self, intent: Intent) -> VersionRecord | None:
        """Write the store rows and event of a finished move.

        ``record_snapshot`` is idempotent on the runtime snapshot name, so a
        move finished again after a fault gets the number it was first given.
        """
        store = self.store
        if store is None or (intent.record is None and intent.event is None):
            return None
        if intent.record is None:
            assert intent.event is not None
            store.add_event(
                intent.container_id, str(intent.event["type"]), dict(intent.event["payload"])
            )
            return None
        rec = store.record_snapshot(
            intent.container_id, snapshotter=intent.snapshotter, **intent.record
        )
        store.add_event(intent.container_id, *_event_of(intent, rec))
        return rec

    # -- repair --------------------------------------------------------------------

    def orphaned_bots(self) -> list[str]:
        """Bots with an active snapshot of theirs but no container."""
        service = self._rt.service
        existing = {c.id for c in service.list_containers()}
        found = set()
        for snap in service.list_snapshots(self._rt.snapshotter()):
            bot = naming.snapshot_bot(snap)
            if bot and naming.CONTAINER_PREFIX + bot not in existing:
                found.add(bot)
        return sorted(found)

    def pending_bots(self) -> list[str]:
        """Bots with an unfinished move in the journal."""
        return self._journal.bots()

    def to_repair(self) -> list[str]:
        """Bots :meth:`reconcile_one` may have work for: a pending move or an orphan, sorted."""
        return sorted(set(self.pending_bots()) | set(self.orphaned_bots()))

    def reconcile_one(self, bot_id: str) -> ReconcileResult:
        """Finish the bot's interrupted move, or rebuild its vanished container.

        Runs to the end even if the calling thread is interrupted.
        """
        result = run_to_completion(lambda: self._reconcile(bot_id), f"reconcile-{bot_id}")
        if result.action != "nothing to do":
            self._rt.log(bot_id).warning("reconcile: %s %s", result.action, result.snapshot)
        return result

    def _reconcile(self, bot_id: str) -> ReconcileResult:
        intent = self._journal.read(bot_id)
        if intent is not None:
            return self._resume(intent)[0]
        service = self._rt.service
        try:
            service.get_container(naming.container_id(bot_id))
            return ReconcileResult(bot_id, "nothing to do")
        except errors.NotFound:
            pass
        orphan = self._rt.newest_orphan(bot_id)
        if not orphan:
            return ReconcileResult(bot_id, "nothing to do")
        service.create_container_from_snapshot(self._rt.bot_request(bot_id, orphan))
        self._rt.ensure_running(bot_id)
        return ReconcileResult(bot_id, "recreated the container on", orphan)

    def _resume(self, intent: Intent) -> tuple[ReconcileResult, VersionRecord | None]:
        """Finish an interrupted move from whatever its steps left behind."""
        service = self._rt.service
        snaps = {s.name: s for s in service.list_snapshots(intent.snapshotter)}
        old = snaps.get(intent.old_key)
        if intent.new_key in snaps:
            target, action = intent.new_key, "finished the interrupted move to"
        elif old is not None and old.kind == "active":
            target, action = intent.old_key, "undid the interrupted move, back on"
        elif intent.parent in snaps:
            service.prepare_snapshot(
                intent.snapshotter,
                intent.new_key,
                intent.parent,
                naming.bot_labels(intent.bot_id),
            )
            target, action = intent.new_key, "finished the interrupted move to"
        else:
            raise errors.FailedPrecondition(
                f"cannot repair: none of {intent.new_key}, {intent.old_key}, {intent.parent} exist"
            )
        self._land(intent, target)
        rec = None
        if target == intent.new_key:
            self._drop_abandoned(intent)
            rec = self._record(intent)
        self._journal.remove(intent.bot_id)
        return ReconcileResult(intent.bot_id, action, target), rec
