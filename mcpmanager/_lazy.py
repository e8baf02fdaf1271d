"""PEP 562 lazy exports, shared by the packages that must import cheaply.

A package lists ``name -> submodule`` and gets a module ``__getattr__`` and
``__dir__``: a public name is imported on first use, then cached in the
package, so ``from package import Name`` works as an eager import would.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str,
    exports: Mapping[str, str],
    namespace: MutableMapping[str, Any],
    public: Sequence[str],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose ``namespace`` is its globals().

    ``exports`` maps each public name to the submodule holding it (the
    submodule itself when both are equal). Other names resolve to submodules
    of the package, as they would once imported eagerly.
    """

    def getattr_(name: str) -> Any:
        where = exports.get(name)
        if where is None:
            return _submodule(package, name)
        module = importlib.import_module(f"{package}.{where}")
        value = module if where == name else getattr(module, name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *public})

    getattr_.__doc__ = "Import the submodule holding public ``name`` on first use, then cache it."
    dir_.__doc__ = "The module's names, the lazy public ones included."
    return getattr_, dir_


def _submodule(package: str, name: str) -> Any:
    """``package.name`` as an attribute, as when every submodule was imported eagerly."""
    full = f"{package}.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name != full:
            raise
        raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
