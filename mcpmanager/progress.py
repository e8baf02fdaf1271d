"""A ready-made pull progress display: one bar per layer, in a terminal or a notebook.

Pass a :class:`PullProgressBar` as ``PullImageOptions(progress=...)``::

    from mcpmanager.progress import PullProgressBar
    from mcpmanager.types import PullImageOptions

    with PullProgressBar() as bar:
        service.pull_image("docker.io/library/alpine:3", PullImageOptions(progress=bar))

With `tqdm <https://tqdm.github.io>`_ installed each layer gets a tqdm bar
sized in bytes (``tqdm.auto``: a widget in Jupyter when ipywidgets is there,
text otherwise; ``pip install 'mcpmanager[notebook]'`` brings both).
Without it, plain lines are written to a stream as each layer starts, passes
every ``step`` percent and completes. Text goes to ``sys.stderr`` in a
terminal, and to ``sys.stdout`` in a Jupyter kernel, where stderr is drawn as
a warning box although a pull's progress is no error. Pulls report
from several threads at once; the bar is safe to call from all of them, and
only ever moves forward (a late report of less progress is ignored).
"""

from __future__ import annotations

import importlib
import sys
import threading
import warnings
from types import TracebackType
from typing import Any, TextIO

from .types import PullProgress

__all__ = ["PullProgressBar", "format_size", "short_digest"]

_UNKNOWN_TOTAL_EVERY = 16 << 20
"""With no known size, the plain display reports a layer every this many bytes."""
_COMPLETE = 1 << 62  # the plain display's mark of a finished layer


def short_digest(digest: str) -> str:
    """The first 12 hex digits of a digest (``sha256:0123...`` -> ``0123456789ab``)."""
    return digest.rpartition(":")[2][:12] or digest[:12]


def format_size(n: int) -> str:
    """A byte count for people: ``512 B``, ``1.5 KiB``, ``12.3 MiB``..."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _in_kernel() -> bool:
    """True inside a Jupyter (IPython) kernel, where stderr is drawn as a warning."""
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:
        return False


def _is_widget(tqdm_class: Any) -> bool:
    """True when ``tqdm_class`` draws a notebook widget rather than text."""
    return "notebook" in getattr(tqdm_class, "__module__", "")


def _load_tqdm() -> Any:
    """tqdm's class for this environment; ImportError when tqdm is not installed."""
    with warnings.catch_warnings():
        # tqdm.auto warns once, in a notebook without ipywidgets, that it falls
        # back to text bars: that is what this display documents, so no warning.
        warnings.simplefilter("ignore")
        # optional (the plain display is used when it is missing); untyped
        return importlib.import_module("tqdm.auto").tqdm


class _Layer:
    """What the plain display remembers of one layer."""

    __slots__ = ("done", "mark", "total")

    def __init__(self) -> None:
        self.done = -1
        self.total = 0
        self.mark = -1  # last step (or byte block, with no total) reported; -1 before any

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.done >= self.total


