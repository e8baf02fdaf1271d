"""Static check: every backend class has the ContainerService protocol's exact signatures.

``runtime_checkable`` only looks at method names; this compares each method's
parameters (names, kinds, defaults, annotations) and return annotation with
the protocol's, for the fake, containerd, Docker and every class in ``BACKENDS``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest

from mcpmanager.containerd import ContainerdService
from mcpmanager.docker import DockerService
from mcpmanager.fake import FakeContainerService
from mcpmanager.service import ContainerService
from tests.contract.backends import BACKENDS

CLASSES: dict[str, type[object]] = {
    "FakeContainerService": FakeContainerService,
    "ContainerdService": ContainerdService,
    "DockerService": DockerService,
    **{b.service_class.__name__: b.service_class for b in BACKENDS},
}


def protocol_methods() -> dict[str, Callable[..., object]]:
    """The methods the protocol declares (not those every class inherits)."""
    return {
        name: member
        for name, member in vars(ContainerService).items()
        if callable(member) and not name.startswith("_")
    }


def shape(func: Callable[..., object]) -> tuple[object, ...]:
    """What callers rely on: each parameter's name, kind, default and annotation."""
    sig = inspect.signature(func)
    params = tuple((p.name, p.kind, p.default, str(p.annotation)) for p in sig.parameters.values())
    return params, str(sig.return_annotation)


def test_protocol_has_every_method() -> None:
    assert len(protocol_methods()) == 29
    assert "close" in protocol_methods()


@pytest.mark.parametrize("cls", CLASSES.values(), ids=list(CLASSES))
def test_backend_matches_protocol_signatures(cls: type[object]) -> None:
    missing = [name for name in protocol_methods() if not callable(getattr(cls, name, None))]
    assert not missing, f"{cls.__name__} lacks {missing}"
    wrong = {
        name: (shape(getattr(cls, name)), shape(method))
        for name, method in protocol_methods().items()
        if shape(getattr(cls, name)) != shape(method)
    }
    assert not wrong, f"{cls.__name__} differs from ContainerService: {wrong}"


def test_the_check_catches_a_difference() -> None:
    class Renamed:
        def get_image(self, reference: str) -> object: ...

    assert shape(Renamed.get_image) != shape(protocol_methods()["get_image"])
