"""Waiting for a bot's agent to answer, so a bot is usable the moment start() returns.

A container's task is running well before the agent inside it listens (about
0.1 s on containerd). The wait asks the agent a cheap question (``stat /``)
until it answers, backing off from 5 ms to 20 ms, up to a deadline. Any
answer counts, an error reply included: only "cannot connect" and "no reply
in time" mean not ready yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import errors

if TYPE_CHECKING:
    from .client import Client

__all__ = ["wait_for_agent"]

_FIRST_PAUSE = 0.005
_MAX_PAUSE = 0.02  # a bot's agent listens within ~0.1-0.3 s: a longer pause adds to every start
_PROBE_TIMEOUT = 1.0

_clock = time.monotonic


def wait_for_agent(client: Callable[[], Client], bot_id: str, address: str, timeout: float) -> None:
    """Return once the agent of ``bot_id`` answers; DeadlineExceeded after ``timeout`` s.

    ``client()`` gives the bot's current client (the pool replaces one whose
    channel failed, so each try dials afresh).
    """
    deadline = _clock() + timeout
    pause = _FIRST_PAUSE
    last: Exception | None = None
    while True:
        left = deadline - _clock()
        try:
            client().stat("/", timeout=max(0.05, min(_PROBE_TIMEOUT, left)))
            return
        except (errors.Unavailable, errors.DeadlineExceeded) as exc:
            last = exc
        except errors.MCPManagerError:
            return  # it answered, if only to refuse
        left = deadline - _clock()
        if left <= 0:
            raise errors.DeadlineExceeded(
                f"bot {bot_id}: its agent at {address} did not answer within {timeout:g}s "
                f"(last error: {last}); the bot is left running: wait_ready() again, or stop() it"
            )
        time.sleep(min(pause, left))  # back-off between probes, bounded by the deadline
        pause = min(pause * 2, _MAX_PAUSE)
