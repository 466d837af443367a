"""Local files a page uses (images, videos, forms as PDF) travel with the site; a missing one is a problem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from estate.config import load_config
from handbook.build import build
from tests.conftest import TODAY
from tests.test_build_output import broken_links
from tests.test_build_validation import problems_for
from tests.test_build_versions import edit

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def add_files(root: Path) -> None:
    (root / "procedures/images").mkdir()
    (root / "procedures/images/钥匙柜 1.png").write_bytes(PNG)
    (root / "procedures/guides/forms").mkdir()
    (root / "procedures/guides/forms/报修单.pdf").write_bytes(b"%PDF-1.4 form")
    edit(root / "procedures/duty.md", "值班员须准时到岗。",
         "值班员须准时到岗。\n\n![钥匙柜](images/钥匙柜%201.png)\n\n<img src='images/钥匙柜 1.png' alt='柜'>\n\n"
         "```html\n<img src=\"images/nothing.png\">\n```\n")
    edit(root / "procedures/guides/repair.md", "告诉业主如何报修。", "告诉业主如何报修，可下载[报修单](forms/报修单.pdf#page=1)。")
    (root / "content/notices/停水范围.png").write_bytes(PNG)
    notice = root / "content/notices/water.md"
    notice.write_text(notice.read_text(encoding="utf-8") + "\n![范围](停水范围.png)\n", encoding="utf-8")


def test_local_files_are_copied_into_each_tree_that_shows_them(mini: Path) -> None:
    add_files(mini)
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    site = mini / "site"
    assert (site / "staff/media/procedures/images/钥匙柜 1.png").read_bytes() == PNG
    assert (site / "public/media/procedures/guides/forms/报修单.pdf").read_bytes() == b"%PDF-1.4 form"
    assert not (site / "public/media/procedures/images").exists()       # only a staff page uses it
    duty = (site / "staff/procedures/t-001.html").read_text(encoding="utf-8")
    assert 'src="../media/procedures/images/钥匙柜%201.png"' in duty            # Markdown's image
    assert "src='../media/procedures/images/钥匙柜%201.png'" in duty            # raw HTML, its quotes kept
    assert "&lt;img src=&quot;images/nothing.png&quot;&gt;" in duty             # code shows it: not a file
    guide = (site / "public/guides/t-002.html").read_text(encoding="utf-8")
    assert 'href="../media/procedures/guides/forms/报修单.pdf#page=1"' in guide
    assert (site / "public/media/notices/停水范围.png").read_bytes() == PNG   # beside the notice, not procedures/
    assert not broken_links(site)


def test_a_file_no_page_uses_any_more_leaves_the_site(mini: Path) -> None:
    add_files(mini)
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    edit(mini / "procedures/guides/repair.md", "可下载[报修单](forms/报修单.pdf#page=1)", "")
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert not (mini / "site/public/media/procedures/guides/forms/报修单.pdf").exists()
    assert (mini / "site/staff/media/procedures/images/钥匙柜 1.png").is_file()


def test_a_changed_file_is_copied_again(mini: Path) -> None:
    add_files(mini)
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    (mini / "procedures/images/钥匙柜 1.png").write_bytes(PNG + b"new")
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert (mini / "site/staff/media/procedures/images/钥匙柜 1.png").read_bytes() == PNG + b"new"


@pytest.mark.parametrize(("ref", "expected"), [
    ("![图](images/missing.png)", "引用的文件不存在：images/missing.png (missing file)"),
    ("[表](../content/estate.toml)", "引用的文件 ../content/estate.toml 不在规程或公告文件夹内"),
    ('<video src="clips/none.mp4" controls></video>', "引用的文件不存在：clips/none.mp4"),
])
def test_a_missing_or_outside_file_is_a_problem_on_its_line(mini: Path, ref: str, expected: str) -> None:
    duty = mini / "procedures/duty.md"
    edit(duty, "## 一、目的\n", f"## 一、目的\n{ref}\n\n")
    line = duty.read_text(encoding="utf-8").split("\n").index(ref) + 1
    assert f"procedures/duty.md:{line}: {expected}" in "\n".join(problems_for(mini))


def test_a_copy_is_left_alone_while_its_source_is_unchanged(mini: Path) -> None:
    """Size and mtime say a copy is current, as rsync judges: the files are not read again on every build."""
    add_files(mini)
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    copy = mini / "site/staff/media/procedures/images/钥匙柜 1.png"
    first = copy.stat()
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert copy.stat().st_ino == first.st_ino                     # not written again
    source = mini / "procedures/images/钥匙柜 1.png"
    source.write_bytes(PNG[:-1] + b"\1")                           # same size, new content and mtime
    os.utime(source, ns=(first.st_atime_ns, first.st_mtime_ns + 1_000_000_000))
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    assert copy.read_bytes() == PNG[:-1] + b"\1"


@pytest.mark.parametrize("target", ["../duty.md/", "../duty%2Emd", "..\\duty.md", "../DUTY.MD"])
def test_a_link_that_names_a_procedure_source_in_any_spelling_is_a_page_link_never_a_copied_file(
        mini: Path, target: str) -> None:
    """A public guide's odd link to the staff-only duty procedure: once, `duty.md/` went past as a "file" and
    the procedure's Markdown was copied into public/media/, where residents could read it."""
    edit(mini / "procedures/duty.md", "值班员须准时到岗。", "值班员须准时到岗。保险柜密码 8848。")
    if target.endswith(".MD"):
        (mini / "procedures/duty.md").rename(mini / "procedures/DUTY.MD")   # Windows editors save it so
        edit(mini / "procedures/guides/repair.md", "(../duty.md#交接班)", "(../DUTY.MD#交接班)")
    edit(mini / "procedures/guides/repair.md", "告诉业主如何报修。", f"告诉业主如何报修，见[值班]({target})。")
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    site = mini / "site"
    assert not [p for p in site.rglob("*") if p.suffix.lower() == ".md"]
    assert not [p for p in (site / "public").rglob("*") if p.is_file() and b"8848" in p.read_bytes()]
    staff = (site / "staff/procedures/t-002.html").read_text(encoding="utf-8")
    assert '见<a href="t-001.html">值班</a>。' in staff          # the staff tree links the page itself
    public = (site / "public/guides/t-002.html").read_text(encoding="utf-8")
    assert "见值班。" in public                                   # the public tree shows the words only
    assert broken_links(site) == []


