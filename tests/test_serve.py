"""`build.py --serve` and `--watch` as a user runs them: a real process, real files, real HTTP."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-u", "build.py", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, encoding="utf-8")


def _wait_for_line(proc: subprocess.Popen, pattern: str, timeout: float = 30) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m
    proc.kill()
    pytest.fail(f"no line matching {pattern!r}; output was:\n{''.join(seen)}")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode("utf-8")


def _wait_until(predicate, timeout: float = 15) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_serve_builds_serves_reloads_and_stops_on_sigterm(mini: Path) -> None:
    proc = _start(["--root", str(mini), "--serve", "--port", "0", "--today", "2026-11-22"])
    try:
        base = _wait_for_line(proc, r"(http://127\.0\.0\.1:\d+)/staff/index\.html").group(1)
        page = _get(f"{base}/staff/procedures/t-001.html")
        assert "值班员须准时到岗" in page and "/__livereload" in page
        assert "/__livereload" not in (mini / "site/staff/procedures/t-001.html").read_text(encoding="utf-8")
        version = _get(f"{base}/__livereload")
        src = mini / "procedures/duty.md"
        src.write_text(src.read_text(encoding="utf-8").replace("值班员须准时到岗", "值班员须提前到岗"), encoding="utf-8")
        assert _wait_until(lambda: _get(f"{base}/__livereload") != version), "no rebuild after an edit"
        assert "值班员须提前到岗" in _get(f"{base}/staff/procedures/t-001.html")
        # a broken edit keeps the last good site and the server running
        src.write_text(src.read_text(encoding="utf-8").replace("owner: 客服主管\n", ""), encoding="utf-8")
        time.sleep(1.0)
        assert "值班员须提前到岗" in _get(f"{base}/staff/procedures/t-001.html")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert "缺少必填字段 owner" in out  # the watcher reported the problem with file:line


def test_build_prints_a_summary_line(mini: Path) -> None:
    run = subprocess.run([sys.executable, "build.py", "--root", str(mini)], cwd=REPO, capture_output=True,
                         text=True, encoding="utf-8")
    assert run.returncode == 0, run.stderr
    assert re.search(r"完成：写入 \d+ 页，跳过 \d+ 页（未变），删除 \d+ 页，用时 [\d.]+ 秒 \(done: \d+ written, \d+ unchanged, \d+ removed, [\d.]+ s\)", run.stdout)
