"""Keeping the workspace image present and current (memoh's ``Init``)."""

from __future__ import annotations

import logging

from . import errors
from ._context import doing
from ._worker import call_with_deadline
from .config import ManagerConfig
from .service import ContainerService
from .types import ImageInfo, PullImageOptions

__all__ = ["ensure_image"]


def ensure_image(
    service: ContainerService, config: ManagerConfig, logger: logging.Logger, timeout: float
) -> ImageInfo:
    """The configured image, pulled when the registry has a newer one or there is none.

    The registry's digest is asked for within ``timeout`` seconds; when it
    cannot be reached, or the upgrade pull fails, a local copy is kept.
    """
    image = config.image_ref()
    try:
        remote = call_with_deadline(
            lambda: service.resolve_remote_digest(image), timeout, f"resolving {image}"
        )
    except Exception as exc:
        logger.warning("image upgrade check for %s failed, using the local image: %s", image, exc)
        with doing(f"init: image {image}"):
            local = _local_image(service, image)
            return local if local is not None else _pull(service, config, image)
    local = _local_image(service, image)
    if local is not None and local.id == remote:
        return local
    logger.info("pulling %s (%s)", image, "update" if local else "not present")
    try:
        return _pull(service, config, image)
    except errors.MCPManagerError as exc:
        if local is None:
            raise
        logger.warning("pull of %s failed, keeping the local image: %s", image, exc)
        return local


def _local_image(service: ContainerService, image: str) -> ImageInfo | None:
    try:
        return service.get_image(image)
    except errors.NotFound:
        return None


def _pull(service: ContainerService, config: ManagerConfig, image: str) -> ImageInfo:
    with doing(f"pull {image}"):
        return service.pull_image(
            image, PullImageOptions(unpack=True, snapshotter=config.snapshotter)
        )
