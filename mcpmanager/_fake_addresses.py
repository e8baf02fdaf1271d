"""Loopback addresses for the fake's containers: 127.x.y.z, unique within this process."""

from __future__ import annotations

import itertools
import os
import threading

__all__ = ["ADDRESSES", "LoopbackAllocator"]


class LoopbackAllocator:
    """Hands out 127.x.y.z addresses, unique within this process.

    The second octet is derived from the process ID so that two test processes
    running fakes with agents at once rarely pick the same address and port.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_use: set[str] = set()
        base = 64 + os.getpid() % 128
        self._candidates = (
            f"127.{base}.{hi}.{lo}" for hi in itertools.cycle(range(256)) for lo in range(2, 255)
        )

    def allocate(self) -> str:
        """A free address, now taken."""
        with self._lock:
            for ip in self._candidates:
                if ip not in self._in_use:
                    self._in_use.add(ip)
                    return ip
        raise AssertionError("unreachable")  # pragma: no cover - the generator is endless

    def release(self, ip: str) -> None:
        """Give ``ip`` back."""
        with self._lock:
            self._in_use.discard(ip)


ADDRESSES = LoopbackAllocator()
"""The allocator every fake in this process shares."""
