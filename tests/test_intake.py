"""Intake: which files are read, in what order, and where every one of them ends up."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from estate.config import load_config
from estate.policy import load_policy
from processor.engine import apply_form
from processor.forms import parse_form
from processor.intake import Intake
from processor.store import JOURNAL, Store

REPO = Path(__file__).parents[1]
TZ = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=TZ)


def make_root(tmp_path: Path) -> Path:
    """An estate root with the example estate's config and policy, and empty inbox/var."""
    root = tmp_path / "estate"
    (root / "content").mkdir(parents=True)
    for name in ("estate.toml", "policy.toml"):
        shutil.copy(REPO / "content" / name, root / "content" / name)
    (root / "inbox").mkdir()
    return root


def repair(n: int, *, minutes: int = 0, **extra) -> dict:
    return {"form": "repair", "id": f"R-{n:08d}", "submitted_at": (NOW + timedelta(minutes=minutes)).isoformat(),
            "channel": "counter", "staff": "李前台",
            "resident": {"name": "王阿姨", "phone": "13800000000", "building": "3栋", "unit": "2单元",
                         "room": f"{1500 + n}"},
            "category": "door_window", "description": f"卧室窗户关不上（{n}）", **extra}


def drop(root: Path, name: str, body: dict | bytes, *, age: float = 5.0) -> Path:
    """Put a file in the inbox as a finished writer would (tmp + rename), AGE seconds old."""
    path = root / "inbox" / name
    tmp = path.with_name(name + ".tmp")
    tmp.write_bytes(body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8"))
    os.replace(tmp, path)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


class Desk:
    """A store and an intake over one estate root."""

    def __init__(self, root: Path, **processor):
        config = load_config(root)
        if processor:
            config = replace(config, processor=replace(config.processor, **processor))
        self.root, self.config = root, config
        self.policy = load_policy(config.path(config.processor.policy_file))
        self.store = Store(root / "var", lambda f, t, now: apply_form(f, t, self.policy, now))
        self.report = self.store.open()
        self.intake = Intake(config, self.store, self.policy, lambda: NOW, parse_form, apply_form)

    def run(self, complete=()):
        return self.intake.run_pass(complete)

    def close(self):
        self.store.close()


@pytest.fixture
def root(tmp_path):
    return make_root(tmp_path)


@pytest.fixture
def desk(root):
    d = Desk(root)
    yield d
    d.close()


def files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def journal_ids(root: Path, *, torn_tail_allowed: bool = False) -> list[str]:
    """The ids in the journal. Right after a kill -9 its last line may be torn (the processor cuts it at
    its next start): only TORN_TAIL_ALLOWED skips it; anywhere else a torn or unreadable line fails."""
    path = root / "var" / JOURNAL
    if not path.exists():
        return []
    *lines, tail = path.read_bytes().split(b"\n")
    assert torn_tail_allowed or not tail, f"torn last line: {tail[:80]!r}"
    return [json.loads(line)["id"] for line in lines]


def test_an_accepted_form_is_journaled_then_archived_with_its_photo(desk, root):
    drop(root, "a.json", repair(1, photos=["leak.jpg"]))
    (root / "inbox" / "leak.jpg").write_bytes(b"\xff\xd8 photo")
    (root / "inbox" / "stray.jpg").write_bytes(b"not named by any form")
    summary = desk.run()
    assert (summary.accepted, summary.rejected, summary.duplicates) == (1, 0, 0)
    assert summary.line() == "已处理 1 份：受理 1，驳回 0，重复 0"
    assert files(root / "inbox") == ["stray.jpg"]
    assert files(root / "var" / "archive") == ["2026-11/a.json", "2026-11/leak.jpg"]
    record = json.loads((root / "var" / JOURNAL).read_text(encoding="utf-8"))
    assert record["id"] == "R-00000001" and record["dest"] == "archive/2026-11/a.json"
    assert record["photos"] == {"leak.jpg": "archive/2026-11/leak.jpg"}
    assert [t["form_id"] for t in desk.store.tickets()] == ["R-00000001"]


def test_a_bad_file_goes_to_rejected_with_a_bilingual_error_beside_it(desk, root):
    drop(root, "broken.json", b'{"form": "repair", "id": ')
    bad = repair(2)
    del bad["resident"]["phone"]
    drop(root, "nophone.json", bad)
    summary = desk.run()
    assert summary.rejected == 2 and summary.accepted == 0
    assert files(root / "var" / "rejected") == ["broken.error.json", "broken.json", "nophone.error.json",
                                               "nophone.json"]
    error = json.loads((root / "var" / "rejected" / "nophone.error.json").read_text(encoding="utf-8"))
    assert error["file"] == "nophone.json" and error["form_id"] == "R-00000002"
    assert any("phone" in p["field"] and p["zh"] and p["en"] for p in error["problems"])
    assert journal_ids(root) == []


def test_the_same_form_twice_is_one_ticket_and_an_archived_duplicate(desk, root):
    drop(root, "first.json", repair(3))
    desk.run()
    drop(root, "again.json", repair(3))
    summary = desk.run()
    assert summary.duplicates == 1
    assert files(root / "var" / "archive") == ["2026-11/duplicates/again.json", "2026-11/first.json"]
    assert journal_ids(root) == ["R-00000003"]
    assert len(list(desk.store.tickets())) == 1


def test_the_same_id_with_other_content_is_rejected_as_a_conflict(desk, root):
    drop(root, "first.json", repair(4))
    drop(root, "changed.json", repair(4, description="其实是门锁坏了"), age=4)
    summary = desk.run()
    assert (summary.accepted, summary.rejected) == (1, 1)
    error = json.loads((root / "var" / "rejected" / "changed.error.json").read_text(encoding="utf-8"))
    assert error["problems"][0]["field"] == "id" and "冲突" in error["problems"][0]["zh"]
    assert journal_ids(root) == ["R-00000004"]


def test_names_that_clash_get_a_suffix_and_nothing_is_overwritten(desk, root):
    for n in (5, 6, 7):
        drop(root, "form.json", repair(n))
        desk.run()
    assert files(root / "var" / "archive") == ["2026-11/form-1.json", "2026-11/form-2.json", "2026-11/form.json"]
    ids = {json.loads((root / "var" / "archive" / "2026-11" / f).read_text(encoding="utf-8"))["id"]
           for f in ("form.json", "form-1.json", "form-2.json")}
    assert ids == {"R-00000005", "R-00000006", "R-00000007"}


def test_forms_are_applied_in_submitted_at_order_not_file_order(desk, root):
    drop(root, "a-late.json", repair(8, minutes=30), age=9)
    drop(root, "b-early.json", repair(9, minutes=1), age=5)
    desk.run()
    assert journal_ids(root) == ["R-00000009", "R-00000008"]
    numbers = {t["form_id"]: t["number"] for t in desk.store.tickets()}
    assert numbers["R-00000009"] < numbers["R-00000008"]


def test_tmp_files_and_files_still_being_written_wait_for_a_later_pass(desk, root):
    (root / "inbox" / "coming.json.tmp").write_text("{", encoding="utf-8")
    drop(root, "fresh.json", repair(10), age=0)
    summary = desk.run()
    assert summary.handled == 0 and summary.waiting == 1
    assert desk.run(complete={"fresh.json"}).accepted == 1     # a rename event says it is complete
    assert files(root / "inbox") == ["coming.json.tmp"]


def test_a_file_that_keeps_growing_is_not_read_until_it_settles(root):
    desk = Desk(root, settle_seconds=0.3)
    path = root / "inbox" / "slow.json"
    body = json.dumps(repair(11), ensure_ascii=False).encode("utf-8")
    for start in range(0, len(body), 100):
        with path.open("ab") as fh:
            fh.write(body[start:start + 100])
        assert desk.run().waiting == 1
    time.sleep(0.35)
    assert desk.run().accepted == 1
    assert files(root / "var") and not (root / "var" / "rejected").exists()
    desk.close()


def test_an_update_for_a_missing_ticket_is_rejected_and_a_real_one_applies(desk, root):
    drop(root, "open.json", repair(12))
    desk.run()
    number = next(desk.store.tickets())["number"]
    update = {"form": "update", "id": "U-00000001", "submitted_at": (NOW + timedelta(minutes=2)).isoformat(),
              "staff": "李前台", "action": "acknowledge"}
    drop(root, "ack.json", {**update, "ticket": number})
    drop(root, "ghost.json", {**update, "id": "U-00000002", "ticket": "WO-20261122-0999"})
    summary = desk.run()
    assert (summary.accepted, summary.rejected) == (1, 1)
    assert desk.store.get(number).state == "acknowledged"
    assert files(root / "var" / "rejected") == ["ghost.error.json", "ghost.json"]


def test_a_crash_after_the_journal_write_is_finished_on_restart_not_counted_twice(root):
    desk = Desk(root)
    drop(root, "crash.json", repair(13, photos=["p.jpg"]))
    (root / "inbox" / "p.jpg").write_bytes(b"photo")
    items = [desk.intake._read(p) for p in desk.intake.pending()[0]]
    desk.intake._decide(items[0], NOW, desk.intake._month(NOW))
    desk.store.commit()                  # journaled ... and then the power went out before the move
    desk.store.close(snapshot=False)
    assert files(root / "inbox") == ["crash.json", "p.jpg"]
    again = Desk(root)
    assert again.intake.recover(again.report.replayed) == 1
    assert files(root / "inbox") == []
    assert files(root / "var" / "archive") == ["2026-11/crash.json", "2026-11/p.jpg"]
    assert again.run().handled == 0
    assert journal_ids(root) == ["R-00000013"]
    again.close()


def test_batches_share_one_fsync_and_all_forms_land(root):
    desk = Desk(root, batch_size=4)
    for n in range(10):
        drop(root, f"f{n}.json", repair(20 + n, minutes=n))
    assert desk.run().accepted == 10
    assert len(journal_ids(root)) == 10 and len(list(desk.store.tickets())) == 10
    desk.close()


def test_two_forms_naming_the_same_photo_both_land_and_the_photo_moves_once(desk, root):
    drop(root, "a.json", repair(30, photos=["shared.jpg"]))
    drop(root, "b.json", repair(31, minutes=1, photos=["shared.jpg"]))
    (root / "inbox" / "shared.jpg").write_bytes(b"photo")
    assert desk.run().accepted == 2
    assert files(root / "inbox") == []
    assert files(root / "var" / "archive") == ["2026-11/a.json", "2026-11/b.json", "2026-11/shared.jpg"]


def test_a_lone_surrogate_in_a_form_is_rejected_and_the_rest_of_the_inbox_processed(desk, root):
    """"name": "\\ud800" used to crash digest() on every start; now the form is rejected with the field named."""
    body = json.dumps(repair(40), ensure_ascii=False).replace('"王阿姨"', '"\\ud800"').encode("utf-8")
    drop(root, "bad.json", body)
    drop(root, "good.json", repair(41))
    summary = desk.run()
    assert (summary.accepted, summary.rejected) == (1, 1)
    error = json.loads((root / "var" / "rejected" / "bad.error.json").read_text(encoding="utf-8"))
    assert error["problems"][0]["field"] == "resident.name" and "\\ud800" in error["problems"][0]["en"]
    assert journal_ids(root) == ["R-00000041"] and files(root / "inbox") == []


@pytest.mark.parametrize("submitted_at", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59+08:00",
                                          "9999-12-31T23:59:59-12:00", "2028-01-01T09:00:00+08:00",
                                          "2016-11-01T09:00:00+08:00", "2027-09-01T10:05:00+08:00",
                                          "2026-11-23T10:01:00+08:00", "2026-11-23T02:01:00Z"])
