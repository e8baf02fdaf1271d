"""mcpmanager: give every AI bot its own long-lived workspace container.

Start with :class:`Manager` on a :class:`~mcpmanager.fake.FakeContainerService`
(in memory, no root) or a :class:`mcpmanager.containerd.ContainerdService`.

The public names below are loaded on first use (PEP 562), so that importing
one submodule (the in-container agent, say) does not load the Manager, the
backends and their dependencies: ``from mcpmanager import Manager`` and
``mcpmanager.Manager`` work exactly as eager imports would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:
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

#: Where each public name lives: ``name -> submodule`` (a submodule itself when equal).
_EXPORTS: dict[str, str] = {
    "BOT_LABEL_KEY": "manager",
    "CONTAINER_PREFIX": "manager",
    "DEFAULT_IMAGE": "config",
    "IP_LABEL_KEY": "manager",
    "ContainerService": "service",
    "FakeContainerService": "fake",
    "Manager": "manager",
    "ManagerConfig": "config",
    "errors": "errors",
    "normalize_image_ref": "config",
    "types": "types",
    "validate_bot_id": "manager",
}

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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), __all__)