class PullProgressBar:
    """A ``PullImageOptions.progress`` callback drawing one progress bar per layer.

    ``use_tqdm``: None uses tqdm when it can be imported, True requires it
    (ImportError otherwise), False always writes plain lines. ``file`` is the
    stream to draw on (``sys.stderr`` when None; tqdm's notebook widget ignores
    it). ``leave`` keeps finished tqdm bars on screen. ``step`` is how often, in
    percent, the plain display reports a layer. :meth:`close` (or leaving the
    ``with`` block) ends the display; events after it are ignored. Text (plain
    lines or text bars) goes to ``sys.stdout`` in a Jupyter kernel.
    """

    def __init__(
        self,
        *,
        file: TextIO | None = None,
        use_tqdm: bool | None = None,
        leave: bool = True,
        step: int = 25,
        width: int = 20,
    ) -> None:
        if not 1 <= step <= 100:
            raise ValueError(f"step must be 1..100 percent, got {step}")
        self._file = file
        self._leave = leave
        self._step = step
        self._width = width
        self._mu = threading.Lock()
        self._closed = False
        self._bars: dict[str, Any] = {}  # digest -> open tqdm bar
        self._layers: dict[str, _Layer] = {}  # digest -> plain-display state
        self._refs: list[str] = []
        self._tqdm: Any = None
        if use_tqdm is not False:
            try:
                self._tqdm = _load_tqdm()
            except ImportError:
                if use_tqdm:
                    raise
        if self._file is None and not _is_widget(self._tqdm) and _in_kernel():
            self._file = sys.stdout  # text in a notebook: not in the red stderr box

    @property
    def uses_tqdm(self) -> bool:
        """True when the layers are drawn with tqdm, False for the plain display."""
        return self._tqdm is not None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    def __call__(self, event: PullProgress) -> None:
        """Show one progress event (from any thread)."""
        with self._mu:
            if self._closed:
                return
            if event.ref not in self._refs:
                self._refs.append(event.ref)
                if self._tqdm is None:
                    self._write(f"pulling {event.ref}")
            layer = self._layers.setdefault(event.digest, _Layer())
            if layer.complete or event.done < layer.done:
                return  # late or out of order (threads race): bars only move forward
            layer.done, layer.total = event.done, max(event.total, 0)
            if self._tqdm is not None:
                self._draw_tqdm(event.digest, layer)
            else:
                self._draw_text(event.digest, layer)

    def _draw_tqdm(self, digest: str, layer: _Layer) -> None:
        bar = self._bars.get(digest)
        if bar is None:
            kwargs: dict[str, Any] = {
                "total": layer.total or None,
                "desc": short_digest(digest),
                "unit": "B",
                "unit_scale": True,
                "unit_divisor": 1024,
                "leave": self._leave,
            }
            if self._file is not None:
                kwargs["file"] = self._file
            bar = self._bars[digest] = self._tqdm(**kwargs)
        if layer.total and bar.total != layer.total:
            bar.total = layer.total
        bar.update(layer.done - bar.n)
        if layer.complete:
            self._bars.pop(digest).close()

    def _draw_text(self, digest: str, layer: _Layer) -> None:
        if layer.complete:
            mark = _COMPLETE
        elif layer.total:
            mark = min(layer.done * 100 // layer.total, 99) // self._step
        else:
            mark = layer.done // _UNKNOWN_TOTAL_EVERY
        if mark == layer.mark:
            return
        layer.mark = mark
        self._write(self._line(digest, layer))

    def _line(self, digest: str, layer: _Layer) -> str:
        name = short_digest(digest)
        if not layer.total:
            return f"{name}  {format_size(layer.done)}"
        frac = min(layer.done / layer.total, 1.0)
        filled = int(frac * self._width)
        bar = "#" * filled + "-" * (self._width - filled)
        sizes = f"{format_size(layer.done)} / {format_size(layer.total)}"
        return f"{name}  [{bar}] {int(frac * 100):3d}%  {sizes}"

    def _write(self, line: str) -> None:
        out = self._file if self._file is not None else sys.stderr
        out.write(line + "\n")
        out.flush()

    def close(self) -> None:
        """Close every open bar (the plain display notes unfinished layers); idempotent."""
        with self._mu:
            if self._closed:
                return
            self._closed = True
            bars, self._bars = list(self._bars.values()), {}
            if self._tqdm is None and self._layers:
                unfinished = [d for d, layer in self._layers.items() if not layer.complete]
                for digest in unfinished:
                    layer = self._layers[digest]
                    note = "  (unfinished)" if layer.total else ""
                    self._write(self._line(digest, layer) + note)
                done = len(self._layers) - len(unfinished)
                self._write(f"{done}/{len(self._layers)} layer(s) complete")
        for bar in bars:
            bar.close()

    def __enter__(self) -> PullProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
