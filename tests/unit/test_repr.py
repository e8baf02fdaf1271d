"""Readable objects: compact value-type reprs, the Manager's text and HTML views, tables."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mcpmanager import FakeContainerService, Manager, ManagerConfig, _board, _format, _html
from mcpmanager.store import SQLiteStore
from mcpmanager.types import ContainerInfo, SnapshotInfo
from mcpmanager.versions import BotSnapshotData, ManagedSnapshotMeta, VersionInfo, VersionList

NASTY = "<img src=x onerror=\"alert('1')\">&amp; </td>"
ALLOWED_TAGS = {"div", "p", "b", "code", "small", "pre"} | {
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
}


class Page(HTMLParser):
    """Checks that HTML is well nested with only the expected tags; collects tables."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in ALLOWED_TAGS, f"unexpected <{tag}>"
        self.stack.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        assert self.stack, f"</{tag}> closes nothing"
        assert self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1]}>"
        self.stack.pop()
        if tag in ("td", "th"):
            assert self._cell is not None
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    assert page.stack == [], f"unclosed: {page.stack}"
    return page


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Manager]:
    service = FakeContainerService(root=tmp_path / "fake")
    store = SQLiteStore(tmp_path / "versions.db")
    m = Manager(
        service, ManagerConfig(data_root=str(tmp_path / "data")), store=store, owns_service=True
    )
    m.init()
    yield m
    m.close()


# -- the Manager -----------------------------------------------------------------


def test_manager_shows_running_stopped_and_deleted_bots(manager: Manager) -> None:
    for bot in ("run", "halt", "gone", "kept"):
        manager.start(bot)
    manager.stop("halt")
    manager.delete("gone")
    manager.delete("kept", preserve_data=True)
    ip = manager.container_ip("run")

    text = repr(manager)
    assert "\n" not in text
    assert f"run (mcp-run, running, {ip})" in text
    assert "halt (mcp-halt, stopped)" in text
    assert "gone (mcp-gone, deleted)" in text
    assert "kept (mcp-kept, deleted, /data preserved)" in text
    assert "on FakeContainerService" in text
    assert "store=SQLiteStore" in text

    page = parse(manager._repr_html_())
    (table,) = page.tables
    assert table[0] == ["bot", "container", "status", "IP"]
    assert table[1:] == [
        ["gone", "mcp-gone", "deleted", ""],
        ["halt", "mcp-halt", "stopped", ""],
        ["kept", "mcp-kept", "deleted, /data preserved", ""],
        ["run", "mcp-run", "running", ip],
    ]

    manager.start("halt")
    manager.start("gone")
    rows = parse(manager._repr_html_()).tables[0][1:]
    assert [r[2] for r in rows] == ["running", "running", "deleted, /data preserved", "running"]
    assert all(r[3] for r in rows if r[2] == "running")


def test_reprs_make_no_backend_calls_and_take_no_bot_lock(manager: Manager) -> None:
    manager.start("a")
    service = manager.service
    assert isinstance(service, FakeContainerService)
    before = len(service.calls)
    shown: list[str] = []
    with manager._locks.hold("a"):  # a long operation on the bot holds its lock
        worker = threading.Thread(
            target=lambda: shown.extend([repr(manager), manager._repr_html_()])
        )
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive(), "a repr waited for the bot's lock"
    assert len(shown) == 2
    assert "mcp-a" in shown[0]
    assert len(service.calls) == before


def test_bots_known_only_from_the_ip_cache(manager: Manager) -> None:
    manager.set_container_ip("elsewhere", "10.0.0.7")
    assert "elsewhere (mcp-elsewhere, unknown, 10.0.0.7)" in repr(manager)


def test_empty_and_closed_manager(manager: Manager) -> None:
    assert "bots: none known" in repr(manager)
    manager.start("a")
    manager.close()
    assert repr(manager).startswith("<Manager closed on FakeContainerService")
    assert "a (mcp-a, was running)" in repr(manager)
    page = parse(manager._repr_html_())
    assert "(closed)" in "".join(page.text)
    assert page.tables[0][1:] == [["a", "mcp-a", "was running", ""]]
    assert "running" not in [row[2] for table in page.tables for row in table]