def test_a_submitted_at_outside_the_window_around_the_clock_is_rejected_not_an_overflow(desk, root, submitted_at):
    """Years 0001 and 9999 overflowed the deadline arithmetic (traceback on every start); more than a year
    ahead of the processor's clock or ten years behind it is rejected as implausible, naming the field."""
    drop(root, "odd.json", {**repair(42), "submitted_at": submitted_at})
    drop(root, "good.json", repair(43))
    summary = desk.run()
    assert (summary.accepted, summary.rejected) == (1, 1)
    error = json.loads((root / "var" / "rejected" / "odd.error.json").read_text(encoding="utf-8"))
    assert error["problems"][0]["field"] == "submitted_at" and "不可信" in error["problems"][0]["zh"]
    assert journal_ids(root) == ["R-00000043"]


def test_a_submitted_at_inside_the_window_is_accepted(desk, root):
    """Ten years back; up to a day ahead (a wrong time zone, a fast clock). The window ahead was a year: a form
    from a phone set to 2027 opened a ticket no update could touch for months (finding 5 of the review)."""
    drop(root, "late.json", {**repair(44), "submitted_at": "2018-01-01T09:00:00+08:00"})
    drop(root, "ahead.json", {**repair(45), "submitted_at": "2026-11-23T09:59:00+08:00"})
    drop(root, "zone.json", {**repair(49), "submitted_at": "2026-11-22T10:00:00-12:00"})   # 14:00 ahead
    assert desk.run().accepted == 3


