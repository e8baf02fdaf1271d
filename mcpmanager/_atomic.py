"""Writing a file so that readers see the old content or the new, never half of it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from typing import IO

__all__ = ["atomic_write"]


def atomic_write(path: str, write: Callable[[IO[bytes]], int], *, dir_mode: int = 0o750) -> int:
    """Write a file through ``write`` so that ``path`` is either complete or untouched.

    ``write`` gets a binary file and returns how many bytes it wrote, which is
    returned. The bytes go to a private (mode 0600) temporary file beside
    ``path``, are flushed to disk, then renamed over ``path``; on any failure
    the temporary file is removed. Missing parent dirs are made with ``dir_mode``.
    """
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=dir_mode, exist_ok=True)
    fd, partial = tempfile.mkstemp(
        prefix=os.path.basename(path) + ".", suffix=".partial", dir=directory
    )
    try:
        with os.fdopen(fd, "wb") as f:
            size = write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return size
