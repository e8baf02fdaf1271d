"""The user-defined bridge network bot containers join, and their address on it."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from .. import errors
from .._log import get_logger
from ._client import Connection
from ._errors import mapped

__all__ = ["Network", "address_on"]

log = get_logger("mcpmanager.docker")

MANAGED_LABEL = "io.mcpmanager.network"


def address_on(doc: Mapping[str, Any], network: str) -> str:
    """The container's IPv4 address on ``network`` from its inspect document, or ``""``."""
    nets = (doc.get("NetworkSettings") or {}).get("Networks") or {}
    return str((nets.get(network) or {}).get("IPAddress") or "")


class Network:
    """A bridge network by name, created (labelled as ours) the first time it is needed."""

    def __init__(self, conn: Connection, name: str) -> None:
        if not name.strip():
            raise errors.InvalidArgument("network name is empty")
        self.name = name
        self._conn = conn
        self._lock = threading.Lock()
        self._known = False

    def ensure(self) -> None:
        """Create the network if the daemon has none by this name (idempotent, thread-safe)."""
        with self._lock:
            if self._known:
                return
            api = self._conn.api()
            with mapped(f"look up network {self.name}"):
                found = [n for n in api.networks(names=[self.name]) if n.get("Name") == self.name]
            if not found:
                try:
                    with mapped(f"create network {self.name}"):
                        api.create_network(
                            self.name,
                            driver="bridge",
                            check_duplicate=True,
                            labels={MANAGED_LABEL: "1"},
                        )
                    log.info("created Docker network %s", self.name)
                except errors.AlreadyExists:
                    pass  # another process made it meanwhile
            self._known = True

    def forget(self) -> None:
        """Look the network up again next time (it was removed behind our back)."""
        with self._lock:
            self._known = False

    def connect(self, docker_id: str, container_id: str) -> None:
        """Attach a running container that is not on the network."""
        self.ensure()
        try:
            with mapped(f"connect {container_id} to network {self.name}"):
                self._conn.api().connect_container_to_network(docker_id, self.name)
        except errors.FailedPrecondition as exc:
            if "already exists" not in str(exc):
                raise

    def disconnect(self, docker_id: str, container_id: str) -> None:
        """Detach a running container; not being attached is fine."""
        try:
            with mapped(f"disconnect {container_id} from network {self.name}"):
                self._conn.api().disconnect_container_from_network(docker_id, self.name, force=True)
        except (errors.NotFound, errors.FailedPrecondition) as exc:
            log.debug("disconnect of %s: %s", container_id, exc)
