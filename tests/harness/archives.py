"""tar.gz archives made in memory for tests: what a caller would import as ``/data``."""

from __future__ import annotations

import gzip
import io
import tarfile

__all__ = ["tgz"]


def tgz(files: dict[str, bytes]) -> io.BytesIO:
    """A tar.gz of regular files (name -> content), rewound to its start.

    The same files always give the same bytes (gzip's header time is 0), so a
    test may compare an archive on disk with a fresh one.
    """
    buf = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    buf.seek(0)
    return buf
