"""The builder's process helpers: a background job hands back its result or its failure."""

from __future__ import annotations

import os

import pytest

from handbook.parallel import Background


def _pid_and(value: int) -> tuple[int, int]:
    return os.getpid(), value * 2


def _fail() -> None:
    raise ValueError("索引出错")


def test_background_job_runs_elsewhere_and_returns_its_value() -> None:
    pid, value = Background(2, _pid_and, 21).result()
    assert value == 42
    assert pid != os.getpid()  # forked: the parent was free meanwhile


def test_one_worker_means_no_extra_process() -> None:
    assert Background(1, _pid_and, 1).result() == (os.getpid(), 2)


def test_a_failing_job_reports_its_traceback() -> None:
    job = Background(2, _fail)
    with pytest.raises(RuntimeError, match="索引出错"):
        job.result()


def _sleep() -> int:
    import time

    time.sleep(30)
    return 1


def test_a_cancelled_job_leaves_no_process_behind() -> None:
    import multiprocessing

    job = Background(2, _sleep)
    job.cancel()
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]


def test_a_build_that_fails_while_rendering_stops_its_search_job(mini, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import multiprocessing

    from estate.config import load_config
    from handbook import build as builder
    from tests.conftest import TODAY

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError("disk full")

    monkeypatch.setattr(builder.parallel, "render_and_write", broken)
    with pytest.raises(OSError, match="disk full"):
        builder.build(load_config(mini), mini / "site", today=TODAY, workers=2)
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]


def test_parse_chunks_take_the_costliest_files_first_and_shrink_toward_the_end() -> None:
    """Guided scheduling: a file as costly as 75 others (index.md's 1,000 links) is parsed first, not last
    in its chunk while the other worker has nothing left to do; every file is in exactly one chunk."""
    from handbook.parallel import _balanced_chunks

    costs = [10] * 300 + [750] + [3] * 99
    chunks = _balanced_chunks(costs, workers=2)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(400))
    assert chunks[0][0] == 300
    weights = [sum(costs[i] for i in chunk) for chunk in chunks]
    assert weights[0] > weights[len(weights) // 2] > weights[-1]
    assert all(len(chunk) >= 4 for chunk in chunks[:-1])
    assert 10 <= len(chunks) <= 60  # enough to balance, few enough that each pays its way
    assert max(len(chunk) for chunk in _balanced_chunks([1] * 5000, workers=2)) == 150  # memory: see CHUNK_MOST
    assert _balanced_chunks([], workers=2) == []
    assert _balanced_chunks([5], workers=2) == [[0]]


def _mark_later(path: str, seconds: float) -> None:
    import time

    time.sleep(seconds)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(str(os.getpid()))


def test_a_job_hands_over_its_result_before_its_then_and_the_next_build_waits(tmp_path) -> None:  # noqa: ANN001
    """THEN (saving the search chunks) runs after the result is handed over; wait_for_lingering waits for it."""
    from handbook import parallel

    marker = tmp_path / "then"
    job = Background(2, _pid_and, 21, then=lambda: _mark_later(str(marker), 0.5))
    pid, value = job.result()
    assert value == 42 and not marker.exists()  # the build goes on while THEN runs
    parallel.wait_for_lingering()
    assert marker.read_text(encoding="utf-8") == str(pid)  # THEN ran in the job's process, and is done
    serial = tmp_path / "serial"
    assert Background(1, _pid_and, 1, then=lambda: _mark_later(str(serial), 0)).result() == (os.getpid(), 2)
    assert serial.is_file()  # one process: THEN runs before the result is given


_LINGER = """
import os, sys
sys.path[0] = sys.argv[1]
from handbook.parallel import Background
job = Background(2, int, "7", then=lambda: __import__("time").sleep(3) or open(sys.argv[2], "w").close())
print(job.result(), flush=True)
os._exit(0)  # as build.py ends
"""


def test_a_pipe_reading_the_build_is_not_held_open_by_then(tmp_path) -> None:  # noqa: ANN001
    """`build.py | tail` ends with the build, not with the search chunks' save that goes on after it."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    marker = tmp_path / "saved"
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", _LINGER, str(Path(__file__).parent.parent), str(marker)],
                         capture_output=True, text=True, timeout=30)
    assert run.stdout == "7\n" and time.monotonic() - started < 2.5
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()  # the save still happened
