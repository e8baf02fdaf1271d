"""The task filter both backends apply to ``list_tasks`` themselves.

containerd 1.6 accepts a filter in its Tasks ``List`` call and ignores it
(every task comes back), so the backends filter the returned tasks here
instead: the same small ``field==value`` language on both, on ``id``,
``container_id``, ``pid`` or ``status`` (``running``, ``stopped``, ...).
Anything else is InvalidArgument rather than a silently unfiltered list.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import InvalidArgument
from .types import TaskInfo, TaskStatus

__all__ = ["FIELDS", "select"]

FIELDS = ("id", "container_id", "pid", "status")
"""The task fields a filter may name."""


def select(tasks: Iterable[TaskInfo], filter: str) -> list[TaskInfo]:
    """The tasks matching ``filter`` (all of them when it is empty)."""
    if not filter:
        return list(tasks)
    field, sep, wanted = filter.partition("==")
    field = field.strip()
    if not sep or field not in FIELDS:
        raise InvalidArgument(
            f"unsupported task filter {filter!r}: use FIELD==VALUE with FIELD one of "
            + ", ".join(FIELDS)
        )
    return [t for t in tasks if _value(t, field) == wanted.strip()]


def _value(task: TaskInfo, field: str) -> str:
    raw = getattr(task, field)
    return raw.value if isinstance(raw, TaskStatus) else str(raw)
