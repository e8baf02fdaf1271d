"""Import grpc in the agent's process without loading its asyncio API.

``import grpc`` also imports ``grpc.aio`` and, from its Cython core,
``asyncio`` (with ``ssl`` and OpenSSL's bindings): about 3 MiB of private
memory in every bot for an API the agent's synchronous server never calls.
So the agent's entry point (``python -m mcpmanager.agent``) imports grpc
while those two modules are deferred: each is a stand-in that imports the
real module the moment one of its attributes is used. Nothing can break:
code that does use asyncio or ``grpc.aio`` later gets the real thing, and
only pays the memory then.

Only the agent's own process does this; a library import of
:mod:`mcpmanager.agent` (the fake's in-process agents) imports grpc as is.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["DEFERRED", "import_grpc"]

#: The modules grpc's import pulls in that a synchronous server never uses.
DEFERRED = ("asyncio", "grpc.aio")


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its attributes is used, then imports it."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(_load(self.__name__), attr)


def import_grpc() -> types.ModuleType:
    """grpc, imported with :data:`DEFERRED` deferred unless they are loaded already."""
    if "grpc" in sys.modules or any(name in sys.modules for name in DEFERRED):
        return importlib.import_module("grpc")
    for name in DEFERRED:
        sys.modules[name] = _Deferred(name)
    try:
        return importlib.import_module("grpc")
    finally:
        # Later imports get the real modules; grpc keeps its stand-ins, which load them.
        for name in DEFERRED:
            if isinstance(sys.modules.get(name), _Deferred):
                del sys.modules[name]


def _load(name: str) -> types.ModuleType:
    """Import the real ``name`` in place of its stand-in (also as its parent's attribute)."""
    if isinstance(sys.modules.get(name), _Deferred):
        del sys.modules[name]
    module = importlib.import_module(name)
    parent, _, child = name.rpartition(".")
    if parent and parent in sys.modules:
        setattr(sys.modules[parent], child, module)
    return module
