"""Image names as Docker spells them, and their split into repository and tag."""

from __future__ import annotations

import re

from .. import errors
from ..config import normalize_image_ref

__all__ = ["TAG_RE", "full_name", "split_tag"]

TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
"""What Docker accepts as a tag (also the rule for snapshot names here)."""


def split_tag(ref: str) -> tuple[str, str]:
    """(repository, tag) of ``ref``; the tag is ``latest`` when it names none.

    InvalidArgument for a reference by digest (it cannot be tagged) or an empty one.
    """
    if not ref.strip():
        raise errors.InvalidArgument("image reference is empty")
    if "@" in ref:
        raise errors.InvalidArgument(f"image reference {ref!r} names a digest, not a tag")
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, "latest"


def full_name(ref: str) -> str:
    """``ref`` qualified like containerd names images: ``docker.io/library/x:latest``."""
    if "@" in ref:
        return normalize_image_ref(ref)
    repo, tag = split_tag(ref)
    return f"{normalize_image_ref(repo)}:{tag}"