def test_a_file_name_that_is_not_utf8_is_journaled_and_archived_under_its_gbk_reading(desk, root):
    """A GBK-named file (Samba, zip) used to crash the journal write; now it is read as GBK, or \\xNN if not."""
    inbox = os.fsencode(root / "inbox")
    drop(root, "x.json", repair(46))
    os.rename(inbox + b"/x.json", inbox + "/报修单.json".encode("gbk"))
    drop(root, "y.json", repair(47, minutes=1))
    os.rename(inbox + b"/y.json", inbox + b"/\xff\xfe.json")
    assert desk.run().accepted == 2
    assert files(root / "inbox") == []
    assert files(root / "var" / "archive") == ["2026-11/\\xff\\xfe.json", "2026-11/报修单.json"]
    lines = (root / "var" / JOURNAL).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["source"] for line in lines] == ["报修单.json", "\\xff\\xfe.json"]
    logged = (root / "var" / "intake.jsonl").read_text(encoding="utf-8")
    assert "报修单.json" in logged


def test_a_crash_before_moving_a_gbk_named_file_is_finished_on_restart(root):
    desk = Desk(root)
    drop(root, "x.json", repair(48))
    os.rename(os.fsencode(root / "inbox" / "x.json"), os.fsencode(root / "inbox") + "/报修单.json".encode("gbk"))
    items = [desk.intake._read(p) for p in desk.intake.pending()[0]]
    desk.intake._decide(items[0], NOW, desk.intake._month(NOW))
    desk.store.commit()                  # journaled ... and then the power went out before the move
    desk.store.close(snapshot=False)
    again = Desk(root)
    assert again.intake.recover(again.report.replayed) == 1
    assert files(root / "inbox") == [] and files(root / "var" / "archive") == ["2026-11/报修单.json"]
    again.close()