def test_a_raw_html_link_to_an_encoded_procedure_file_is_a_problem(mini: Path) -> None:
    edit(mini / "procedures/guides/repair.md", "告诉业主如何报修。", '告诉业主如何报修，<a href="../duty%2Emd">值班</a>。')
    assert any("指向 Markdown 文件" in p for p in problems_for(mini))


def test_every_candidate_of_a_srcset_is_copied_and_pointed_at_and_a_missing_one_is_a_problem(mini: Path) -> None:
    """srcset is allowed on <img> and <source>: left as written it pointed beside the page, where nothing is,
    and a "1x" candidate overrides src, so the image was broken on every screen."""
    (mini / "procedures/guides/images").mkdir()
    for name in ("钥匙柜.png", "钥匙柜@2x.png"):
        (mini / "procedures/guides/images" / name).write_bytes(PNG)
    edit(mini / "procedures/guides/repair.md", "告诉业主如何报修。", '告诉业主如何报修。\n\n<picture><source srcset="images/钥匙柜@2x.png 2x" '
         'media="(min-width: 800px)"><img src="images/钥匙柜.png" srcset="images/钥匙柜.png 1x,images/钥匙柜@2x.png 2x" alt="柜"></picture>\n')
    build(load_config(mini), mini / "site", today=TODAY, workers=1)
    page = (mini / "site/public/guides/t-002.html").read_text(encoding="utf-8")
    assert '<source srcset="../media/procedures/guides/images/钥匙柜@2x.png 2x"' in page
    assert ('srcset="../media/procedures/guides/images/钥匙柜.png 1x, ../media/procedures/guides/images/钥匙柜@2x.png 2x"'
            in page)
    assert (mini / "site/public/media/procedures/guides/images/钥匙柜@2x.png").read_bytes() == PNG
    assert broken_links(mini / "site") == []
    edit(mini / "procedures/guides/repair.md", "images/钥匙柜@2x.png 2x\"", "images/没有.png 2x\"")
    assert any(p.endswith("引用的文件不存在：images/没有.png (missing file)") for p in problems_for(mini))
