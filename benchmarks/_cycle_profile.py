"""Where a container cycle's time goes: per containerd call, per runtime process, per client.

Used by ``bench_containerd.py --calls [--runtime-trace]``. Every containerd
call of the cycle is timed client-side (from sending the request to having
the answer, wall clock, so calls that overlap are seen as such). Each step's
*client* time is its wall time minus the union of its calls: Python,
protobuf encoding, spec building. With a runtime trace, the ``runc`` and
``containerd-shim-runc-v2`` processes the daemon starts are timed too, by
wrappers put first on the daemon's PATH (each adds about a millisecond of
bash to what it wraps, so figures of a traced run are for the split only).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from mcpmanager.containerd import _conn

Span = tuple[float, float, str]  # (start, end, name), epoch seconds

STEPS = ("create", "start", "stop", "delete_task", "delete_container")

_WRAPPER = """#!/bin/bash
s=$EPOCHREALTIME
{real} "$@"; rc=$?
cmd=""
for a in "$@"; do case "$a" in {verbs}) cmd=$a; break;; esac; done
echo "$s $EPOCHREALTIME {name} $cmd" >> {log}
exit $rc
"""
_RUNC_VERBS = "create|start|kill|delete|state|exec|update|pause|resume|ps"
_SHIM_VERBS = "start|delete"


@contextmanager
def runtime_trace() -> Iterator[str]:
    """Put timing wrappers of runc and the runc shim first on PATH; yield their log file.

    Only processes started while this is active (the benchmark's daemon)
    see the wrappers; PATH is restored at exit.
    """
    with tempfile.TemporaryDirectory(prefix="mcpm-rt-trace-") as tmp:
        log = os.path.join(tmp, "runtime.log")
        open(log, "w").close()
        for name, verbs in (("runc", _RUNC_VERBS), ("containerd-shim-runc-v2", _SHIM_VERBS)):
            real = shutil.which(name)
            if real is None:
                raise SystemExit(f"{name} is not on PATH")
            path = os.path.join(tmp, name)
            with open(path, "w") as fh:
                short = "shim" if name.startswith("containerd") else name
                fh.write(_WRAPPER.format(real=real, verbs=verbs, name=short, log=log))
            os.chmod(path, 0o755)
        old = os.environ["PATH"]
        os.environ["PATH"] = f"{tmp}:{old}"
        try:
            yield log
        finally:
            os.environ["PATH"] = old


def read_trace(log: str) -> list[Span]:
    """The runtime processes the wrappers saw: (start, end, "runc create"), ..."""
    spans: list[Span] = []
    with open(log) as fh:
        for line in fh:
            start, end, *what = line.split()
            spans.append((float(start), float(end), " ".join(what)))
    return spans


@dataclass
class Profile:
    """Calls and step times of ``cycles`` profiled cycles, all as epoch spans."""

    cycles: int = 0
    steps: list[Span] = field(default_factory=list)  # name = step
    calls: list[Span] = field(default_factory=list)  # name = "Service/Method"
    runtime: list[Span] = field(default_factory=list)  # name = "runc create", ...


def _method_name(method: object) -> str:
    raw = getattr(method, "_method", b"?")
    name = raw.decode() if isinstance(raw, bytes) else str(raw)
    return name.rsplit(".", 1)[-1]


@contextmanager
def timing_calls(into: list[Span]) -> Iterator[None]:
    """Record every unary call (blocking or sent ahead) made meanwhile into ``into``."""
    unary = _conn.Connection.unary
    send = getattr(_conn.Connection, "send", None)  # absent before calls were overlapped

    def timed_unary(self: _conn.Connection, method: Any, request: Any, **kw: Any) -> Any:
        began = time.time()
        try:
            return unary(self, method, request, **kw)
        finally:
            into.append((began, time.time(), _method_name(method)))

    def timed_send(self: _conn.Connection, method: Any, request: Any, **kw: Any) -> Any:
        began, name = time.time(), _method_name(method)
        assert send is not None
        pending = send(self, method, request, **kw)
        result, cancel = pending.result, pending.cancel
        done: list[bool] = []

        def note() -> None:
            if not done:
                done.append(True)
                into.append((began, time.time(), name))

        def timed_result() -> Any:
            try:
                return result()
            finally:
                note()

        def timed_cancel() -> None:
            cancel()
            note()

        pending.result, pending.cancel = timed_result, timed_cancel  # type: ignore[method-assign]
        return pending

    setattr(_conn.Connection, "unary", timed_unary)  # noqa: B010
    if send is not None:
        setattr(_conn.Connection, "send", timed_send)  # noqa: B010
    try:
        yield
    finally:
        setattr(_conn.Connection, "unary", unary)  # noqa: B010
        if send is not None:
            setattr(_conn.Connection, "send", send)  # noqa: B010


def run_profiled(cycle: Callable[[Callable[[str], None]], None], cycles: int) -> Profile:
    """Run ``cycle(mark)`` ``cycles`` times; ``mark(step)`` starts a step, ``"-"`` untimed."""
    prof = Profile(cycles=cycles)
    current: list[tuple[float, str]] = []

    def mark(step: str) -> None:
        now = time.time()
        if current and current[0][1] != "-":
            prof.steps.append((current[0][0], now, current[0][1]))
        current[:] = [(now, step)]

    with timing_calls(prof.calls):
        for _ in range(cycles):
            cycle(mark)
            mark("-")
    return prof


def _inside(span: Span, outer: Span) -> bool:
    return outer[0] <= span[0] and span[1] <= outer[1] + 1e-4


def _union(spans: list[Span]) -> float:
    total, reach = 0.0, float("-inf")
    for start, end, _ in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.2f} ms" if values else "      -   "


def print_profile(prof: Profile) -> None:
    """Per step: wall and client time; per call: count and median; runtime processes inside."""
    per_call = sum(1 for c in prof.calls if any(_inside(c, s) for s in prof.steps))
    print(f"containerd calls per cycle: {per_call / prof.cycles:.1f} (medians, client-side)")
    for step in STEPS:
        spans = [s for s in prof.steps if s[2] == step]
        walls = [s[1] - s[0] for s in spans]
        client = [(s[1] - s[0]) - _union([c for c in prof.calls if _inside(c, s)]) for s in spans]
        print(f"  {step:<17} wall {_ms(walls)}   client (Python) {_ms(client)}")
        names: dict[str, list[float]] = {}
        inner: dict[str, dict[str, list[float]]] = {}
        for s in spans:
            for c in prof.calls:
                if _inside(c, s):
                    names.setdefault(c[2], []).append(c[1] - c[0])
                    for r in prof.runtime:
                        if _inside(r, c):
                            inner.setdefault(c[2], {}).setdefault(r[2], []).append(r[1] - r[0])
        for name, times in names.items():
            print(f"      {name:<20} x{len(times) / prof.cycles:<4.1f} {_ms(times)}")
            for proc, ptimes in inner.get(name, {}).items():
                print(f"          {proc:<16} x{len(ptimes) / prof.cycles:<4.1f} {_ms(ptimes)}")