def _engine_that_fails_on(form_id, exc):
    def apply(form, tickets, policy, now):
        if form.id == form_id:
            raise exc
        return apply_form(form, tickets, policy, now)
    return apply


def test_an_unexpected_error_on_one_form_quarantines_that_form_and_the_rest_are_processed(desk, root):
    """A bug one form triggers rejects that form with an internal-error report instead of stopping the inbox."""
    desk.intake.apply = _engine_that_fails_on("R-00000050", KeyError("category"))
    drop(root, "poison.json", repair(50))
    drop(root, "good.json", repair(51, minutes=1))
    summary = desk.run()
    assert (summary.accepted, summary.rejected) == (1, 1)
    error = json.loads((root / "var" / "rejected" / "poison.error.json").read_text(encoding="utf-8"))
    assert error["form_id"] == "R-00000050" and "内部错误" in error["problems"][0]["zh"]
    assert "KeyError" in error["problems"][0]["en"]
    assert journal_ids(root) == ["R-00000051"]


def test_an_unexpected_error_while_parsing_quarantines_the_file(root):
    def parse(raw, source, *args, **kwargs):
        if source == "poison.json":
            raise RecursionError("deep")
        return parse_form(raw, source, *args, **kwargs)
    desk = Desk(root)
    desk.intake.parse = parse
    drop(root, "poison.json", repair(52))
    drop(root, "good.json", repair(53))
    assert (desk.run().accepted, len(files(root / "var" / "rejected"))) == (1, 2)
    desk.close()


def test_a_disk_error_still_stops_the_pass_and_leaves_the_files_in_the_inbox(desk, root):
    desk.intake.apply = _engine_that_fails_on("R-00000054", OSError(28, "No space left on device"))
    drop(root, "a.json", repair(54))
    with pytest.raises(OSError):
        desk.run()
    assert files(root / "inbox") == ["a.json"] and journal_ids(root) == []


@pytest.mark.parametrize("photo", ["b.json", "B.JSON", "b.json.tmp", "a.json", "b.error.json"])
def test_a_form_naming_another_form_as_its_photo_is_rejected_and_the_other_form_is_processed(desk, root, photo):
    """A form file listed under photos used to be carried into the archive unread; now the naming form is
    rejected (photos may not end with .json or .tmp) and no form file ever moves as a photo."""
    drop(root, "a.json", repair(60, photos=["leak.jpg", photo]))
    drop(root, "b.json", repair(61, minutes=1), age=3)
    (root / "inbox" / "b.json.tmp").write_text("{", encoding="utf-8")      # a writer still busy
    (root / "inbox" / "leak.jpg").write_bytes(b"photo")
    summary = desk.run()
    assert (summary.accepted, summary.rejected) == (1, 1)
    assert journal_ids(root) == ["R-00000061"]
    assert files(root / "inbox") == ["b.json.tmp"]
    assert files(root / "var" / "rejected") == ["a.error.json", "a.json", "leak.jpg"]
    error = json.loads((root / "var" / "rejected" / "a.error.json").read_text(encoding="utf-8"))
    assert error["problems"][0]["field"] == "photos[1]" and "表单文件" in error["problems"][0]["zh"]


@pytest.mark.parametrize("same_pass", [False, True])
def test_an_error_report_never_replaces_a_rejected_file_of_its_name(desk, root, same_pass):
    """A rejected original literally named a.error.json used to be replaced by a.json's report (os.replace);
    now the report and its file take the next free suffix together: a-1.json and a-1.error.json."""
    drop(root, "a.error.json", b'{"form":"repair","id":"first-form-01" BROKEN', age=9)
    if not same_pass:
        desk.run()
    drop(root, "a.json", b'{"second": ', age=5)
    desk.run()
    rejected = root / "var" / "rejected"
    assert files(rejected) == ["a-1.error.json", "a-1.json", "a.error.error.json", "a.error.json"]
    assert b"first-form-01" in (rejected / "a.error.json").read_bytes()
    report = json.loads((rejected / "a-1.error.json").read_text(encoding="utf-8"))
    assert report["file"] == "a.json" and report["moved_to"] == "a-1.json"


def test_a_stalled_writers_half_file_waits_for_the_rest_instead_of_being_rejected(desk, root):
    """60 bytes, a pause longer than settle_seconds, then the rest: the half file ends before its JSON does and
    changed within write_grace_seconds, so it is left for a later pass (it used to be rejected and moved while
    its writer kept writing into the moved file)."""
    body = json.dumps(repair(70), ensure_ascii=False).encode("utf-8")
    path = root / "inbox" / "slow.json"
    path.write_bytes(body[:60])
    then = time.time() - 1.0                  # older than settle_seconds, younger than write_grace_seconds
    os.utime(path, (then, then))
    summary = desk.run()
    assert (summary.handled, summary.waiting) == (0, 1)
    with path.open("ab") as fh:
        fh.write(body[60:])
    os.utime(path, (then, then))
    assert desk.run().accepted == 1 and not (root / "var" / "rejected").exists()


