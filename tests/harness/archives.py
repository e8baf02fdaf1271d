"""tar.gz archives made in memory for tests: what a caller would import as ``/data``."""

from __future__ import annotations

import io
import tarfile

__all__ = ["tgz"]


def tgz(files: dict[str, bytes]) -> io.BytesIO:
    """A tar.gz of regular files (name -> content), rewound to its start."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    buf.seek(0)
    return buf
