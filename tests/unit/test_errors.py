"""The error story: one module of classes, and context that keeps type and attributes."""

from __future__ import annotations

import importlib
import pickle
import pkgutil

import grpc
import pytest

import mcpmanager
from mcpmanager import errors
from mcpmanager.client.errors import map_rpc_error
from mcpmanager.client.results import ExecResult
from mcpmanager.cni import errors as cni_errors
from mcpmanager.containerd._errors import from_rpc_error


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def test_every_error_class_of_the_package_lives_in_errors() -> None:
    for info in pkgutil.walk_packages(mcpmanager.__path__, "mcpmanager."):
        if "_pb2" in info.name or info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    ours = {c for c in _all_subclasses(errors.MCPManagerError) if c.__module__.startswith("mcp")}
    elsewhere = sorted(c.__qualname__ for c in ours if c.__module__ != "mcpmanager.errors")
    assert elsewhere == []
    assert len(ours) >= 19


def test_the_docstring_tree_names_every_class() -> None:
    doc = errors.__doc__ or ""
    missing = [name for name in errors.__all__ if name not in doc]
    assert missing == []


def test_context_keeps_the_cni_code_and_plugin() -> None:
    exc = cni_errors.cni_error(
        "container c1 network 'n'", code=7, plugin="bridge", command="ADD", msg="bad subnet"
    )
    assert type(exc) is errors.CNIInvalidConfig
    args = exc.args
    same = exc.with_context("bot b1: start")
    assert same is exc
    assert (exc.code, exc.plugin, exc.command, exc.msg) == (7, "bridge", "ADD", "bad subnet")
    assert exc.args == args
    assert str(exc).startswith("bot b1: start: container c1 network 'n': CNI plugin 'bridge'")
    assert isinstance(exc, errors.InvalidArgument)
    assert isinstance(exc, ValueError)


def test_contexts_nest_outermost_first() -> None:
    exc = errors.NotFound("image x").with_context("pull").with_context("bot 'b2': create")
    assert str(exc) == "bot 'b2': create: pull: image x"
    assert exc.context == ("bot 'b2': create", "pull")


def test_empty_context_changes_nothing() -> None:
    exc = errors.Unavailable("down").with_context("")
    assert str(exc) == "down"
    assert exc.context == ()


def test_context_on_builtin_based_errors() -> None:
    timed_out = errors.ExecTimedOut("timed out after 2s", ExecResult("out", "", -1))
    timed_out.with_context("bot 'b3': exec")
    assert str(timed_out) == "bot 'b3': exec: timed out after 2s"
    assert timed_out.result.stdout == "out"
    assert isinstance(timed_out, TimeoutError)
    denied = errors.PermissionDenied("/root/x").with_context("bot 'b3': read")
    assert str(denied) == "bot 'b3': read: /root/x"
    assert isinstance(denied, PermissionError)


def test_context_survives_pickling() -> None:
    exc = errors.CNIUnavailable("try later", code=11, plugin="host-local").with_context("bot b4")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is errors.CNIUnavailable
    assert (back.code, back.plugin) == (11, "host-local")
    assert str(back) == "bot b4: try later"


def _fail_with_context(original: errors.MCPManagerError) -> None:
    try:
        raise original
    except errors.MCPManagerError as exc:
        raise exc.with_context("bot 'b5': setup network") from None


def test_raised_with_context_keeps_identity() -> None:
    original = errors.FailedPrecondition("no task")
    with pytest.raises(errors.FailedPrecondition) as info:
        _fail_with_context(original)
    assert info.value is original
    assert str(info.value) == "bot 'b5': setup network: no task"


class _Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize("code", list(grpc.StatusCode))
def test_containerd_and_agent_map_a_status_to_the_same_class(code: grpc.StatusCode) -> None:
    failed = _Failed(code, "context deadline exceeded" if code.name == "UNKNOWN" else "x")
    from_daemon = from_rpc_error(failed, "get container c1")
    from_agent = map_rpc_error(failed, subject="bot 'b1'", op="stat")
    assert type(from_daemon) is type(from_agent)
    if code is not grpc.StatusCode.OK:
        assert type(from_daemon) is not errors.MCPManagerError or code.name in (
            "INTERNAL",
            "RESOURCE_EXHAUSTED",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        )
