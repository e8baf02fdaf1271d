"""Images on every backend: pull, get, list, delete, resolve, import; results and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcpmanager import errors
from mcpmanager.types import PullImageOptions
from tests.contract.backends import Backend

BAD_REFS = ("", "Bad Ref!", "UPPER/case:1", "busybox:bad tag", "busybox@sha256:short")
"""References no registry accepts (containerd's reference grammar)."""


def test_pull_get_list_delete(backend: Backend) -> None:
    svc = backend.service
    ref, digest = backend.remote()
    assert svc.resolve_remote_digest(ref) == digest
    with pytest.raises(errors.NotFound):
        svc.get_image(ref)
    image = svc.pull_image(ref)
    assert (image.name, image.id) == (ref, digest)
    assert svc.get_image(ref) == image
    assert image in svc.list_images()
    svc.delete_image(ref)
    with pytest.raises(errors.NotFound, match="contract/busybox"):
        svc.get_image(ref)
    assert image not in svc.list_images()
    with pytest.raises(errors.NotFound):
        svc.delete_image(ref)


def test_pull_without_unpack_and_synchronous_delete(backend: Backend) -> None:
    ref, digest = backend.remote()
    image = backend.service.pull_image(ref, PullImageOptions(unpack=False))
    assert image.id == digest
    backend.service.delete_image(ref, synchronous=True)
    with pytest.raises(errors.NotFound):
        backend.service.get_image(ref)


def test_short_docker_hub_names_find_the_image(backend: Backend) -> None:
    svc = backend.service
    full = svc.get_image(backend.image)
    assert full.name == backend.image
    short = backend.image.removeprefix("docker.io/library/")
    assert svc.get_image(short) == full
    assert svc.get_image("library/" + short) == full


def test_unknown_image_is_not_found(backend: Backend) -> None:
    svc = backend.service
    with pytest.raises(errors.NotFound, match="never-there"):
        svc.get_image("docker.io/library/never-there:1")
    with pytest.raises(errors.NotFound, match="never-there"):
        svc.delete_image("never-there:1")


@pytest.mark.parametrize("ref", BAD_REFS)
def test_bad_references_are_invalid(backend: Backend, ref: str) -> None:
    svc = backend.service
    before = svc.list_images()
    for call in (svc.get_image, svc.delete_image, svc.pull_image, svc.resolve_remote_digest):
        with pytest.raises(errors.InvalidArgument):
            call(ref)
    assert svc.list_images() == before


def test_registry_down_is_unavailable(backend: Backend) -> None:
    svc = backend.service
    with backend.registry_down() as ref:
        with pytest.raises(errors.Unavailable):
            svc.resolve_remote_digest(ref)
        with pytest.raises(errors.Unavailable):
            svc.pull_image(ref)
        with pytest.raises(errors.NotFound):
            svc.get_image(ref)


def test_image_the_registry_lacks_is_not_found(backend: Backend) -> None:
    ref = backend.absent()
    with pytest.raises(errors.NotFound):
        backend.service.resolve_remote_digest(ref)
    with pytest.raises(errors.NotFound):
        backend.service.pull_image(ref)


def test_import_archive_by_path_and_file(backend: Backend) -> None:
    svc = backend.service
    image = svc.import_image(backend.archive)
    assert (image.name, image.id) == (backend.archive_ref, backend.archive_digest)
    assert svc.get_image(backend.archive_ref) == image
    svc.delete_image(backend.archive_ref)
    with open(backend.archive, "rb") as fh:
        renamed = svc.import_image(fh, ref="mcpm-contract-renamed:2")
    assert renamed.name == "docker.io/library/mcpm-contract-renamed:2"
    assert renamed.id == backend.archive_digest
    svc.delete_image(renamed.name)


def test_import_errors(backend: Backend, tmp_path: Path) -> None:
    svc = backend.service
    with pytest.raises(errors.NotFound):
        svc.import_image("/nonexistent/archive.tar")
    garbage = f"{tmp_path}/garbage.tar"
    with open(garbage, "wb") as fh:
        fh.write(b"not a tar at all" * 100)
    with pytest.raises(errors.InvalidArgument):
        svc.import_image(garbage)
    with pytest.raises(errors.InvalidArgument):
        svc.import_image(backend.archive, ref="Bad Ref!")
