"""The agent inside each bot's container: the ``mcpcontainer.ContainerService`` server.

Run it with ``python -m mcpmanager.agent --listen HOST:PORT --root DIR``, or
in process with :class:`AgentServer` (as the fake container service does).

The names below load on first use (PEP 562): ``python -m mcpmanager.agent``
decides how grpc is imported (see :mod:`mcpmanager.agent._slim_grpc`) before
anything of the server loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .server import DEFAULT_LISTEN, DEFAULT_TEMPLATE, AgentServer, seed_from_template

_EXPORTS: dict[str, str] = {
    "DEFAULT_LISTEN": "server",
    "DEFAULT_TEMPLATE": "server",
    "AgentServer": "server",
    "seed_from_template": "server",
}

__all__ = ["DEFAULT_LISTEN", "DEFAULT_TEMPLATE", "AgentServer", "seed_from_template"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), __all__)
