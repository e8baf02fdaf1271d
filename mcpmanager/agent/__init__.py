"""The agent inside each bot's container: the ``mcpcontainer.ContainerService`` server.

Run it with ``python -m mcpmanager.agent --listen HOST:PORT --root DIR``, or
in process with :class:`AgentServer` (as the fake container service does).
"""

from __future__ import annotations

from .server import DEFAULT_LISTEN, DEFAULT_TEMPLATE, AgentServer, seed_from_template

__all__ = ["DEFAULT_LISTEN", "DEFAULT_TEMPLATE", "AgentServer", "seed_from_template"]
