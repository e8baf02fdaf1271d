"""The bulk record builder of the stores against the records' own constructor."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import attrs
import pytest

from mcpmanager._records import slot_setters
from mcpmanager.store import VersionRecord, _rows

CID = "mcp-bot1"
ROWS = [
    ("id-1", 1, "mcp-bot1-v1", "", "pre_exec", "2026-01-02T03:04:05.000006+00:00"),
    ("id-2", 2, "mcp-bot1-v2", "Before upgrade", "manual", "2026-01-02T03:04:06.000000+00:00"),
    ("id-3", 3, "ünï", "✓ done", "rollback", "2026-12-31T23:59:59.999999+00:00"),
]


def test_versions_equal_the_constructed_records() -> None:
    built = _rows.versions(ROWS, CID, datetime.fromisoformat)
    constructed = [_rows.version(row, CID, datetime.fromisoformat) for row in ROWS]
    assert built == constructed
    assert [repr(r) for r in built] == [repr(r) for r in constructed]
    assert [hash(r) for r in built] == [hash(r) for r in constructed]
    assert all(type(r) is VersionRecord for r in built)
    assert built[0].created_at == datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)


def test_versions_keep_timestamps_without_a_conversion() -> None:
    stamp = datetime(2026, 1, 2, tzinfo=timezone.utc)
    rows = [(*row[:5], stamp) for row in ROWS]
    built = _rows.versions(rows, CID, None)
    assert [r.created_at for r in built] == [stamp] * len(ROWS)
    assert built[1] == VersionRecord(
        "id-2", CID, 2, "mcp-bot1-v2", "Before upgrade", "manual", stamp
    )


def test_versions_of_no_rows_is_an_empty_list() -> None:
    assert _rows.versions(iter(()), CID, datetime.fromisoformat) == []


def test_built_records_stay_frozen() -> None:
    (rec,) = _rows.versions(ROWS[:1], CID, datetime.fromisoformat)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        rec.id = "other"  # type: ignore[misc]
    assert not hasattr(rec, "__dict__")


@attrs.frozen
class _Plain:
    a: str
    b: int


@attrs.frozen
class _Validated:
    a: str = attrs.field(validator=attrs.validators.instance_of(str))
    b: int = 0


@attrs.frozen
class _PostInit:
    a: str
    b: int

    def __attrs_post_init__(self) -> None:
        pass


@attrs.frozen(slots=False)
class _NotSlotted:
    a: str
    b: int


def test_slot_setters_of_a_plain_record() -> None:
    set_a, set_b = slot_setters(_Plain, ("a", "b"))
    rec = object.__new__(_Plain)
    set_a(rec, "x")
    set_b(rec, 1)
    assert rec == _Plain("x", 1)


@pytest.mark.parametrize(
    ("cls", "names"),
    [
        (_Plain, ("a",)),
        (_Plain, ("b", "a")),
        (_Validated, ("a", "b")),
        (_PostInit, ("a", "b")),
        (_NotSlotted, ("a", "b")),
    ],
)
def test_slot_setters_refuse_records_the_fast_path_would_get_wrong(
    cls: type[Any], names: tuple[str, ...]
) -> None:
    with pytest.raises(TypeError):
        slot_setters(cls, names)
