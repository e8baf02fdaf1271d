"""The package's lazy exports: every public name as before, and a lean agent import path."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import mcpmanager
import mcpmanager.agent
import mcpmanager.client

PACKAGES = [mcpmanager, mcpmanager.agent, mcpmanager.client]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_every_public_name_is_the_submodules_object(package: object) -> None:
    exports: dict[str, str] = package._EXPORTS  # type: ignore[attr-defined]
    assert sorted(exports) == sorted(package.__all__)  # type: ignore[attr-defined]
    for name, where in exports.items():
        module = importlib.import_module(f"{package.__name__}.{where}")  # type: ignore[attr-defined]
        expected = module if where == name else getattr(module, name)
        assert getattr(package, name) is expected, name
        assert name in dir(package)


def test_from_imports_and_star_import_work() -> None:
    from mcpmanager import FakeContainerService, Manager, errors
    from mcpmanager.client import Client, Pool

    namespace: dict[str, object] = {}
    exec("from mcpmanager import *", namespace)
    assert namespace["Manager"] is Manager
    assert namespace["FakeContainerService"] is FakeContainerService
    assert namespace["errors"] is errors
    assert Client.__module__ == "mcpmanager.client.client"
    assert Pool.__module__ == "mcpmanager.client.pool"


def test_submodules_are_still_attributes() -> None:
    assert mcpmanager.fake is importlib.import_module("mcpmanager.fake")
    assert mcpmanager.client.pool is importlib.import_module("mcpmanager.client.pool")


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_unknown_names_raise_attribute_error(package: object) -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        package.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(package, "no_such_name")


# Loaded by the Manager side only: the agent in a container never needs them.
MANAGER_ONLY = [
    "mcpmanager.manager",
    "mcpmanager.fake",
    "mcpmanager.containerd",
    "mcpmanager.client.client",
    "mcpmanager.client.pool",
    "mcpmanager.agent.sandbox",
    "attr",
    "attrs",
    "secrets",
    "hashlib",
    "shutil",
    # the agent speaks the protocol with its own codec, and defers grpc's asyncio API
    "google.protobuf",
    "mcpmanager.client.mcpcontainer_pb2",
    "asyncio",
    "ssl",
]


def test_the_agent_does_not_load_the_manager_side() -> None:
    code = (
        "import json, sys\n"
        "import mcpmanager.agent.__main__\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = set(json.loads(out))
    assert "mcpmanager.agent.server" in loaded
    assert [m for m in MANAGER_ONLY if m in loaded] == []
