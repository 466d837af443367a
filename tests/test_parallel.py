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
