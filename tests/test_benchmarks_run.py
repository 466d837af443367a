"""The benchmarks still run: they are not tests (they assert no time), but a benchmark that no longer
starts reports nothing. Each is run at its smallest size and must finish and print its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_search_bench_packing_runs() -> None:
    out = _run("bench/search_bench.py", "-n", "50", "--pack")
    assert "| level | size | cold | unchanged | one body edited | warm == cold |" in out
    assert out.count("| yes |") == 3                      # warm output equals cold at every level


@pytest.mark.slow
def test_processor_bench_runs() -> None:
    out = _run("bench/processor_bench.py", "--quick")
    assert "| batch phase | seconds | share |" in out
    assert "notes on one ticket, `once`" in out and "notes on one ticket, `check`" in out
    assert "complaints from one unit, `once`" in out and "complaints from one unit, `check`" in out
