"""Versions of a procedure: which one is in force, what each page says of the others, and what each tree may show."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from estate.config import load_config
from handbook.build import build
from handbook.search import read_index_script
from tests.conftest import TODAY
from tests.test_build_output import broken_links
from tests.test_build_validation import problems_for


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def add_version(root: Path, effective: str) -> None:
    """T-003 supersedes T-001 (the duty procedure) from EFFECTIVE."""
    text = (root / "procedures/duty.md").read_text(encoding="utf-8")
    text = (text.replace("id: T-001", "id: T-003").replace("supersedes: T-000", "supersedes: T-001")
            .replace('version: "2.0"', 'version: "3.0"').replace("effective: 2026-01-01", f"effective: {effective}")
            .replace("review_by: 2026-06-01", "review_by: 2028-12-31").replace("值班员须准时到岗。", "值班员提前十分钟到岗。"))
    (root / "procedures/duty-v3.md").write_text(text, encoding="utf-8")


def test_a_version_not_in_force_yet_leaves_the_current_one_in_force(mini: Path) -> None:
    add_version(mini, "2027-06-01")
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    staff = mini / "site/staff"
    home = (staff / "index.html").read_text(encoding="utf-8")
    assert "t-001.html" in home and "t-003.html" in home          # both listed; the new one with its badge
    current = (staff / "procedures/t-001.html").read_text(encoding="utf-8")
    assert "本版本已被取代" not in current
    assert "新版本将于 2027-06-01 起生效并取代本版本" in current and 'href="t-003.html"' in current
    upcoming = (staff / "procedures/t-003.html").read_text(encoding="utf-8")
    assert "将于 2027-06-01 起生效" in upcoming and "现行版本：" in upcoming and 'href="t-001.html"' in upcoming
    assert "值班员须准时到岗" in read_index_script((staff / "assets/search-index.js").read_bytes())["text"]
    assert not broken_links(mini / "site")

    build(load_config(mini), mini / "site", today=date(2027, 6, 1), workers=1)   # the day it takes effect
    home = (staff / "index.html").read_text(encoding="utf-8")
    assert "t-001.html" not in home and "t-003.html" in home
    assert "本版本已被取代" in (staff / "procedures/t-001.html").read_text(encoding="utf-8")
    assert "现行版本：" not in (staff / "procedures/t-003.html").read_text(encoding="utf-8")
    assert "值班员须准时到岗" not in read_index_script((staff / "assets/search-index.js").read_bytes())["text"]
    assert not broken_links(mini / "site")


def test_a_supersedes_cycle_fails_the_build(mini: Path) -> None:
    edit(mini / "procedures/duty-old.md", "records: [《值班记录》]\n", "records: [《值班记录》]\nsupersedes: T-001\n")
    problems = problems_for(mini)
    assert any(p.startswith("procedures/duty-old.md:13: supersedes 构成循环：T-000 → T-001 → T-000") for p in problems)
    assert any(p.startswith("procedures/duty.md:13: supersedes 构成循环：T-001 → T-000 → T-001") for p in problems)


def test_public_pages_name_only_versions_residents_can_open(mini: Path) -> None:
    """A residents' guide that supersedes a staff procedure must not name it; a link to a superseded
    residents' page (not in the public tree) is text there."""
    repair = mini / "procedures/guides/repair.md"
    edit(mini / "procedures/duty.md", "supersedes: T-000\n", "")
    guide = repair.read_text(encoding="utf-8")
    old_guide = guide.replace("id: T-002", "id: T-005").replace("effective: 2027-03-01", "effective: 2020-01-01")
    (mini / "procedures/guides/repair-old.md").write_text(old_guide, encoding="utf-8")   # residents', superseded
    new_guide = guide.replace("id: T-002", "id: T-006").replace("tags: [报修]\n", "tags: [报修]\nsupersedes: T-005\n")
    (mini / "procedures/guides/repair-new.md").write_text(new_guide, encoding="utf-8")
    edit(repair, "tags: [报修]\n", "tags: [报修]\nsupersedes: T-000\n")        # a residents' guide replaces staff's
    edit(repair, "告诉业主如何报修。", "告诉业主如何报修（[旧版](repair-old.md)）。")
    build(load_config(mini), mini / "site", today=date(2027, 3, 1), workers=1)
    public = (mini / "site/public/guides/t-002.html").read_text(encoding="utf-8")
    assert "T-000" not in public and "值班规程（旧版）" not in public
    assert "（旧版）" in public and "t-005.html" not in public
    assert 'href="t-005.html"' in (mini / "site/staff/procedures/t-002.html").read_text(encoding="utf-8")
    assert not (mini / "site/public/guides/t-005.html").exists()
    assert not broken_links(mini / "site")


def test_a_superseded_page_links_only_tags_and_records_that_have_pages(mini: Path) -> None:
    edit(mini / "procedures/duty-old.md", "tags: [值班]", "tags: [值班, 旧做法]")
    edit(mini / "procedures/duty-old.md", "records: [《值班记录》]", "records: [《值班记录》, 《旧登记本》]")
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    old = (mini / "site/staff/procedures/t-000.html").read_text(encoding="utf-8")
    assert "<span>旧做法</span>" in old and "<span>《旧登记本》</span>" in old
    assert not broken_links(mini / "site")


class _Counting(dict):
    looked = 0

    def get(self, key, default=None):  # noqa: ANN001, ANN201
        self.looked += 1
        return super().get(key, default)


def test_supersedes_cycles_walk_each_procedure_once() -> None:
    """Only the members of a cycle are reported (not a version that leads into it), each from itself; and a chain
    of 300 versions is walked once in all, not once from each of them (2,000 had taken 34 s)."""
    from types import SimpleNamespace

    from handbook.index import _supersedes_cycles

    def proc(pid: str, supersedes: str | None) -> SimpleNamespace:
        return SimpleNamespace(id=pid, supersedes=supersedes, source=SimpleNamespace(shown=f"{pid}.md"),
                               field_lines={"supersedes": 9})

    chain = [proc(f"C-{i}", f"C-{i - 1}" if i else None) for i in range(300)]
    loop = [proc("A", "C-299"), proc("B", "A"), proc("D", "B"), proc("E", "D")]
    loop[0].supersedes = "D"   # A → D → B → A, and E leads into it
    procedures = chain + loop
    by_id = _Counting({p.id: p for p in procedures})
    found = [str(p) for p in _supersedes_cycles(procedures, by_id)]
    assert found == [f"{x}.md:9: supersedes 构成循环：{path}，没有哪个版本是现行的 (supersedes cycle)"
                     for x, path in (("A", "A → D → B → A"), ("B", "B → A → D → B"), ("D", "D → B → A → D"))]
    assert by_id.looked <= len(procedures)
