"""The containerd backend: :class:`ContainerdService` over containerd's gRPC API."""

from __future__ import annotations

from .service import ContainerdService

__all__ = ["ContainerdService"]
