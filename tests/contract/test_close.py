"""close() on every backend: releases what the service holds, and may be called twice."""

from __future__ import annotations

from tests.contract.backends import Backend


def test_close_twice(backend: Backend) -> None:
    assert backend.fresh_service is not None
    service = backend.fresh_service()
    service.close()
    service.close()
