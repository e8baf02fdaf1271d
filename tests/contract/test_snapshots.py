"""Snapshots on every backend: commit, list, prepare, mounts, remove, containers on them."""

from __future__ import annotations

import pytest

from mcpmanager import errors
from mcpmanager.types import (
    ContainerSpec,
    CreateContainerRequest,
    DeleteContainerOptions,
    SnapshotInfo,
)
from tests.contract.backends import LONG_RUNNING, SNAPSHOTTER, Backend

SN = SNAPSHOTTER


def _snaps(backend: Backend) -> dict[str, SnapshotInfo]:
    return {s.name: s for s in backend.service.list_snapshots(SN)}


def _committed(backend: Backend) -> tuple[str, str]:
    """A container and the committed snapshot made from its active one."""
    cid = backend.create().id
    name = f"{cid}-s1"
    backend.service.commit_snapshot(SN, name, cid, {"contract": "yes"})
    return cid, name


def _on_snapshot(backend: Backend, cid: str, key: str, image: str = "") -> CreateContainerRequest:
    return CreateContainerRequest(
        id=cid,
        image_ref=image or backend.image,
        snapshot_id=key,
        labels={"on": "snapshot"},
        spec=ContainerSpec(cmd=LONG_RUNNING),
    )


def test_commit_lists_a_committed_snapshot(backend: Backend) -> None:
    cid, name = _committed(backend)
    snaps = _snaps(backend)
    assert cid not in snaps  # committing consumes the active key
    snap = snaps[name]
    assert (snap.name, snap.kind) == (name, "committed")
    assert snap.parent
    assert snap.labels["contract"] == "yes"
    assert snap.created is not None
    assert snap.created.tzinfo is not None


def test_a_prefix_lists_only_the_snapshots_named_so(backend: Backend) -> None:
    cid, name = _committed(backend)
    other = backend.create().id
    backend.service.prepare_snapshot(SN, f"{cid}-active-7", name)
    mine = {s.name for s in backend.service.list_snapshots(SN, prefix=cid)}
    assert mine == {name, f"{cid}-active-7"}
    assert other in _snaps(backend)  # the others are still there without a prefix
    assert backend.service.list_snapshots(SN, prefix=f"{cid}.") == []  # a regex dot is a dot
    assert backend.service.list_snapshots(SN, prefix=f"{cid}-s1") != []


def test_commit_errors(backend: Backend) -> None:
    svc = backend.service
    _cid, name = _committed(backend)
    other = backend.create().id
    with pytest.raises(errors.AlreadyExists, match=name):
        svc.commit_snapshot(SN, name, other)
    with pytest.raises(errors.NotFound, match="nope-4"):
        svc.commit_snapshot(SN, f"{other}-x", "nope-4")
    with pytest.raises(errors.InvalidArgument):
        svc.commit_snapshot(SN, "", other)
    with pytest.raises(errors.InvalidArgument):
        svc.commit_snapshot(SN, f"{other}-y", "")
    with pytest.raises(errors.FailedPrecondition):
        svc.commit_snapshot(SN, f"{other}-z", name)  # committed, not active
    assert other in _snaps(backend)


def test_prepare_on_a_committed_parent(backend: Backend) -> None:
    svc = backend.service
    cid, name = _committed(backend)
    key = f"{cid}-active"
    svc.prepare_snapshot(SN, key, name, {"mcp.bot_id": "b1"})
    snap = _snaps(backend)[key]
    assert (snap.kind, snap.parent, snap.labels["mcp.bot_id"]) == ("active", name, "b1")
    with pytest.raises(errors.AlreadyExists, match=key):
        svc.prepare_snapshot(SN, key, name)
    if not backend.mounts:
        with pytest.raises(errors.NotSupported, match=key):
            svc.snapshot_mounts(SN, key)
        return
    mounts = svc.snapshot_mounts(SN, key)
    assert mounts
    assert all(m.type and m.source for m in mounts)


def test_prepare_errors(backend: Backend) -> None:
    svc = backend.service
    cid, name = _committed(backend)
    active = backend.create().id
    with pytest.raises(errors.NotFound, match="nope-5"):
        svc.prepare_snapshot(SN, f"{cid}-a", "nope-5")
    with pytest.raises(errors.InvalidArgument):
        svc.prepare_snapshot(SN, "", name)
    with pytest.raises(errors.InvalidArgument):
        svc.prepare_snapshot(SN, f"{cid}-b", "")
    with pytest.raises(errors.InvalidArgument):
        svc.prepare_snapshot(SN, f"{cid}-c", active)  # parent is not committed
    assert not {f"{cid}-a", f"{cid}-b", f"{cid}-c"} & set(_snaps(backend))