@pytest.mark.parametrize("cut", [0, 1, 60, -1])
def test_a_truncated_file_is_rejected_once_it_has_not_changed_for_write_grace_seconds(root, cut):
    """The limit: a file that stays cut short (its writer died) is rejected after the grace time."""
    desk = Desk(root, write_grace_seconds=0.5)
    body = json.dumps(repair(71), ensure_ascii=False).encode("utf-8")
    drop(root, "cut.json", body[:cut], age=0.3)
    assert desk.run().waiting == 1
    time.sleep(0.25)
    assert desk.run().rejected == 1
    assert files(root / "var" / "rejected") == ["cut.error.json", "cut.json"]
    desk.close()


def test_a_truncated_file_renamed_into_place_is_rejected_at_once(desk, root):
    """A rename into place is the writer's "done": no grace for it."""
    drop(root, "cut.json", b'{"form": "repair", "id": "R-0000', age=1)
    assert desk.run(complete={"cut.json"}).rejected == 1


def test_a_recent_file_that_is_wrong_but_complete_json_is_rejected_at_once(desk, root):
    """Only a file that ends before its JSON does may be a writer still busy; broken JSON mid-file is not."""
    drop(root, "bad.json", b'{"form": "repair" "id": "R-00000072"}', age=1)
    drop(root, "nophone.json", {**repair(73), "resident": {}}, age=1)
    assert desk.run().rejected == 2


