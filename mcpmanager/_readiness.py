"""Waiting for a bot's agent to answer, so a bot is usable the moment start() returns.

A container's task is running well before the agent inside it listens (tens
of milliseconds on containerd, seconds on a host starting fifty bots). The
wait first knocks on the agent's port with bare TCP connects (a refused one
costs about 40 µs of CPU, a gRPC attempt on a fresh channel about 0.9 ms),
pausing a tenth of the time waited so far (1 to 20 ms): an agent is seen
within 10 % of its own start-up time, and a busy host is not kept busier by
bots waiting. Once the port accepts, the wait asks the agent a cheap
question (``stat /``) until it answers, backing off from 5 ms to 20 ms, up
to a deadline. Any answer counts, an error reply included: only "cannot
connect" and "no reply in time" mean not ready yet.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import errors

if TYPE_CHECKING:
    from .client import Client

__all__ = ["wait_for_agent"]

_KNOCK_SHARE = 0.1  # pause between refused TCP connects: this share of the time waited so far
_KNOCK_MIN, _KNOCK_MAX = 0.001, 0.02
_KNOCK_TIMEOUT = 0.2  # a connect that neither succeeds nor is refused (no route yet)
_FIRST_PAUSE = 0.005
_MAX_PAUSE = 0.02  # between gRPC probes once the port accepts
_PROBE_TIMEOUT = 1.0

_clock = time.monotonic


def wait_for_agent(client: Callable[[], Client], bot_id: str, address: str, timeout: float) -> None:
    """Return once the agent of ``bot_id`` at ``address`` (``host:port``) answers.

    DeadlineExceeded after ``timeout`` seconds. ``client()`` gives the bot's
    current client (the pool replaces one whose channel failed, so each try
    dials afresh).
    """
    began = _clock()
    deadline = began + timeout
    pause = _FIRST_PAUSE
    last: Exception | str = "not tried"
    while True:
        left = deadline - _clock()
        refused = _knock(address, min(_KNOCK_TIMEOUT, max(left, 0.001)))
        if refused is None:
            try:
                client().stat("/", timeout=max(0.05, min(_PROBE_TIMEOUT, left)))
                return
            except (errors.Unavailable, errors.DeadlineExceeded) as exc:
                last = exc
            except errors.MCPManagerError:
                return  # it answered, if only to refuse
        else:
            last = refused
        left = deadline - _clock()
        if left <= 0:
            raise errors.DeadlineExceeded(
                f"bot {bot_id}: its agent at {address} did not answer within {timeout:g}s "
                f"(last error: {last}); the bot is left running: wait_ready() again, or stop() it"
            )
        if refused is not None:
            knock = min(max((_clock() - began) * _KNOCK_SHARE, _KNOCK_MIN), _KNOCK_MAX)
            time.sleep(min(knock, left))
            continue
        time.sleep(min(pause, left))  # back-off between gRPC probes, bounded by the deadline
        pause = min(pause * 2, _MAX_PAUSE)


def _knock(address: str, timeout: float) -> str | None:
    """None when ``address`` (``host:port``) accepts a TCP connection, else why not."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        return f"TCP connect to {address}: {exc}"
    try:
        sock.settimeout(timeout)
        code = sock.connect_ex((host, int(port)))  # bots have IP addresses: no lookup
    except (OSError, ValueError) as exc:
        return f"TCP connect to {address}: {exc}"
    finally:
        sock.close()
    return None if code == 0 else f"TCP connect to {address}: {os.strerror(code)}"
