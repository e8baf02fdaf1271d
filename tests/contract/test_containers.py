"""Containers on every backend: create, get, list, list by label, delete; results and errors."""

from __future__ import annotations

import pytest

from mcpmanager import errors
from mcpmanager.types import (
    ContainerSpec,
    CreateContainerRequest,
    DeleteContainerOptions,
)
from tests.contract.backends import LONG_RUNNING, SNAPSHOTTER, Backend

BAD_IDS = ("", "p-", "-p", "p--q", "p..q", "a" * 77, "bad/id", "with space", "ünï", "p:q")
"""Container IDs containerd's identifier rule refuses."""

GOOD_IDS = ("a" * 76, "A.b_c-d9", "x")
"""Container IDs at the edges of the rule that it accepts."""


def _snapshot_names(backend: Backend) -> set[str]:
    return {s.name for s in backend.service.list_snapshots(SNAPSHOTTER)}


def test_create_get_list(backend: Backend) -> None:
    svc = backend.service
    cid = backend.new_id()
    info = backend.create(cid, labels={"mcp.bot_id": "b1", "other": "x"})
    assert (info.id, info.image, info.labels) == (
        cid,
        backend.image,
        {"mcp.bot_id": "b1", "other": "x"},
    )
    assert (info.snapshotter, info.snapshot_key) == (SNAPSHOTTER, cid)
    assert info.runtime == backend.runtime
    assert info.created_at is not None
    assert info.created_at.tzinfo is not None
    assert svc.get_container(cid) == info
    assert info in svc.list_containers()
    assert cid in _snapshot_names(backend)


def test_list_by_label(backend: Backend) -> None:
    svc = backend.service
    key = f"contract.{backend.new_id('l')}"
    a = backend.create(labels={key: "one"}).id
    b = backend.create(labels={key: "two"}).id
    backend.create()
    assert {c.id for c in svc.list_containers_by_label(key)} == {a, b}
    assert [c.id for c in svc.list_containers_by_label(key, "two")] == [b]
    assert svc.list_containers_by_label(key, "three") == []
    with pytest.raises(errors.InvalidArgument):
        svc.list_containers_by_label("")


def test_duplicate_is_already_exists(backend: Backend) -> None:
    cid = backend.create().id
    with pytest.raises(errors.AlreadyExists, match=cid):
        backend.create(cid)


@pytest.mark.parametrize("cid", BAD_IDS)
def test_bad_ids_are_invalid_everywhere(backend: Backend, cid: str) -> None:
    svc = backend.service
    before = svc.list_containers()
    with pytest.raises(errors.InvalidArgument):
        backend.create(cid)
    calls = (
        svc.get_container,
        svc.delete_container,
        svc.start_container,
        svc.stop_container,
        svc.delete_task,
        svc.get_task_info,
    )
    for call in calls:
        with pytest.raises(errors.InvalidArgument):
            call(cid)
    req = CreateContainerRequest(id=cid, image_ref=backend.image, snapshot_id="whatever")
    with pytest.raises(errors.InvalidArgument):
        svc.create_container_from_snapshot(req)
    assert svc.list_containers() == before


@pytest.mark.parametrize("cid", GOOD_IDS)
def test_ids_at_the_edge_of_the_rule(backend: Backend, cid: str) -> None:
    backend.ids.append(cid)
    if len(cid) < backend.shortest_id:  # a limit of the backend, said clearly
        with pytest.raises(errors.InvalidArgument, match="at least"):
            backend.create(cid)
        with pytest.raises(errors.InvalidArgument, match="at least"):
            backend.service.get_container(cid)
        return
    assert backend.create(cid).id == cid
    assert backend.service.get_container(cid).id == cid


def test_missing_container_is_not_found(backend: Backend) -> None:
    svc = backend.service
    for call in (svc.get_container, svc.delete_container):
        with pytest.raises(errors.NotFound, match="nope-1"):
            call("nope-1")


def test_delete_removes_the_snapshot_unless_told(backend: Backend) -> None:
    svc = backend.service
    gone = backend.create().id
    svc.delete_container(gone)
    with pytest.raises(errors.NotFound):
        svc.get_container(gone)
    assert gone not in _snapshot_names(backend)
    kept = backend.create().id
    svc.delete_container(kept, DeleteContainerOptions(cleanup_snapshot=False))
    assert kept in _snapshot_names(backend)
    with pytest.raises(errors.AlreadyExists, match="snapshot"):
        backend.create(kept)  # an orphaned snapshot is never replaced
    with pytest.raises(errors.NotFound):
        svc.get_container(kept)
    assert kept in _snapshot_names(backend)


def test_delete_kills_a_running_task(backend: Backend) -> None:
    svc = backend.service
    cid = backend.create().id
    svc.start_container(cid)
    svc.delete_container(cid)
    with pytest.raises(errors.NotFound):
        svc.get_container(cid)
    with pytest.raises(errors.NotFound):
        svc.get_task_info(cid)
    assert cid not in {t.container_id for t in svc.list_tasks()}


def test_create_pulls_a_missing_image(backend: Backend) -> None:
    svc = backend.service
    ref, digest = backend.remote()
    with pytest.raises(errors.NotFound):
        svc.get_image(ref)
    info = backend.create(image=ref)
    assert info.image == ref
    assert svc.get_image(ref).id == digest


def test_create_with_registry_down(backend: Backend) -> None:
    svc = backend.service
    cid = backend.new_id()
    with backend.registry_down() as ref, pytest.raises(errors.Unavailable):
        backend.create(cid, image=ref)
    with pytest.raises(errors.NotFound):
        svc.get_container(cid)
    assert cid not in _snapshot_names(backend)


def test_create_with_image_the_registry_lacks(backend: Backend) -> None:
    ref = backend.absent()
    cid = backend.new_id()
    with pytest.raises(errors.NotFound):
        backend.create(cid, image=ref)
    with pytest.raises(errors.NotFound):
        backend.service.get_container(cid)


def test_create_with_bad_image_ref(backend: Backend) -> None:
    cid = backend.new_id()
    for ref in ("", "Bad Ref!"):
        req = CreateContainerRequest(id=cid, image_ref=ref, spec=ContainerSpec(cmd=LONG_RUNNING))
        with pytest.raises(errors.InvalidArgument):
            backend.service.create_container(req)
    with pytest.raises(errors.NotFound):
        backend.service.get_container(cid)