def test_a_copy_across_file_systems_that_fails_leaves_no_partial_file_and_is_finished_later(root, monkeypatch):
    """With var/ on another file system the move is a copy; a disk-full copy used to leave a 0-byte file at the
    journaled path (and the real form became a duplicate). Now nothing is left there, the form stays in the
    inbox, and the next start finishes the move."""
    real_rename, real_copy = os.rename, shutil.copy2
    inbox = str(root / "inbox")

    def rename(src, dest):
        if str(src).startswith(inbox):
            raise OSError(18, "Invalid cross-device link")
        return real_rename(src, dest)

    def full_copy(src, dest, **kwargs):
        Path(dest).write_bytes(Path(src).read_bytes()[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(shutil, "copy2", full_copy)
    desk = Desk(root)
    drop(root, "a.json", repair(80))
    with pytest.raises(OSError):
        desk.run()
    desk.store.close(snapshot=False)
    assert files(root / "inbox") == ["a.json"]
    assert not (root / "var" / "archive").exists() or files(root / "var" / "archive") == []
    assert journal_ids(root) == ["R-00000080"]

    monkeypatch.setattr(shutil, "copy2", real_copy)             # space freed
    again = Desk(root)
    assert again.intake.recover(again.report.replayed) == 1
    assert again.run().handled == 0
    assert files(root / "inbox") == [] and files(root / "var" / "archive") == ["2026-11/a.json"]
    assert json.loads((root / "var" / "archive" / "2026-11" / "a.json").read_bytes())["id"] == "R-00000080"
    again.close()


def _assign(n: int, number: str, department: str) -> dict:
    return {"form": "update", "id": f"U-{n:08d}", "submitted_at": (NOW + timedelta(minutes=n)).isoformat(),
            "staff": "李前台", "action": "assign", "ticket": number, "assignee": "赵师傅", "department": department}


def test_an_assign_to_a_department_estate_toml_does_not_have_is_rejected(desk, root):
    """The department of an assign used to be taken as given ("no-such-dept"): now it must be the id, name or
    alias of a department in content/estate.toml, or the update is rejected naming the known ids."""
    drop(root, "open.json", repair(90))
    desk.run()
    number = next(desk.store.tickets())["number"]
    drop(root, "ghost.json", _assign(1, number, "no-such-dept"), age=9)
    drop(root, "alias.json", _assign(2, number, "维修组"), age=8)
    summary = desk.run()
    assert (summary.accepted, summary.rejected) == (1, 1)
    error = json.loads((root / "var" / "rejected" / "ghost.error.json").read_text(encoding="utf-8"))
    problem = error["problems"][0]
    assert problem["field"] == "department" and "no-such-dept" in problem["zh"] and "engineering" in problem["en"]
    assert desk.store.get(number).department == "维修组" and desk.store.get(number).assignee == "赵师傅"


def test_a_symlink_in_the_inbox_is_rejected_unread_and_its_target_left_alone(desk, root, tmp_path, caplog):
    """A symlink to a form outside the inbox used to be archived as the link (the form could then vanish); now
    it is rejected without being read, its target untouched. A symlinked photo is not moved either."""
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(repair(100), ensure_ascii=False), encoding="utf-8")
    (root / "inbox" / "link.json").symlink_to(outside)
    (tmp_path / "secret.jpg").write_bytes(b"not ours")
    (root / "inbox" / "p.jpg").symlink_to(tmp_path / "secret.jpg")
    drop(root, "good.json", repair(101, photos=["p.jpg"]))
    then = time.time() - 5
    os.utime(root / "inbox" / "link.json", (then, then), follow_symlinks=False)
    summary = desk.run()
    assert (summary.accepted, summary.rejected) == (1, 1)
    assert journal_ids(root) == ["R-00000101"] and outside.exists()
    link = root / "var" / "rejected" / "link.json"
    assert link.is_symlink()
    error = json.loads((root / "var" / "rejected" / "link.error.json").read_text(encoding="utf-8"))
    assert "符号链接" in error["problems"][0]["zh"] and "symbolic link" in error["problems"][0]["en"]
    assert (root / "inbox" / "p.jpg").is_symlink() and files(root / "var" / "archive") == ["2026-11/good.json"]


def test_a_folder_or_pipe_named_json_is_logged_once_and_left_alone(desk, root, caplog):
    """They used to be skipped in silence, forever: now a warning says so, once."""
    (root / "inbox" / "folder.json").mkdir()
    os.mkfifo(root / "inbox" / "pipe.json")
    drop(root, "good.json", repair(102))
    with caplog.at_level("WARNING", logger="processor.intake"):
        assert desk.run().accepted == 1
        desk.run()
        desk.run()
    warned = [r.getMessage() for r in caplog.records if "不是普通文件" in r.getMessage()]
    assert sorted(w.split(":")[0] for w in warned) == ["folder.json", "pipe.json"]


def test_an_update_stamped_before_its_ticket_was_opened_is_rejected(desk, root):
    """A resolve at 09:00 for a ticket opened at 10:00 used to be accepted, and the history ran backwards."""
    drop(root, "open.json", repair(110, minutes=60))
    drop(root, "other.json", repair(111, minutes=60, resident={**repair(111)["resident"], "unit": "9单元"}))
    desk.run()
    by_form = {t["form_id"]: t["number"] for t in desk.store.tickets()}
    early = {"form": "update", "submitted_at": (NOW + timedelta(minutes=59)).isoformat(), "staff": "李前台"}
    drop(root, "u1.json", {**early, "id": "U-00000110", "action": "acknowledge", "ticket_form": "R-00000110"}, age=9)
    drop(root, "u2.json", {**early, "id": "U-00000111", "action": "merge", "ticket_form": "R-00000110",
                           "duplicate": by_form["R-00000111"]}, age=8)
    drop(root, "u3.json", {**early, "id": "U-00000112", "action": "acknowledge", "ticket": by_form["R-00000111"],
                           "submitted_at": (NOW + timedelta(minutes=60)).isoformat()}, age=7)
    summary = desk.run()
    assert (summary.accepted, summary.rejected) == (1, 2)
    for name in ("u1", "u2"):
        error = json.loads((root / "var" / "rejected" / f"{name}.error.json").read_text(encoding="utf-8"))
        assert error["problems"][0]["field"] == "submitted_at" and "早于" in error["problems"][0]["zh"]
    assert desk.store.get(by_form["R-00000110"]).state == "received"
    assert desk.store.get(by_form["R-00000111"]).state == "acknowledged"      # the same time as opened is fine


# --- names too long for the file system (ENAMETOOLONG had stopped every run) ---------------------------------

LONG_PHOTO = "照片" * 50 + ".jpg"          # 100 characters (the schema allows 200), but 304 bytes


def _name_of(n_bytes: int, ext: str = ".json") -> str:
    """A Chinese file name of exactly N_BYTES bytes in UTF-8."""
    stem = "报修单" * ((n_bytes - len(ext)) // 9)
    return stem + "x" * (n_bytes - len(ext) - len(stem.encode())) + ext


def _drop_named(root: Path, name: str, body: dict) -> None:
    """Drop a form under NAME written in place (NAME.tmp may be too long to rename from), 5 s old."""
    path = root / "inbox" / name
    path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    os.utime(path, (time.time() - 5, time.time() - 5))


def _max_name_bytes(folder: Path) -> int:
    return max((len(os.fsencode(p.name)) for p in folder.rglob("*")), default=0)


def test_a_photo_name_too_long_for_the_file_system_rejects_its_form_and_the_inbox_goes_on(desk, root):
    """A photo name over 255 bytes (ENAMETOOLONG when looked for) used to stop the whole run, every run.
    Now the form is rejected with a bilingual 'photo name too long' naming the field, also when the form
    is rejected for another reason, and the rest of the inbox is processed."""
    drop(root, "longphoto.json", repair(60, photos=[LONG_PHOTO]))
    other = repair(61, photos=[LONG_PHOTO])
    del other["resident"]
    drop(root, "alsobad.json", other)
    drop(root, "good.json", repair(62, minutes=1))
    summary = desk.run()
    assert (summary.accepted, summary.rejected) == (1, 2)
    error = json.loads((root / "var" / "rejected" / "longphoto.error.json").read_text(encoding="utf-8"))
    problem = error["problems"][0]
    assert error["file"] == "longphoto.json" and problem["field"] == "photos[0]"
    assert "过长" in problem["zh"] and "304 字节" in problem["zh"] and "too long" in problem["en"]
    assert journal_ids(root) == ["R-00000062"] and files(root / "inbox") == []


def test_a_rejected_form_with_a_250_byte_name_gets_its_report_beside_it(desk, root):
    """NAME.error.json and its temp name are longer than NAME: for a 250-byte NAME they passed the limit
    (ENAMETOOLONG, the run stopped). Names moved out of the inbox are now cut short to leave room."""
    name = _name_of(250)
    _drop_named(root, name, {"form": "repair", "id": "longname-01"})
    drop(root, "good.json", repair(63))
    summary = desk.run()
    assert (summary.accepted, summary.rejected) == (1, 1)
    rejected = root / "var" / "rejected"
    reports = list(rejected.glob("*.error.json"))
    assert len(reports) == 1 and _max_name_bytes(rejected) <= 255
    error = json.loads(reports[0].read_text(encoding="utf-8"))
    assert error["file"] == name and error["moved_to"] == reports[0].name.replace(".error.json", ".json")
    assert (rejected / error["moved_to"]).is_file()


def test_a_255_byte_name_dropped_twice_is_archived_twice_under_names_that_fit(desk, root):
    """The second file of a 255-byte name was to be archived as NAME-1.json (257 bytes): the move failed
    after the journal write, and every later start failed too. Both are now archived under shortened names."""
    name = _name_of(255)
    _drop_named(root, name, repair(64))
    assert desk.run().accepted == 1
    _drop_named(root, name, repair(65, minutes=1))
    assert desk.run().accepted == 1
    archive = root / "var" / "archive" / "2026-11"
    assert len(list(archive.iterdir())) == 2 and _max_name_bytes(archive) <= 255
    assert journal_ids(root) == ["R-00000064", "R-00000065"] and files(root / "inbox") == []
    lines = (root / "var" / JOURNAL).read_text(encoding="utf-8").splitlines()
    assert {json.loads(line)["source"] for line in lines} == {name}


def test_names_cut_to_the_same_stem_are_numbered_without_starting_over_each_time(desk, root, monkeypatch):
    """Sixty long names that differ only past the archive's name limit become STEM.json, STEM-1.json, …;
    each search for a free name goes on from where the last one for that stem stopped. Walking -1, -2, …
    from the start each time was quadratic: 4,000 such forms took 15 s."""
    from processor import intake as intake_module

    calls = []
    fitted = intake_module._fitted
    monkeypatch.setattr(intake_module, "_fitted", lambda *a, **k: calls.append(a) or fitted(*a, **k))
    common = _name_of(240, ext="")
    for n in range(60):
        _drop_named(root, f"{common}{n:04d}.json", repair(n))
    assert desk.run().accepted == 60
    archive = root / "var" / "archive" / "2026-11"
    names = [p.name for p in archive.iterdir()]
    assert len(set(names)) == 60 and _max_name_bytes(archive) <= 255
    assert len(calls) < 4 * 60                 # from the start each time: 60 * 61 / 2 = 1,830
    rejected = root / "var" / "rejected"
    for n in range(60, 80):                    # the same for a rejected file and its report, pass after pass
        _drop_named(root, f"{common}{n:04d}.json", {"form": "repair", "id": f"bad-{n}"})
        calls.clear()
        assert desk.run().rejected == 1 and len(calls) < 8
    assert len(list(rejected.glob("*.error.json"))) == 20 and len(list(rejected.iterdir())) == 40


def test_recovery_is_not_wedged_by_a_journaled_destination_too_long_for_the_file_system(root):
    """An older version journaled NAME-1.json for a 255-byte NAME and then failed to move it; recover()
    retried that at every start and failed (ENAMETOOLONG), so nothing was processed. It now moves the file
    to a shortened free name and says so."""
    name = _name_of(255)
    desk = Desk(root)
    _drop_named(root, name, repair(66))
    item = desk.intake._read(desk.intake.pending()[0][0])
    too_long = "archive/2026-11/" + name.removesuffix(".json") + "-1.json"
    desk.store.stage(item.result, desk.intake.apply(item.result, desk.store, desk.policy, NOW), NOW,
                     file_sha256=item.raw_sha, dest=too_long, photos={})
    desk.store.commit()                  # journaled as the old version did, then the move failed
    desk.store.close(snapshot=False)
    again = Desk(root)
    assert again.intake.recover(again.report.replayed) == 1
    archive = root / "var" / "archive" / "2026-11"
    assert files(root / "inbox") == [] and len(list(archive.iterdir())) == 1 and _max_name_bytes(archive) <= 255
    drop(root, "next.json", repair(67, minutes=1))
    assert again.run().accepted == 1
    again.close()


def test_a_slowly_growing_half_file_is_said_to_be_waiting_once(desk, root, caplog):
    """"文件不完整 … (still being written?)" was meant once per wait, but came again after every change of a
    slowly growing file (11 times in the reviewer's slow writer): a file that changed between passes is only
    listed as waiting, and that dropped it from the files already mentioned."""
    caplog.set_level(logging.INFO, logger="processor.intake")
    body = json.dumps(repair(74), ensure_ascii=False).encode("utf-8")
    path = root / "inbox" / "slow.json"
    for end in (30, 60, 90, 120):
        path.write_bytes(body[:end])                             # just written: listed as waiting, not read
        assert desk.run().waiting == 1
        then = time.time() - 1.0
        os.utime(path, (then, then))
        assert desk.run().waiting == 1                           # changed since: listed as waiting again
        assert desk.run().waiting == 1                           # settled: read, still cut short
    said = [r for r in caplog.records if "文件不完整" in r.getMessage()]
    assert len(said) == 1


def test_a_pre_allocated_file_still_full_of_nul_bytes_waits_for_its_writer(desk, root):
    """Some writers set the size first and fill the file later (SMB copies, download tools): read while still
    NUL bytes, it was taken for UTF-16, rejected at once as broken JSON and moved while its writer went on
    writing into it. A file with a run of NULs is now still being written, like one cut short."""
    body = json.dumps(repair(75), ensure_ascii=False).encode("utf-8")
    path = root / "inbox" / "smbcopy.json"
    path.write_bytes(body[:100] + b"\0" * (len(body) - 100))
    then = time.time() - 1.0                  # older than settle_seconds, younger than write_grace_seconds
    os.utime(path, (then, then))
    assert desk.run().waiting == 1 and not (root / "var" / "rejected").exists()
    path.write_bytes(body)
    os.utime(path, (then, then))
    assert desk.run().accepted == 1


def test_a_pre_allocated_file_never_filled_is_rejected_after_the_grace_time_saying_so(root):
    desk = Desk(root, write_grace_seconds=0.5)
    drop(root, "never.json", b"\0" * 300, age=1.0)
    assert desk.run().rejected == 1
    error = json.loads((root / "var" / "rejected" / "never.error.json").read_text(encoding="utf-8"))
    assert "空字节" in error["problems"][0]["zh"] and "NUL" in error["problems"][0]["en"]
    desk.close()


def test_an_update_stamped_before_the_step_that_allows_it_is_rejected(desk, root):
    """A return visit at 10:00 for a repair resolved at 12:00 was accepted (its deadline 'met' two hours before
    the work was done), and a close before it; so was an arrive before the assign. Such an update is rejected,
    naming the step it comes before; a note, which moves nothing on, may still come in late."""
    drop(root, "open.json", repair(120))
    desk.run()
    number = next(desk.store.tickets())["number"]
    steps = [(5, "assign", {"assignee": "张师傅", "department": "engineering"}, True), (2, "arrive", {}, False),
             (1, "note", {"text": "住户来电催促"}, True), (10, "arrive", {}, True),
             (240, "resolve", {"resolution": "已修好"}, True),
             (120, "return_visit", {"satisfied": True, "score": 5}, False), (230, "close", {}, False),
             (250, "return_visit", {"satisfied": True, "score": 5}, True), (245, "close", {}, False),
             (260, "close", {}, True)]
    for n, (minutes, action, fields, ok) in enumerate(steps):
        drop(root, f"u{n}.json", {"form": "update", "id": f"U-{120 + n:08d}", "staff": "李前台", "ticket": number,
                                  "submitted_at": (NOW + timedelta(minutes=minutes)).isoformat(), "action": action,
                                  **fields})
        summary = desk.run()
        assert (summary.accepted, summary.rejected) == ((1, 0) if ok else (0, 1)), (minutes, action)
        if not ok:
            error = json.loads((root / "var" / "rejected" / f"u{n}.error.json").read_text(encoding="utf-8"))
            assert error["problems"][0]["field"] == "submitted_at" and "上一步" in error["problems"][0]["zh"]
    history = [(e["action"], e["at"][11:16]) for e in desk.store.document(number)["history"]]
    assert history == [("received", "10:00"), ("assign", "10:05"), ("note", "10:01"), ("arrive", "10:10"),
                       ("resolve", "14:00"), ("return_visit", "14:10"), ("close", "14:20")]


def test_a_file_stamped_in_the_future_is_read_not_waited_for_forever(desk, root):
    """`touch -d 2030-01-01` (or a share whose clock is years ahead): it looked younger than settle_seconds for
    ever, so `once` never ended and held the lock. A time within the settle window either way still waits."""
    drop(root, "future.json", repair(31), age=-4 * 365 * 86400)
    drop(root, "now.json", repair(32), age=-0.1)   # a tenth of a second ahead: a writer's clock, still settling
    summary = desk.run()
    assert summary.accepted == 1 and summary.waiting == 1
    broken = drop(root, "cut.json", b'{"form": "repair", "id": "R-', age=-4 * 365 * 86400)
    assert desk.run().rejected == 1 and not broken.exists()   # cut short, but not "still being written"
