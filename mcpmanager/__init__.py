"""mcpmanager: give every AI bot its own long-lived workspace container.

Start with :class:`Manager` on a :class:`~mcpmanager.fake.FakeContainerService`
(in memory, no root) or a :class:`mcpmanager.containerd.ContainerdService`.

The public names below are loaded on first use (PEP 562), so that importing
one submodule (the in-container agent, say) does not load the Manager, the
backends and their dependencies: ``from mcpmanager import Manager`` and
``mcpmanager.Manager`` work exactly as eager imports would.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    """Import the submodule holding public ``name`` on first use, then cache it here."""
    where = _EXPORTS.get(name)
    if where is None:
        return _submodule(name)
    module = importlib.import_module(f"{__name__}.{where}")
    value = module if where == name else getattr(module, name)
    globals()[name] = value
    return value


def _submodule(name: str) -> Any:
    """``package.name`` as an attribute, as when every submodule was imported eagerly."""
    full = f"{__name__}.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name != full:
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    """The module's names, the lazy public ones included."""
    return sorted({*globals(), *__all__})
