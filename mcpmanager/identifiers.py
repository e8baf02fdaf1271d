"""containerd's identifier rule, shared by every backend that names things like containerd.

containerd accepts a container, task, lease or namespace ID only when it is
runs of ASCII letters and digits joined by single ``.``, ``_`` or ``-``, at
most 76 characters long (its ``identifiers.Validate``). The containerd
backend checks IDs with :func:`validate` before it calls the daemon, and the
fake applies the very same rule, so both refuse the same IDs the same way.
"""

from __future__ import annotations

import re

from .errors import InvalidArgument

__all__ = ["MAX_LENGTH", "is_valid", "validate"]

MAX_LENGTH = 76
"""The longest identifier containerd accepts."""

_RULE = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*", re.ASCII)


def is_valid(value: object) -> bool:
    """Whether ``value`` is a string containerd accepts as an identifier."""
    return isinstance(value, str) and len(value) <= MAX_LENGTH and bool(_RULE.fullmatch(value))


def validate(value: object, what: str = "container ID") -> str:
    """Return ``value`` if it is a valid identifier; InvalidArgument naming ``what`` otherwise."""
    if is_valid(value):
        assert isinstance(value, str)
        return value
    if not value:
        raise InvalidArgument(f"{what} must not be empty")
    if isinstance(value, str) and len(value) > MAX_LENGTH:
        raise InvalidArgument(
            f"invalid {what} {value[:20]!r}...: {len(value)} characters, at most {MAX_LENGTH}"
        )
    raise InvalidArgument(
        f"invalid {what} {value!r}: use letters and digits joined by single '.', '_' or '-'"
    )