def test_reprs_never_raise(manager: Manager) -> None:
    class Broken:
        def image_ref(self) -> str:
            raise RuntimeError("boom")

    manager._config = Broken()  # type: ignore[assignment]
    assert repr(manager) == "<Manager (cannot be shown: RuntimeError)>"
    page = parse(manager._repr_html_())
    assert "cannot be shown" in "".join(page.text)

    half_built = Manager.__new__(Manager)  # no attributes at all
    assert "cannot be shown" in repr(half_built)
    parse(half_built._repr_html_())


def test_manager_html_escapes_everything(tmp_path: Path) -> None:
    config = ManagerConfig(image=f"reg.example/a{NASTY}:1", data_root=str(tmp_path))
    m = Manager(FakeContainerService(root=tmp_path / "fake"), config, owns_service=True)
    with m:
        m.set_container_ip("bot", f"ip{NASTY}")
        page = parse(m._repr_html_())
        assert NASTY in "".join(page.text)
        assert page.tables[0][1] == ["bot", "mcp-bot", "unknown", f"ip{NASTY}"]


def test_many_bots_are_cut_short(manager: Manager) -> None:
    for i in range(_board.MAX_BOTS_IN_TEXT + 3):
        manager.set_container_ip(f"b{i:02d}", f"10.0.0.{i + 1}")
    assert repr(manager).endswith(", … +3 more>")
    rows = [(f"b{i}", "c", "s", "ip") for i in range(_html.MAX_ROWS + 5)]
    table = parse(_html.html_table(("bot", "container", "status", "IP"), rows)).tables[0]
    assert len(table) == 1 + _html.MAX_ROWS + 1
    assert table[-1] == ["… 5 more"]


# -- versions and snapshot data ---------------------------------------------------


def test_versions_render_as_a_table(manager: Manager) -> None:
    manager.start("a")
    manager.create_version("a")
    manager.create_snapshot("a", name=NASTY)
    versions = manager.list_versions("a")
    assert isinstance(versions, VersionList)
    assert isinstance(versions, list)
    assert versions == list(versions)
    assert repr(versions) == repr(list(versions))
    table = parse(versions._repr_html_()).tables[0]
    assert table[0] == ["version", "snapshot name", "display name", "runtime snapshot", "created"]
    assert [row[0] for row in table[1:]] == ["1", "2"]
    assert table[2][1:3] == [NASTY, NASTY]
    assert table[2][3] == versions[1].runtime_snapshot_name
    assert parse(VersionList()._repr_html_()).tables[0] == [table[0]]


def test_snapshot_data_renders_as_tables(manager: Manager) -> None:
    manager.start("a")
    version = manager.create_version("a")
    data = manager.list_bot_snapshot_data("a")
    page = parse(data._repr_html_())
    labels, snapshots = page.tables
    assert labels[1:] == [["mcp.bot_id", "a"]]
    assert snapshots[0][:5] == ["snapshot", "kind", "parent", "created", "in use"]
    by_name = {row[0]: row for row in snapshots[1:]}
    assert by_name[version.runtime_snapshot_name][5:] == ["pre_exec", "1", ""]
    assert by_name[data.info.snapshot_key][4] == "yes"
    assert len(by_name) == len(data.runtime_snapshots)


def test_snapshot_data_html_escapes_labels_and_names() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=timezone.utc)
    info = ContainerInfo(id="mcp-x", image=f"img{NASTY}", labels={NASTY: NASTY})
    snap = SnapshotInfo(name=f"s{NASTY}", parent="", kind="committed", created=when)
    data = BotSnapshotData(
        "mcp-x", info, "overlayfs", [snap], {snap.name: ManagedSnapshotMeta("manual", 3, NASTY)}
    )
    page = parse(data._repr_html_())
    labels, snapshots = page.tables
    assert labels[1] == [NASTY, NASTY]
    assert snapshots[1] == [
        f"s{NASTY}",
        "committed",
        "",
        "2026-01-02 03:04:05+00:00",
        "",
        "manual",
        "3",
        NASTY,
    ]
    assert f"img{NASTY}" in "".join(page.text)


