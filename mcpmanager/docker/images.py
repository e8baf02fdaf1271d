"""Images on Docker: pull with progress, look up, list, delete, ask the registry.

An :class:`~mcpmanager.types.ImageInfo`'s ``id`` is the registry digest the
image was pulled by (what :meth:`resolve_remote_digest` answers, so the
Manager's upgrade check compares like with like), or Docker's image ID
(its config digest) for an image that was loaded, committed or built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .. import errors
from .._log import get_logger
from ..config import normalize_image_ref
from ..types import ImageInfo, PullProgress
from . import labels as lb
from ._client import Connection
from ._errors import from_api_error, mapped
from .refs import full_name, split_tag

__all__ = ["get_image", "image_info", "list_images", "pull", "remote_digest", "remove_image"]

log = get_logger("mcpmanager.docker")


def _repo_of(ref: str) -> str:
    """The normalised repository of ``ref`` (no tag, no digest)."""
    name = ref.split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name = name[:colon]
    return normalize_image_ref(name)


def image_info(ref: str, doc: Mapping[str, Any]) -> ImageInfo:
    """ImageInfo of the inspected image ``doc`` as found under ``ref``."""
    repo = _repo_of(ref)
    digest = next(
        (
            d.split("@", 1)[1]
            for d in doc.get("RepoDigests") or []
            if "@" in d and _repo_of(d) == repo
        ),
        str(doc["Id"]),
    )
    tags = tuple(full_name(t) for t in doc.get("RepoTags") or [] if t and "<none>" not in t)
    name = full_name(ref) if "@" not in ref else normalize_image_ref(ref)
    return ImageInfo(name=name, id=digest, tags=tags)


def get_image(conn: Connection, ref: str) -> ImageInfo:
    """The local image ``ref``; NotFound if Docker has none by that name."""
    if not ref.strip():
        raise errors.InvalidArgument("image reference is empty")
    with mapped(f"get image {ref}"):
        doc = conn.inspect_image(ref)
    return image_info(ref, doc)


def list_images(conn: Connection) -> list[ImageInfo]:
    """Every tagged local image, one entry per tag; snapshot images are left out."""
    with mapped("list images"):
        found = conn.api().images(all=False)
    out: list[ImageInfo] = []
    for doc in found:
        if (doc.get("Labels") or {}).get(lb.KIND) == lb.KIND_SNAPSHOT:
            continue
        for tag in doc.get("RepoTags") or []:
            if tag and "<none>" not in tag:
                out.append(image_info(tag, doc))
    return out


def remove_image(conn: Connection, ref: str) -> None:
    """Delete image ``ref``; FailedPrecondition while a container or child image uses it."""
    if not ref.strip():
        raise errors.InvalidArgument("image reference is empty")
    with mapped(f"delete image {ref}"):
        conn.api().remove_image(ref, force=False, noprune=False)


def remote_digest(conn: Connection, ref: str) -> str:
    """The digest the registry serves for ``ref`` now (asked by the daemon, nothing pulled)."""
    if not ref.strip():
        raise errors.InvalidArgument("image reference is empty")
    with mapped(f"resolve {ref} at its registry"):
        doc = conn.inspect_distribution(ref)
    digest = str((doc.get("Descriptor") or {}).get("digest", ""))
    if not digest.startswith("sha256:"):
        raise errors.Unavailable(f"resolve {ref}: the registry answered no digest")
    return digest


class _Reporter:
    """Turns Docker's pull messages into PullProgress for one callback."""

    def __init__(self, ref: str, callback: Callable[[PullProgress], None] | None) -> None:
        self.ref = ref
        self.callback = callback
        self.totals: dict[str, int] = {}

    def feed(self, event: Mapping[str, Any]) -> None:
        layer = str(event.get("id") or "")
        status = str(event.get("status") or "")
        if self.callback is None or not layer or " " in layer:
            return
        detail = event.get("progressDetail") or {}
        if status == "Downloading":
            total = int(detail.get("total") or 0)
            self.totals[layer] = total
            self._send(layer, int(detail.get("current") or 0), total)
        elif status in ("Download complete", "Already exists", "Pull complete"):
            total = self.totals.pop(layer, 0)
            if status != "Pull complete" or total:
                self._send(layer, total or 1, total or 1)

    def _send(self, layer: str, done: int, total: int) -> None:
        assert self.callback is not None
        try:
            self.callback(PullProgress(ref=self.ref, digest=layer, done=done, total=total))
        except Exception:
            log.warning("pull progress callback failed", exc_info=True)


def pull(conn: Connection, ref: str, progress: Callable[[PullProgress], None] | None) -> ImageInfo:
    """Pull ``ref`` through the daemon, reporting each layer's download to ``progress``."""
    repo, tag = (ref, None) if "@" in ref else split_tag(ref)
    reporter = _Reporter(full_name(ref) if "@" not in ref else ref, progress)
    with mapped(f"pull {ref}"):
        for event in conn.api().pull(repo, tag=tag, stream=True, decode=True):
            if event.get("error"):
                detail = event.get("errorDetail") or {}
                raise from_api_error(
                    int(detail.get("code") or 500), str(event["error"]), f"pull {ref}"
                )
            reporter.feed(event)
    log.info("pulled %s", ref)
    return get_image(conn, ref)
