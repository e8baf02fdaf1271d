"""The connection to one Docker daemon, made on first use and shared by all threads.

docker-py's :class:`docker.APIClient` asks the daemon for its API version
when it is made, so it is made lazily: a DockerService can be built while the
daemon is down and starts working once it answers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import IO, Any, cast

import docker

from ._errors import mapped

__all__ = ["Connection"]

_POOL_SIZE = 16
"""Connections kept to the daemon: the Manager calls from many threads at once."""


class Connection:
    """A lazily made docker-py low-level client for ``base_url``; thread-safe."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._lock = threading.Lock()
        self._api: docker.APIClient | None = None
        self._closed = False

    def api(self) -> docker.APIClient:
        """The client, made (negotiating the API version) on the first call."""
        with self._lock:
            if self._api is None:
                with mapped(f"connect to Docker at {self.base_url}"):
                    self._api = docker.APIClient(
                        base_url=self.base_url,
                        version="auto",
                        timeout=int(self.timeout),
                        max_pool_size=_POOL_SIZE,
                    )
            return self._api

    # docker-py's stubs leave these three untyped; typed views of them:

    def inspect_image(self, ref: str) -> dict[str, Any]:
        """``GET /images/{ref}/json``."""
        return cast(dict[str, Any], cast(Any, self.api()).inspect_image(ref))

    def inspect_distribution(self, ref: str) -> dict[str, Any]:
        """``GET /distribution/{ref}/json``: what the registry serves for ``ref``."""
        return cast(dict[str, Any], cast(Any, self.api()).inspect_distribution(ref))

    def load_image(self, data: IO[bytes]) -> Iterator[dict[str, Any]]:
        """``POST /images/load`` of a docker-save tar; yields the daemon's messages."""
        return cast(Iterator[dict[str, Any]], cast(Any, self.api()).load_image(data))

    def close(self) -> None:
        """Close the client's connections; a later call makes a new client."""
        with self._lock:
            api, self._api = self._api, None
        if api is not None:
            api.close()
