"""mcpmanager: give every AI bot its own long-lived workspace container.

Start with :class:`Manager` on a :class:`~mcpmanager.fake.FakeContainerService`
(in memory, no root) or a :class:`mcpmanager.containerd.ContainerdService`.
"""

from __future__ import annotations

from . import errors, types
from .config import DEFAULT_IMAGE, ManagerConfig, normalize_image_ref
from .fake import FakeContainerService
from .manager import (
    BOT_LABEL_KEY,
    CONTAINER_PREFIX,
    IP_LABEL_KEY,
    Manager,
    validate_bot_id,
)
from .service import ContainerService

__all__ = [
    "BOT_LABEL_KEY",
    "CONTAINER_PREFIX",
    "DEFAULT_IMAGE",
    "IP_LABEL_KEY",
    "ContainerService",
    "FakeContainerService",
    "Manager",
    "ManagerConfig",
    "errors",
    "normalize_image_ref",
    "types",
    "validate_bot_id",
]

__version__ = "0.1.0"
