"""The front-matter reader without YAML: whatever it reads, it reads exactly as YAML (handbook/parse.py) does;
whatever it is unsure of, it leaves to YAML."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from handbook.frontmatter import read_simple
from handbook.models import SourceFile
from handbook.parse import _Problems, _read_yaml

KEYS = ["id", "title", "version", "effective", "tags", "pinned", "on", "yes", "_x", "review_by", "k" * 1025, "y"]
VALUES = [
    "CS-SOP-003", "交楼工作程序", '"1.8"', "1.10", "1.8", "2026-01-15", "2026-13-45", "true", "True", "no", "off",
    "null", "~", "", "  ", "'单引号'", "'it''s'", '"转义 \\t"', '"a" # 注释', "值 # 注释", "C#", "a: b", "a:b",
    "http://example.com", "[交楼, 收楼]", "[]", "[ ]", "[a, , b]", "[a, b,]", "[1, 2]", "[yes, 验房]", "[《业主档案》]",
    "[a: b]", "['a', b]", "[a, [b]]", "- item", "-1", "+1", ".inf", "0x1F", "10:30", "<<", "=", "&anchor x", "*alias",
    "!!str 1", "|", ">", "%x", "@x", "`x`", "值:", "a  b", "全角　空格", "制表\t符", "[a,b]", "结尾空格  ", "{a: 1}",
    '"未闭合', "'未闭合", "\u2028", "\ufeff开头", "\x85", "é", "yes!", "2026-01-15 10:00:00",
    "0x_", "0b_", "+0b__", "1" * 4301, "09", "007", "2.0.1", "1e5", "1_000", "-.5", "\u3000全角空格", "结尾\u3000",
    "\xa0不换行空格", "\u2003", "0o17", ".NaN", "1:20:30", "2027 年度通知", "3栋停水", "1.5 小时", "-5 度",
    "2026-01-15T10:00:00Z", "12:30 开始", "0x1F 号", "+86 571",
]
SEPARATORS = [": ", ":", " : ", ":  "]
OTHER_LINES = ["", "# 注释", "  # 缩进的注释", "  - 续行", "  续行", "---x", "%YAML 1.1", "- a", "\r"]
LINES = st.one_of(
    st.tuples(st.sampled_from(KEYS), st.sampled_from(SEPARATORS), st.sampled_from(VALUES)).map(lambda t: "".join(t)),
    st.sampled_from(OTHER_LINES),
)


def _yaml(block: str) -> tuple | None:
    problems = _Problems(SourceFile(path="t.md", rel="t.md", kind="procedure", raw=b"", digest=""))
    found = _read_yaml(block, problems)
    return None if found is None or problems.items else found


def test_every_single_line_is_read_as_yaml_reads_it_or_left_to_yaml() -> None:
    """Each key, separator and value on its own (and after a comment or blank line): all 2,800-odd of them."""
    for key in KEYS:
        for sep in SEPARATORS:
            for value in VALUES:
                for block in (f"{key}{sep}{value}\n", f"# 注释\n\n{key}{sep}{value}", f"# 注释\r\n{key}{sep}{value}\r\n"):
                    simple = read_simple(block)
                    assert simple is None or simple == _yaml(block), block


@settings(max_examples=600, deadline=None)
@given(st.lists(LINES, min_size=1, max_size=8))
def test_what_the_simple_reader_reads_yaml_reads_the_same(lines: list[str]) -> None:
    for block in ("\n".join(lines) + "\n", "\r\n".join(lines) + "\r\n"):  # as saved on Linux and on Windows
        simple = read_simple(block)
        if simple is not None:
            assert simple == _yaml(block)


def test_the_bundled_procedures_need_no_yaml() -> None:
    """The forms authors write (and this estate's files use) are the simple ones: YAML is the exception."""
    from pathlib import Path

    from handbook.parse import _FRONT

    root = Path(__file__).resolve().parents[1]
    files = [*root.glob("procedures/*.md"), *root.glob("content/notices/*.md")]
    blocks = [m.group(1) for f in files if (m := _FRONT.match(f.read_text(encoding="utf-8")))]
    assert len(blocks) >= 15
    for block in blocks:
        assert read_simple(block) == _yaml(block)
        assert read_simple(block) is not None


def test_unsure_forms_are_left_to_yaml() -> None:
    for block in ("title: 甲 # 注释\n", "tags:\n  - 甲\n", "pinned: null\n", "id: a\nid: b\n", "t: '甲\n  乙'\n",
                  "t: \"a\\tb\"\n", "tags: [1.5]\n", "x: &a 1\n", "t:\t甲\n", "", "# 只有注释\n"):
        assert read_simple(block) is None, block


def test_values_read_as_parse_keeps_them() -> None:
    fields, lines = read_simple('id: CS-SOP-003\nversion: 1.10\neffective: 2026-01-15\ntitle: "交楼"\n'
                                "pinned: true\n\ntags: [交楼, 收楼]\nrecords: []\n")
    assert fields == {"id": "CS-SOP-003", "version": "1.10", "effective": "2026-01-15", "title": "交楼",
                      "pinned": True, "tags": ["交楼", "收楼"], "records": []}
    assert lines == {"id": 2, "version": 3, "effective": 4, "title": 5, "pinned": 6, "tags": 8, "records": 9}