def test_mounts_errors(backend: Backend) -> None:
    svc = backend.service
    with pytest.raises(errors.NotFound, match="nope-6"):
        svc.snapshot_mounts(SN, "nope-6")
    with pytest.raises(errors.InvalidArgument):
        svc.snapshot_mounts(SN, "")


def test_container_from_snapshot(backend: Backend) -> None:
    svc = backend.service
    cid, name = _committed(backend)
    key = f"{cid}-active"
    svc.prepare_snapshot(SN, key, name)
    new = backend.new_id()
    info = svc.create_container_from_snapshot(_on_snapshot(backend, new, key))
    assert (info.id, info.image, info.snapshot_key) == (new, backend.image, key)
    assert (info.snapshotter, info.labels) == (SN, {"on": "snapshot"})
    assert svc.get_container(new) == info
    svc.start_container(new)
    svc.delete_container(new, DeleteContainerOptions(cleanup_snapshot=False))
    assert _snaps(backend)[key].kind == "active"


def test_container_from_snapshot_errors(backend: Backend) -> None:
    svc = backend.service
    cid, name = _committed(backend)
    key = f"{cid}-active"
    svc.prepare_snapshot(SN, key, name)
    with pytest.raises(errors.AlreadyExists, match=cid):
        svc.create_container_from_snapshot(_on_snapshot(backend, cid, key))
    new = backend.new_id()
    with pytest.raises(errors.NotFound, match="nope-7"):
        svc.create_container_from_snapshot(_on_snapshot(backend, new, "nope-7"))
    with pytest.raises(errors.FailedPrecondition, match=name):
        svc.create_container_from_snapshot(_on_snapshot(backend, new, name))
    with pytest.raises(errors.InvalidArgument):
        svc.create_container_from_snapshot(_on_snapshot(backend, new, key, image="Bad Ref!"))
    with pytest.raises(errors.NotFound):
        svc.get_container(new)


def test_container_from_snapshot_pulls_a_missing_image(backend: Backend) -> None:
    svc = backend.service
    ref, digest = backend.remote()
    cid, name = _committed(backend)
    key = f"{cid}-active"
    svc.prepare_snapshot(SN, key, name)
    new = backend.new_id()
    with backend.registry_down() as down, pytest.raises(errors.Unavailable):
        svc.create_container_from_snapshot(_on_snapshot(backend, new, key, image=down))
    with pytest.raises(errors.NotFound):
        svc.get_container(new)
    info = svc.create_container_from_snapshot(_on_snapshot(backend, new, key, image=ref))
    assert info.image == ref
    assert svc.get_image(ref).id == digest


def test_remove_snapshot(backend: Backend) -> None:
    svc = backend.service
    cid, name = _committed(backend)
    key = f"{cid}-active"
    svc.prepare_snapshot(SN, key, name)
    with pytest.raises(errors.FailedPrecondition, match=name):
        svc.remove_snapshot(SN, name)  # it has a child
    new = backend.new_id()
    svc.create_container_from_snapshot(_on_snapshot(backend, new, key))
    with pytest.raises(errors.FailedPrecondition, match=key):
        svc.remove_snapshot(SN, key)  # a container uses it
    svc.delete_container(new, DeleteContainerOptions(cleanup_snapshot=False))
    svc.remove_snapshot(SN, key)
    svc.remove_snapshot(SN, name)
    assert not {key, name} & set(_snaps(backend))
    with pytest.raises(errors.NotFound, match=name):
        svc.remove_snapshot(SN, name)
    with pytest.raises(errors.InvalidArgument):
        svc.remove_snapshot(SN, "")


def test_snapshotter_must_be_named(backend: Backend) -> None:
    svc = backend.service
    cid, name = _committed(backend)
    calls = (
        lambda: svc.list_snapshots(""),
        lambda: svc.commit_snapshot("", f"{cid}-n", cid),
        lambda: svc.prepare_snapshot("", f"{cid}-p", name),
        lambda: svc.remove_snapshot("", name),
        lambda: svc.snapshot_mounts("", name),
    )
    for call in calls:
        with pytest.raises(errors.InvalidArgument, match="snapshotter"):
            call()
    assert name in _snaps(backend)


def test_keys_need_not_be_identifiers(backend: Backend) -> None:
    """containerd checks container IDs, not snapshot keys (layer keys hold ':')."""
    svc = backend.service
    cid, name = _committed(backend)
    key = f"{cid}-odd:key/with space"
    svc.prepare_snapshot(SN, key, name)
    committed = f"{cid}-sha256:{'0' * 8}"
    svc.commit_snapshot(SN, committed, key)
    assert _snaps(backend)[committed].parent == name
