"""The processor's command line, run as users run it: python -m processor ..."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_intake import NOW, drop, make_root, repair

REPO = Path(__file__).parents[1]


def run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "processor", "--root", str(root), "--now", NOW.isoformat(), *args],
                          cwd=REPO, capture_output=True, timeout=60)


@pytest.fixture
def root(tmp_path):
    root = make_root(tmp_path)
    drop(root, "a.json", repair(1))
    drop(root, "b.json", repair(2, minutes=3, urgency=2))
    drop(root, "bad.json", b"{not json")
    return root


def test_once_processes_the_inbox_and_rejections_are_normal_work(root):
    done = run(root, "once")
    assert done.returncode == 0, done.stderr.decode()
    assert "已处理 3 份：受理 2，驳回 1，重复 0" in done.stderr.decode()
    assert not list((root / "inbox").iterdir())


def test_export_jsonl_lists_every_ticket_with_its_state_deadlines_and_history(root):
    run(root, "once")
    out = run(root, "export", "--format", "jsonl")
    assert out.returncode == 0
    tickets = [json.loads(line) for line in out.stdout.decode("utf-8").splitlines()]
    assert [t["form_id"] for t in tickets] == ["R-00000001", "R-00000002"]
    for t in tickets:
        assert t["number"].startswith("WO-20261122-") and t["state"] == "received"
        assert t["department"] and t["urgency"] in (1, 2, 3, 4) and t["deadlines"] and t["history"]
    assert tickets[1]["urgency"] == 2


def test_export_csv_has_a_bom_and_chinese_columns_for_excel(root, tmp_path):
    run(root, "once")
    target = tmp_path / "tickets.csv"
    assert run(root, "export", "--format", "csv", "--out", str(target)).returncode == 0
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:3] == ["工单号", "类型", "状态"] and len(rows) == 3
    assert "卧室窗户关不上" in rows[1][rows[0].index("描述")]


def test_check_passes_on_a_healthy_store_and_fails_when_the_store_disagrees(root):
    run(root, "once")
    assert run(root, "check").returncode == 0
    snapshot = root / "var" / "store.jsonl"
    text = snapshot.read_text(encoding="utf-8")
    snapshot.write_text(text.replace('"state":"received"', '"state":"closed"', 1), encoding="utf-8")
    bad = run(root, "check")
    assert bad.returncode == 1
    assert "与重放日志的结果不同" in bad.stdout.decode()


def test_rebuild_restores_the_store_from_the_journal_and_keeps_the_old_snapshot(root):
    run(root, "once")
    good = run(root, "export").stdout
    snapshot = root / "var" / "store.jsonl"
    snapshot.write_text(snapshot.read_text(encoding="utf-8").replace("卧室", "厨房"), encoding="utf-8")
    assert run(root, "rebuild").returncode == 0
    assert run(root, "check").returncode == 0
    assert run(root, "export").stdout == good
    assert list((root / "var").glob("store.jsonl.before-rebuild-*"))
    assert run(root, "rebuild").returncode == 0          # again, most likely within the same second
    assert len(list((root / "var").glob("store.jsonl.before-rebuild-*"))) == 2   # the first copy is kept


def test_check_reports_a_damaged_journal(root):
    run(root, "once")
    journal = root / "var" / "journal.jsonl"
    lines = journal.read_bytes().split(b"\n")
    lines[0] = lines[0].replace(b'"seq":1', b'"seq":7')
    journal.write_bytes(b"\n".join(lines))
    bad = run(root, "check")
    assert bad.returncode == 1 and "序号" in bad.stdout.decode()


def test_a_second_processor_exits_with_a_clear_message(root):
    (root / "var").mkdir()
    fd = os.open(root / "var" / "lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        done = run(root, "once")
    finally:
        os.close(fd)
    assert done.returncode == 2
    assert "另一个表单处理程序" in done.stderr.decode()
    assert len(list((root / "inbox").iterdir())) == 3


def test_bad_config_and_bad_clock_cannot_run(root):
    assert run(root, "--now", "2026-11-22T10:00:00", "once").returncode == 2
    (root / "content" / "policy.toml").write_text("[broken", encoding="utf-8")
    done = run(root, "once")
    assert done.returncode == 2 and "policy.toml" in done.stderr.decode()
    assert len(list((root / "inbox").iterdir())) == 3


def test_export_csv_writes_formula_like_cells_as_text_for_excel(root, tmp_path):
    """Cells starting with = + - @ tab or CR get a leading ' (OWASP), so Excel shows them instead of running them."""
    resident = {**repair(3)["resident"], "name": "@SUM(1+1)", "room": "+1502", "unit": "-1", "building": "\t3栋"}
    drop(root, "c.json", repair(3, minutes=5, resident=resident,
                                description='=HYPERLINK("http://evil.example/","照片")'))
    drop(root, "d.json", repair(4, minutes=6, description="\r=1+1"))
    run(root, "once")
    target = tmp_path / "tickets.csv"
    assert run(root, "export", "--format", "csv", "--out", str(target)).returncode == 0
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = {r[0]: r for r in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))}
    header = next(r for r in rows.values() if r[0] == "工单号")
    c = dict(zip(header, next(r for r in rows.values() if r[16].startswith("'=HYPERLINK")), strict=True))
    assert (c["住户"], c["房号"], c["单元"], c["楼栋"]) == ("'@SUM(1+1)", "'+1502", "'-1", "'\t3栋")
    assert c["描述"] == '\'=HYPERLINK("http://evil.example/","照片")' and c["紧急程度"] == "3"
    assert any(r[16] == "'\r=1+1" for r in rows.values())
    for row in rows.values():
        assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for cell in row)
