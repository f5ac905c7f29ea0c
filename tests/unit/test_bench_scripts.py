"""Every bench under bench/ still imports and still answers --help: a bench that imports a name
another bench no longer has (as bench/exam_request_cost.py did after bench/exam_day.py was
rewritten) fails the fast suite, not the next person who runs it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
MODULES = sorted(BENCH.glob("*.py"))
SCRIPTS = [p for p in MODULES if 'if __name__ == "__main__":' in p.read_text(encoding="utf-8")]


def test_the_benches_are_found() -> None:
    names = {p.name for p in MODULES}
    assert {"exam_day.py", "exam_request_cost.py", "bank_import_stall.py", "httpkit.py"} <= names
    assert len(SCRIPTS) >= len(MODULES) - 2  # httpkit and verify_baseline (a uvicorn factory) only


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_a_bench_module_imports(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Imported as `python bench/X.py` runs it: bench/ first on sys.path (restored afterwards), the
    module under a name of its own so that every file is executed afresh."""
    monkeypatch.syspath_prepend(str(BENCH))
    name = f"_bench_import_check_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up while defined
    spec.loader.exec_module(module)
    assert module.__doc__, f"bench/{path.name} says what it measures in its docstring"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_a_bench_script_answers_help(path: Path) -> None:
    proc = subprocess.run(  # noqa: S603 - this interpreter and the repository's own files
        [sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage:"), proc.stdout[:500]
