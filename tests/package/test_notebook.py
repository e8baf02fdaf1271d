"""examples/explore.ipynb runs top to bottom in a real Jupyter kernel, without errors.

The kernel is this test run's own interpreter (a kernelspec written to a temp
dir points at ``sys.executable``), started in a temp dir so nothing depends on
the working directory. The notebook uses the fake backend only: no network,
no root. Its containerd cell is kept from connecting by leaving its opt-in
variable unset.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.harness.common import unavailable

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "explore.ipynb"
KERNEL_NAME = "mcpmanager-test"


def _read() -> Any:
    try:
        import nbformat
    except ImportError:
        unavailable("nbformat is not installed (pip install -e '.[dev]')")
    return nbformat.read(NOTEBOOK, as_version=4)


def test_committed_notebook_has_no_outputs() -> None:
    nb = _read()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [], f"cell {cell.id} has outputs: clear them before committing"
        assert cell.execution_count is None, f"cell {cell.id} has an execution count"


def _kernel_manager(tmp_path: Path) -> Any:
    try:
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import KernelManager
    except ImportError:
        unavailable("jupyter_client is not installed (pip install -e '.[dev]')")
    spec_dir = tmp_path / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "mcpmanager tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def _text(cell: Any) -> str:
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.extend(str(v) for v in out.data.values())
    return "".join(parts)


def test_explore_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import ipykernel  # noqa: F401  (the kernel runs it)
        from nbclient import NotebookClient
    except ImportError:
        unavailable("nbclient and ipykernel are not installed (pip install -e '.[dev]')")
    nb = _read()
    # The kernel inherits this environment: keep its state in the temp dir and
    # make sure the containerd cell stays an explanation.
    monkeypatch.delenv("MCPMANAGER_EXPLORE_CONTAINERD", raising=False)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    workdir = tmp_path / "cwd"
    workdir.mkdir()

    client = NotebookClient(
        nb,
        km=_kernel_manager(tmp_path),
        timeout=60,
        startup_timeout=60,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    cells = {c.id: c for c in nb.cells if c.cell_type == "code"}
    for cell in cells.values():
        assert all(o.output_type != "error" for o in cell.outputs), cell.id
    html = [
        o.data["text/html"]
        for c in cells.values()
        for o in c.outputs
        if o.output_type in ("execute_result", "display_data") and "text/html" in o.data
    ]
    assert any("<table" in h and "alice" in h for h in html), "the Manager shows as a table"
    rolled_back = next(c for c in cells.values() if "rollback_version" in c.source)
    assert "try mcpmanager" in _text(rolled_back)
    restored = next(c for c in cells.values() if "restore_preserved_data" in c.source)
    assert "preserved: False" in _text(restored)
    real = next(c for c in cells.values() if "ContainerdService" in c.source)
    assert "Skipped" in _text(real)
    stderr = [c.id for c in cells.values() for o in c.outputs if o.get("name") == "stderr"]
    assert not stderr, f"cells writing to stderr (drawn as warnings in Jupyter): {stderr}"
    pulled = next(c for c in cells.values() if "PullProgressBar()" in c.source)
    assert pulled.outputs, "the pull shows its progress"
    _check_html(nb, tmp_path)


def _check_html(nb: Any, tmp_path: Path) -> None:
    """Render the executed notebook as nbconvert does and look for error output in it."""
    try:
        from nbconvert import HTMLExporter
    except ImportError:
        unavailable("nbconvert is not installed (pip install -e '.[dev]')")
    body, _ = HTMLExporter().from_notebook_node(nb)
    (tmp_path / "explore.html").write_text(body)
    assert "<table" in body
    assert "alice" in body
    for marker in ('data-mime-type="application/vnd.jupyter.stderr"', "Traceback"):
        assert marker not in body, f"the rendered notebook shows {marker!r}"
