"""The Docker backend: :class:`DockerService` on the Docker Engine API (docker-py)."""

from __future__ import annotations

from .service import DEFAULT_BASE_URL, DEFAULT_NETWORK, DockerService

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_NETWORK", "DockerService"]
