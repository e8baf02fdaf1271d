"""The fake's snapshots: a directory of real files each, kept by containerd's rules.

:class:`SnapshotTree` holds every snapshotter's snapshots of one
:class:`~mcpmanager.fake.FakeContainerService` under its root: committed ones
are parents, active ones are copies of their parent that containers write to.
It is not locked; the fake holds its own lock around every call.
"""

from __future__ import annotations

import itertools
import os
import shutil
import stat
from datetime import datetime, timezone

import attrs

from . import errors
from .naming import DEFAULT_SNAPSHOTTER
from .types import SnapshotInfo

__all__ = ["FakeSnapshot", "SnapshotTree", "tree_bytes"]


def now() -> datetime:
    """The current time, in UTC, as the fake stamps everything."""
    return datetime.now(timezone.utc)


@attrs.define
class FakeSnapshot:
    """One snapshot: its place in the chain and the directory holding its files."""

    name: str
    parent: str
    kind: str
    path: str
    labels: dict[str, str]
    created: datetime
    updated: datetime

    def info(self) -> SnapshotInfo:
        """What the protocol reports of it."""
        return SnapshotInfo(
            name=self.name,
            parent=self.parent,
            kind=self.kind,
            created=self.created,
            updated=self.updated,
            labels=self.labels,
        )


class SnapshotTree:
    """Every snapshotter's snapshots, each a directory under ``root/snapshots``."""

    def __init__(self, root: str) -> None:
        self._root = root
        self._by_snapshotter: dict[str, dict[str, FakeSnapshot]] = {}
        self._dirs = itertools.count(1)

    def has(self, snapshotter: str, key: str) -> bool:
        """Whether snapshot ``key`` exists."""
        return key in self._by_snapshotter.get(snapshotter, {})

    def get(self, snapshotter: str, key: str) -> FakeSnapshot:
        """Snapshot ``key`` (an empty snapshotter means the default); NotFound if missing."""
        if not key:
            raise errors.InvalidArgument("snapshot key must not be empty")
        try:
            return self._by_snapshotter[snapshotter or DEFAULT_SNAPSHOTTER][key]
        except KeyError:
            raise errors.NotFound(f"snapshot {key} not found in {snapshotter}") from None

    def new(self, snapshotter: str, key: str, parent: str, kind: str) -> FakeSnapshot:
        """Make snapshot ``key``: a copy of ``parent``'s files, or an empty directory."""
        path = os.path.join(self._root, "snapshots", str(next(self._dirs)))
        if parent:
            shutil.copytree(self.get(snapshotter, parent).path, path, symlinks=True)
        else:
            os.makedirs(path)
        stamp = now()
        snap = FakeSnapshot(key, parent, kind, path, {}, stamp, stamp)
        self._by_snapshotter.setdefault(snapshotter, {})[key] = snap
        return snap

    def drop(self, snapshotter: str, key: str) -> None:
        """Forget snapshot ``key`` and delete its files; a missing one is fine."""
        snap = self._by_snapshotter.get(snapshotter, {}).pop(key, None)
        if snap is not None:
            shutil.rmtree(snap.path, ignore_errors=True)

    def commit(self, snapshotter: str, name: str, key: str, labels: dict[str, str]) -> None:
        """Turn active ``key`` into committed ``name`` (``key`` goes away)."""
        snap = self.get(snapshotter, key)
        if snap.kind != "active":
            raise errors.FailedPrecondition(f"snapshot {key} is {snap.kind}, not active")
        snaps = self._by_snapshotter[snapshotter]
        if name in snaps:
            raise errors.AlreadyExists(f"snapshot {name} already exists in {snapshotter}")
        del snaps[key]
        snap.name, snap.kind, snap.updated = name, "committed", now()
        snap.labels = dict(labels)
        snaps[name] = snap

    def prepare(self, snapshotter: str, key: str, parent: str, labels: dict[str, str]) -> None:
        """Make active ``key`` as a copy of committed ``parent``."""
        if self.has(snapshotter, key):
            raise errors.AlreadyExists(f"snapshot {key} already exists in {snapshotter}")
        if self.get(snapshotter, parent).kind != "committed":
            raise errors.InvalidArgument(f"parent snapshot {parent} is not committed")
        self.new(snapshotter, key, parent=parent, kind="active").labels = dict(labels)

    def remove(self, snapshotter: str, key: str, users: list[str]) -> None:
        """Remove ``key`` unless a snapshot is built on it or a container (``users``) uses it."""
        self.get(snapshotter, key)
        if any(s.parent == key for s in self._by_snapshotter[snapshotter].values()):
            raise errors.FailedPrecondition(f"snapshot {key} has children; remove them first")
        if users:
            raise errors.FailedPrecondition(f"snapshot {key} is used by container {users[0]}")
        self.drop(snapshotter, key)

    def listing(self, snapshotter: str, prefix: str = "") -> list[SnapshotInfo]:
        """The snapshots of ``snapshotter`` whose names start with ``prefix``."""
        snaps = self._by_snapshotter.get(snapshotter, {})
        return [s.info() for name, s in snaps.items() if name.startswith(prefix)]


def tree_bytes(path: str) -> int:
    """The apparent size of every regular file under ``path``, never following a link."""
    total = 0
    for parent, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(parent, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total
