"""PullProgressBar: scripted layer events, with tqdm, with a recording stand-in, and without."""

from __future__ import annotations

import io
import re
import sys
import threading
from typing import Any

import pytest

from mcpmanager import FakeContainerService, progress
from mcpmanager.progress import PullProgressBar, format_size, short_digest
from mcpmanager.types import PullImageOptions, PullProgress

REF = "docker.io/library/alpine:3"
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def ev(digest: str, done: int, total: int) -> PullProgress:
    return PullProgress(ref=REF, digest=digest, done=done, total=total)


@pytest.fixture
def no_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import tqdm`` fail, as on a machine without it."""
    for name in [m for m in sys.modules if m == "tqdm" or m.startswith("tqdm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)


class RecordingBar:
    """Stands in for tqdm: records what the display does to each bar."""

    made: list[RecordingBar]

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.total = kwargs["total"]
        self.n = 0
        self.updates: list[int] = []
        self.closes = 0
        self.made.append(self)

    def update(self, delta: int) -> None:
        self.updates.append(delta)
        self.n += delta

    def close(self) -> None:
        self.closes += 1


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> list[RecordingBar]:
    made: list[RecordingBar] = []
    cls = type("Bar", (RecordingBar,), {"made": made})
    monkeypatch.setattr(progress, "_load_tqdm", lambda: cls)
    return made


# -- plain display -------------------------------------------------------------


def test_plain_lines_for_a_scripted_pull(no_tqdm: None) -> None:
    out = io.StringIO()
    with PullProgressBar(file=out) as bar:
        assert not bar.uses_tqdm
        for event in [
            ev(A, 0, 4096),
            ev(B, 0, 3 << 20),
            ev(A, 1000, 4096),  # 24%: still in the first quarter, no line
            ev(A, 1024, 4096),  # 25%
            ev(A, 512, 4096),  # late report from another thread: ignored
            ev(B, 3 << 20, 3 << 20),
            ev(B, 3 << 20, 3 << 20),  # repeated: ignored
            ev(A, 4000, 4096),  # 97%: the 75% line
            ev(C, 100, 0),  # size unknown
        ]:
            bar(event)
    assert out.getvalue().splitlines() == [
        f"pulling {REF}",
        "aaaaaaaaaaaa  [--------------------]   0%  0 B / 4.0 KiB",
        "bbbbbbbbbbbb  [--------------------]   0%  0 B / 3.0 MiB",
        "aaaaaaaaaaaa  [#####---------------]  25%  1.0 KiB / 4.0 KiB",
        "bbbbbbbbbbbb  [####################] 100%  3.0 MiB / 3.0 MiB",
        "aaaaaaaaaaaa  [###################-]  97%  3.9 KiB / 4.0 KiB",
        "cccccccccccc  100 B",
        "aaaaaaaaaaaa  [###################-]  97%  3.9 KiB / 4.0 KiB  (unfinished)",
        "cccccccccccc  100 B",
        "1/3 layer(s) complete",
    ]
    assert bar.closed


def test_plain_step_and_completion(no_tqdm: None) -> None:
    out = io.StringIO()
    bar = PullProgressBar(file=out, step=30, width=10)
    for done in range(0, 101, 10):
        bar(ev(A, done, 100))
    bar.close()
    percents = [int(m) for m in re.findall(r"(\d+)%", out.getvalue())]
    assert percents == [0, 30, 60, 90, 100]


def test_plain_writes_to_stderr_by_default(
    no_tqdm: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with PullProgressBar() as bar:
        bar(ev(A, 5, 5))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "aaaaaaaaaaaa  [####################] 100%" in captured.err


def test_use_tqdm_true_needs_tqdm(no_tqdm: None) -> None:
    with pytest.raises(ImportError):
        PullProgressBar(use_tqdm=True)
    assert not PullProgressBar(file=io.StringIO()).uses_tqdm


def test_events_after_close_are_ignored(no_tqdm: None) -> None:
    out = io.StringIO()
    bar = PullProgressBar(file=out)
    bar(ev(A, 1, 2))
    bar.close()
    written = out.getvalue()
    bar(ev(A, 2, 2))
    bar.close()  # idempotent
    assert out.getvalue() == written


def test_step_is_checked() -> None:
    with pytest.raises(ValueError, match="step"):
        PullProgressBar(step=0, use_tqdm=False)


def test_plain_from_many_threads(no_tqdm: None) -> None:
    """Whole lines only, and every layer ends with exactly one 100% line."""
    out = io.StringIO()
    bar = PullProgressBar(file=out, step=1)
    digests = [f"sha256:{i:02d}" + "f" * 62 for i in range(8)]
    start = threading.Barrier(len(digests))

    def pull(digest: str) -> None:
        start.wait()
        for done in range(0, 1001, 5):
            bar(ev(digest, done, 1000))

    threads = [threading.Thread(target=pull, args=(d,)) for d in digests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bar.close()
    lines = out.getvalue().splitlines()
    line = re.compile(r"[0-9a-f]{12}  \[[#-]{20}\] +\d+%  .+")
    body = [ln for ln in lines if ln != f"pulling {REF}" and not ln.endswith("complete")]
    assert all(line.fullmatch(ln) for ln in body), body
    for d in digests:
        mine = [ln for ln in body if ln.startswith(short_digest(d))]
        assert len(mine) == 101  # 0..100 in steps of 1 percent
        assert sum("100%" in ln for ln in mine) == 1
    assert lines[-1] == "8/8 layer(s) complete"


# -- tqdm ------------------------------------------------------------------------


def test_tqdm_bar_per_layer(recording: list[RecordingBar]) -> None:
    out = io.StringIO()
    with PullProgressBar(file=out, leave=False) as bar:
        assert bar.uses_tqdm
        bar(ev(A, 0, 100))
        bar(ev(B, 10, 50))
        bar(ev(A, 40, 100))
        bar(ev(A, 20, 100))  # late (another thread): bars only move forward
        bar(ev(A, 100, 100))
        bar(ev(A, 100, 100))  # repeated after completion: ignored
        bar(ev(C, 7, 0))
    a, b, c = recording
    assert a.kwargs["desc"] == "aaaaaaaaaaaa"
    assert (a.kwargs["unit"], a.kwargs["file"], a.kwargs["leave"]) == ("B", out, False)
    assert (a.updates, a.n) == ([0, 40, 60], 100)
    assert a.closes == 1
    assert (b.total, b.n, b.closes) == (50, 10, 1)  # unfinished, closed by close()
    assert (c.total, c.n, c.closes) == (None, 7, 1)  # size unknown
    assert out.getvalue() == ""  # the stand-in draws nothing; no extra lines either


def test_tqdm_from_many_threads(recording: list[RecordingBar]) -> None:
    bar = PullProgressBar()
    digests = [f"sha256:{i:02d}" + "f" * 62 for i in range(6)]
    start = threading.Barrier(len(digests) * 2)

    def pull(digest: str, parity: int) -> None:
        start.wait()
        for done in range(parity, 2001, 2):  # two threads report the same layer
            bar(ev(digest, done, 2000))

    threads = [threading.Thread(target=pull, args=(d, p)) for d in digests for p in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bar.close()
    assert len(recording) == len(digests)  # one bar per layer, never two
    for made in recording:
        assert made.n == 2000
        assert made.closes == 1


def test_real_tqdm_draws_each_layer() -> None:
    pytest.importorskip("tqdm")
    out = io.StringIO()
    with PullProgressBar(file=out) as bar:
        assert bar.uses_tqdm
        for done in (0, 512, 1024):
            bar(ev(A, done, 1024))
        bar(ev(B, 10, 100))
    text = out.getvalue()
    assert re.search(r"aaaaaaaaaaaa: 100%", text)
    assert re.search(r"bbbbbbbbbbbb:\s+10%", text)


def test_with_a_pull_on_the_fake(no_tqdm: None) -> None:
    out = io.StringIO()
    with FakeContainerService() as service, PullProgressBar(file=out) as bar:
        seen: list[PullProgress] = []
        service.pull_image(REF, PullImageOptions(progress=lambda p: (seen.append(p), bar(p))))
    layers = {p.digest: p.total for p in seen}
    assert len(layers) == 3  # several layers, each with its real size in bytes
    assert all(total >= 1 << 19 for total in layers.values())
    for digest in layers:
        assert f"{short_digest(digest)}  [####################] 100%" in out.getvalue()


# -- helpers ---------------------------------------------------------------------


def test_helpers() -> None:
    assert short_digest(A) == "a" * 12
    assert short_digest("abc") == "abc"
    assert [format_size(n) for n in (0, 1023, 1024, 1536, 5 << 20, 3 << 30, 5000 << 30)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 GiB",
        "5000.0 GiB",
    ]


# -- in a notebook -----------------------------------------------------------------


def test_text_goes_to_stdout_in_a_kernel(
    no_tqdm: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(progress, "_in_kernel", lambda: True)
    with PullProgressBar() as bar:
        bar(ev(A, 5, 5))
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "aaaaaaaaaaaa  [####################] 100%" in captured.out


def test_text_tqdm_goes_to_stdout_in_a_kernel(
    recording: list[RecordingBar], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "_in_kernel", lambda: True)
    with PullProgressBar() as bar:
        bar(ev(A, 1, 2))
    assert recording[0].kwargs["file"] is sys.stdout


def test_widget_tqdm_keeps_its_own_output(
    recording: list[RecordingBar], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "_in_kernel", lambda: True)
    monkeypatch.setattr(progress, "_is_widget", lambda cls: True)
    with PullProgressBar() as bar:
        bar(ev(A, 1, 2))
    assert "file" not in recording[0].kwargs


def test_outside_a_kernel_nothing_is_redirected() -> None:
    assert progress._in_kernel() is False