# -- compact value reprs ----------------------------------------------------------


def test_container_info_repr_is_compact() -> None:
    labels = {f"label{i}": "v" * 500 for i in range(50)}
    when = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    text = repr(ContainerInfo(id="mcp-a", image="img", labels=labels, created_at=when))
    assert text.startswith("ContainerInfo(id='mcp-a', image='img', labels={'label0': 'vvv")
    assert "… +46 more}" in text
    assert "label4'" not in text
    assert "created_at=2026-01-02 03:04:05+00:00" in text
    assert len(text) < 600


def test_bot_snapshot_data_repr_is_compact() -> None:
    snaps = [SnapshotInfo(name=f"snap{i}", parent="", kind="active") for i in range(100)]
    info = ContainerInfo(id="mcp-a", image="img")
    text = repr(BotSnapshotData("mcp-a", info, "overlayfs", snaps, {}))
    listed = "(100 x SnapshotInfo: 'snap0', 'snap1', 'snap2', 'snap3', … +96 more)"
    assert f"runtime_snapshots={listed}" in text
    assert len(text) < 600


def test_version_info_repr() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    v = VersionInfo("id", 1, "Version 1", "mcp-a-v1", "x" * 300, when)
    text = repr(v)
    assert "display_name='" + "x" * _format.MAX_TEXT + "'…" in text
    assert text.endswith("created_at=2026-01-02 03:04:05+00:00)")


def test_short_never_raises() -> None:
    class Nasty:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert _format.short(Nasty()) == "<Nasty>"
    assert _format.short(None) == "None"
    assert _format.short(("a",)) == "('a',)"
    assert _format.short({"k": {"deep": {"deeper": 1}}}) == "{'k': {'deep': {… 1 items}}}"
    assert _format.named([]) == "()"


def test_status_board_keeps_only_recent_deletions() -> None:
    board = _board.StatusBoard(keep_deleted=3)
    for i in range(10):
        board.note(f"b{i}", "running")
        board.note(f"b{i}", "deleted")
    board.note("b9", "running")  # recreated: live again
    assert board.items() == [
        ("b9", "running"),
        ("b7", "deleted"),
        ("b8", "deleted"),
    ]


# -- tables that fit -----------------------------------------------------------------


class Titles(HTMLParser):
    """Collects the title attribute of every cell (None when it has none)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.titles: list[str | None] = []
        self.styles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("td", "th"):
            self.titles.append(dict(attrs).get("title"))
            self.styles.append(dict(attrs).get("style") or "")


def test_digests_are_shortened_with_the_full_value_as_tooltip() -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    html = _html.html_table(("name", "other"), [(digest, "sha256:short"), ("plain", "")])
    cells = parse(html).tables[0]
    assert cells[1] == ["sha256:01234567…", "sha256:short"]
    titles = Titles()
    titles.feed(html)
    assert titles.titles == [None, None, digest, None, None, None]
    wraps = ("white-space:normal" in st and "overflow-wrap:anywhere" in st for st in titles.styles)
    assert all(wraps)
    assert _format.short_digest("sha256:" + "<x>" * 30) == "sha256:" + "<x>" * 30


def test_snapshot_table_shows_short_layer_names(manager: Manager) -> None:
    manager.start("a")
    manager.create_version("a")
    data = manager.list_bot_snapshot_data("a")
    layer = next(s.name for s in data.runtime_snapshots if s.name.startswith("sha256:"))
    page = parse(data._repr_html_())
    cells = [cell for row in page.tables[1] for cell in row]
    assert layer not in cells
    assert _format.short_digest(layer) in cells
    assert len(max(cells, key=len)) < 40  # nothing as long as a full digest
