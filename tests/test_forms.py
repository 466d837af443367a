"""The form contract: every form type valid and invalid, and every kind of bad file and how it is handled."""

from __future__ import annotations

import codecs
import json
from dataclasses import replace
from pathlib import Path

import fastjsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from estate.config import ProcessorConfig
from estate.policy import Route, load_policy
from processor.forms import FORM_TYPES, _validators, digest, load_schemas, parse_form, read_form
from processor.models import Form, Rejection

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "data" / "forms"
CONFIG = ProcessorConfig()
POLICY = load_policy(ROOT / "content" / "policy.toml")


def fixture(kind: str) -> dict:
    return json.loads((FIXTURES / f"valid-{kind}.json").read_text(encoding="utf-8"))


def parse(data: dict | bytes, config: ProcessorConfig = CONFIG, policy=POLICY) -> Form | Rejection:
    raw = data if isinstance(data, bytes) else json.dumps(data, ensure_ascii=False).encode("utf-8")
    return parse_form(raw, "form.json", config, policy)


def problems(result: Form | Rejection) -> dict[str, str]:
    assert isinstance(result, Rejection), f"expected a rejection, got {result}"
    for p in result.problems:
        assert p.zh and p.en, p
    return {p.field: p.zh + " | " + p.en for p in result.problems}


@pytest.mark.parametrize("kind", FORM_TYPES)
def test_each_type_has_a_valid_fixture_that_parses(kind):
    form = parse(fixture(kind))
    assert isinstance(form, Form), form
    assert form.type == kind
    assert form.submitted_at.utcoffset() is not None
    assert form.data == fixture(kind)


@pytest.mark.parametrize("kind", FORM_TYPES)
def test_each_required_field_of_each_type_is_enforced(kind):
    schemas = load_schemas()
    required = set(schemas["common"]["required"]) | set(schemas[kind].get("required", []))
    required.discard("form")
    assert required, kind
    for name in sorted(required):
        data = fixture(kind)
        del data[name]
        assert name in problems(parse(data)), (kind, name)


@pytest.mark.parametrize("kind", [k for k in FORM_TYPES if "resident" in load_schemas()[k].get("required", [])])
def test_resident_fields_are_required_and_typed(kind):
    data = fixture(kind)
    del data["resident"]["phone"]
    data["resident"]["building"] = 3
    found = problems(parse(data))
    assert "resident.phone" in found
    assert "resident.building" in found and "文本" in found["resident.building"]


def test_wrong_typed_fields_name_the_field_and_both_types():
    data = fixture("repair")
    data["urgency"] = "high"
    data["photos"] = "a.jpg"
    found = problems(parse(data))
    assert "整数" in found["urgency"] and "string" in found["urgency"]
    assert "列表" in found["photos"]


@pytest.mark.parametrize("urgency", [0, 5, -1])
def test_urgency_outside_1_to_4_is_rejected(urgency):
    data = fixture("repair")
    data["urgency"] = urgency
    assert "urgency" in problems(parse(data))


def test_all_problems_are_reported_at_once():
    data = fixture("repair")
    data.update(id="x", category="gas", photos=["../a.jpg"])
    del data["description"]
    assert {"id", "category", "photos[0]", "description"} <= set(problems(parse(data)))


def test_unknown_extra_fields_are_kept():
    data = fixture("repair")
    data["device_model"] = "XJ-200"
    data["app_build"] = {"version": "2.3"}
    form = parse(data)
    assert isinstance(form, Form)
    assert form.data["device_model"] == "XJ-200" and form.data["app_build"] == {"version": "2.3"}


@pytest.mark.parametrize("version,ok", [(1, True), (2, False), ("1", False)])
def test_form_version_defaults_to_1_and_unknown_versions_are_rejected(version, ok):
    data = fixture("inquiry")
    assert isinstance(parse(data), Form)  # absent: version 1
    data["form_version"] = version
    result = parse(data)
    assert isinstance(result, Form) is ok
    if not ok:
        assert "form_version" in problems(result)


def test_unknown_form_type_is_rejected_with_the_known_types():
    data = fixture("repair")
    data["form"] = "parking"
    found = problems(parse(data))
    assert list(found) == ["form"] and "parking" in found["form"] and "repair" in found["form"]
    del data["form"]
    assert "form" in problems(parse(data))


def test_unknown_category_is_rejected_and_lists_the_policy_categories():
    data = fixture("complaint")
    data["category"] = "water"   # a repair category, not a complaint one
    found = problems(parse(data))
    for category in POLICY.categories("complaint"):
        assert category in found["category"]


def test_categories_come_from_the_policy_routes():
    data = fixture("repair")
    data["category"] = "gas"
    assert "category" in problems(parse(data))
    policy = replace(POLICY, routes=(*POLICY.routes, Route("repair", "gas", "燃气", "engineering")))
    assert isinstance(parse(data, policy=policy), Form)


@pytest.mark.parametrize("name", ["../a.jpg", "photos/a.jpg", "..\\a.jpg", "C:\\照片\\1.jpg", "a..jpg", "/etc/passwd"])
def test_photo_names_with_a_path_or_dotdot_are_rejected(name):
    data = fixture("repair")
    data["photos"] = ["ok.jpg", name]
    found = problems(parse(data))
    assert list(found) == ["photos[1]"] and "路径" in found["photos[1]"]


@pytest.mark.parametrize("form_id,ok", [("abcdefgh", True), ("a" * 64, True), ("app-2026.11_03", True),
                                        ("abc", False), ("a" * 65, False), ("has space1", False),
                                        ("中文编号中文编号", False), ("a/b/c/d/e", False)])
def test_id_must_match_the_pattern(form_id, ok):
    data = fixture("praise")
    data["id"] = form_id
    result = parse(data)
    assert isinstance(result, Form) is ok
    if not ok:
        assert "id" in problems(result)


@pytest.mark.parametrize("value,ok", [("2026-11-04T10:00:00+08:00", True), ("2026-11-04T02:00:00Z", True),
                                      ("2026-11-04T10:00:00", False), ("2026-11-04", False),
                                      ("2026-02-30T10:00:00+08:00", False), ("yesterday", False)])
def test_submitted_at_needs_an_offset_and_a_real_date(value, ok):
    data = fixture("suggestion")
    data["submitted_at"] = value
    result = parse(data)
    assert isinstance(result, Form) is ok
    if not ok:
        assert "submitted_at" in problems(result)


def test_update_must_name_its_ticket_by_number_or_opening_form():
    data = fixture("update")
    del data["ticket"]
    assert "ticket" in problems(parse(data))
    data["ticket_form"] = "app-20261104-0001"
    assert isinstance(parse(data), Form)
    data["ticket"] = "20261104-1"
    assert "ticket" in problems(parse(data))


@pytest.mark.parametrize("action,needs", [("assign", {"assignee", "department"}), ("pause", {"reason"}),
                                          ("resolve", {"resolution"}), ("return_visit", {"satisfied"}),
                                          ("reopen", {"reason"}), ("escalate", {"reason"}), ("note", {"text"}),
                                          ("merge", {"duplicate"})])
def test_update_actions_need_their_own_fields(action, needs):
    data = {k: v for k, v in fixture("update").items() if k not in ("assignee", "department")}
    data["action"] = action
    assert needs <= set(problems(parse(data)))


@pytest.mark.parametrize("action", ["acknowledge", "arrive", "resume", "close"])
def test_update_actions_without_fields_pass(action):
    data = {k: v for k, v in fixture("update").items() if k not in ("assignee", "department")}
    data["action"] = action
    assert isinstance(parse(data), Form)


def test_return_visit_score_is_1_to_5_and_unknown_actions_are_rejected():
    data = dict(fixture("update"), action="return_visit", satisfied=True, score=6)
    assert "score" in problems(parse(data))
    data.update(score=5)
    assert isinstance(parse(data), Form)
    data.update(action="teleport")
    assert "action" in problems(parse(data))


def test_record_forms_are_checked_too():
    survey = dict(fixture("survey"), ratings={"保洁": 7})
    assert "ratings.保洁" in problems(parse(survey))
    log = dict(fixture("duty_log"), entries=[])
    assert "entries" in problems(parse(log))
    log = dict(fixture("duty_log"), shift_date="2026-13-01")
    assert "shift_date" in problems(parse(log))


# --- bad files -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"   \n\t"])
def test_empty_file_is_rejected(raw):
    assert "文件为空" in problems(parse(raw))[""]


def test_oversized_file_is_rejected_before_parsing(tmp_path):
    small = ProcessorConfig(max_form_bytes=100)
    raw = json.dumps(fixture("repair"), ensure_ascii=False).encode()
    assert len(raw) > 100
    assert "过大" in problems(parse(raw, config=small))[""]
    path = tmp_path / "big.json"
    path.write_bytes(raw)
    result = read_form(path, small, POLICY)
    assert "过大" in problems(result)[""] and result.source == "big.json"


def test_nesting_deeper_than_the_limit_is_rejected():
    data = fixture("repair")
    deep: dict = {}
    node = deep
    for _ in range(25):
        node["x"] = {}
        node = node["x"]
    data["extra"] = deep
    assert "嵌套" in problems(parse(data))[""]
    assert "嵌套" in problems(parse(b'{"a":' * 100_000 + b"1" + b"}" * 100_000))[""]
    assert isinstance(parse(data, config=ProcessorConfig(max_depth=40)), Form)


def test_invalid_json_says_line_and_column():
    raw = b'{\n  "form": "repair",\n  "id": "abcdefgh"\n  "x": 1\n}'
    found = problems(parse(raw))[""]
    assert "第 4 行第 3 列" in found and "line 4, column 3" in found


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"repair"', b"42"])
def test_json_that_is_not_an_object_is_rejected(raw):
    assert "JSON 对象" in problems(parse(raw))[""]


def test_nan_is_rejected():
    assert "NaN" in problems(parse(b'{"form": "repair", "urgency": NaN}'))[""]


@pytest.mark.parametrize(("number", "said"), [(b"1e999", "out of range"), (b"-1e999", "out of range"),
                                              (b"9" * 5000, "too many digits")])
def test_a_number_beyond_any_field_is_rejected_in_the_forms_terms(number, said):
    """1e999 was read as infinity and journaled as `Infinity` (not JSON); 5,000 digits got Python's own message
    about its conversion limit."""
    found = problems(parse(b'{"form": "quiz_result", "score": ' + number + b"}"))[""]
    assert said in found and "JSON" in found and "4300" not in found


def test_utf8_with_bom_is_accepted_without_a_note():
    raw = codecs.BOM_UTF8 + json.dumps(fixture("repair"), ensure_ascii=False).encode()
    form = parse(raw)
    assert isinstance(form, Form) and form.notes == ()
    assert form.digest == digest(fixture("repair"))


@pytest.mark.parametrize("encoding,bom,note", [("gbk", b"", "GBK"), ("utf-16-le", codecs.BOM_UTF16_LE, "UTF-16"),
                                               ("utf-16-be", codecs.BOM_UTF16_BE, "UTF-16"),
                                               ("utf-16-le", b"", "UTF-16-LE"), ("utf-16-be", b"", "UTF-16-BE")])
def test_gbk_and_utf16_are_converted_and_the_conversion_noted(encoding, bom, note):
    raw = bom + json.dumps(fixture("repair"), ensure_ascii=False).encode(encoding)
    form = parse(raw)
    assert isinstance(form, Form), form
    assert form.data["resident"]["name"] == "测试住户"
    assert any(note in n for n in form.notes)


def test_undecodable_bytes_are_rejected_with_the_offset():
    raw = b'{"form": "repair", "description": "\xff\xfe\xfa"}'
    found = problems(parse(raw))[""]
    assert "UTF-8" in found and "35" in found


def test_rejection_carries_the_form_id_when_it_could_be_read():
    data = fixture("repair")
    del data["description"]
    result = parse(data)
    assert isinstance(result, Rejection) and result.form_id == data["id"]
    assert result.to_dict()["problems"][0]["field"] == "description"


def test_digest_ignores_formatting_but_not_content():
    data = fixture("complaint")
    pretty = parse(json.dumps(data, ensure_ascii=False, indent=4).encode())
    compact = parse(json.dumps(dict(reversed(list(data.items()))), ensure_ascii=True).encode())
    assert pretty.digest == compact.digest
    changed = parse(json.dumps(dict(data, description="另一个描述"), ensure_ascii=False).encode())
    assert changed.digest != pretty.digest


def test_read_form_reads_a_file_and_reports_a_missing_one(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(fixture("handover"), ensure_ascii=False), encoding="utf-8")
    form = read_form(path, CONFIG, POLICY)
    assert isinstance(form, Form) and form.source == "ok.json"
    assert "无法读取" in problems(read_form(tmp_path / "gone.json", CONFIG, POLICY))[""]


def test_schema_files_are_valid_draft_2020_12_and_cover_every_type():
    schemas = load_schemas()
    assert set(schemas) == {"common", *FORM_TYPES}
    for name, schema in schemas.items():
        Draft202012Validator.check_schema(schema)
        assert schema["$id"].endswith(f"/{name}.schema.json")
    assert set(schemas["common"]["properties"]["form"]["enum"]) == set(FORM_TYPES)


def test_every_shipped_sample_form_is_accepted_except_the_bad_ones():
    samples = ROOT / "content" / "sample-forms"
    good = [p for p in samples.glob("*.json")]
    assert len(good) >= 60
    kinds = set()
    for path in good:
        form = read_form(path, CONFIG, POLICY)
        assert isinstance(form, Form), (path.name, form)
        kinds.add(form.type)
    assert kinds == set(FORM_TYPES)
    parse_rejected = [p.name for p in (samples / "bad").glob("*.json")
                      if isinstance(read_form(p, CONFIG, POLICY), Rejection)]
    assert len(parse_rejected) >= 6


def test_a_trailing_newline_does_not_sneak_past_the_patterns():
    data = fixture("repair")
    data["id"] = "abcdefgh\n"
    assert "id" in problems(parse(data))
    data = fixture("repair")
    data["photos"] = ["a.jpg\n"]
    assert "photos[0]" in problems(parse(data))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 8) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12) | st.sampled_from(["WO-20261104-0001", "abcdefgh", "2026-11-04T10:00:00+08:00",
                                              "../x.jpg", "water", "assign", "21:15"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


def _field_paths(schema: dict, common: dict) -> list[tuple[str, ...]]:
    paths = []
    for name in {**common["properties"], **schema.get("properties", {})}:
        paths.append((name,))
    paths += [("resident", f) for f in common["$defs"]["resident"]["properties"]]
    return paths


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FORM_TYPES), st.data())
def test_the_fast_validator_agrees_with_jsonschema(kind, draw):
    """The fast accept path must accept exactly what jsonschema, the reference implementation, accepts."""
    schemas = load_schemas()
    data = fixture(kind)
    if kind in ("repair", "complaint"):
        data.setdefault("resident", {})
    for path in draw.draw(st.lists(st.sampled_from(_field_paths(schemas[kind], schemas["common"])), max_size=3)):
        target = data
        for key in path[:-1]:
            target = target.setdefault(key, {}) if isinstance(target, dict) else {}
        if isinstance(target, dict):
            if draw.draw(st.booleans()):
                target.pop(path[-1], None)
            else:
                target[path[-1]] = draw.draw(JSON_VALUES)
    compiled = _validators(POLICY.routes)[kind]
    try:
        compiled.fast(data)
        fast_ok = True
    except fastjsonschema.JsonSchemaException:
        fast_ok = False
    branch = compiled.by_action.get(data.get("action")) if isinstance(data.get("action"), str) else None
    reference_ok = compiled.base.is_valid(data) and (branch is None or branch.is_valid(data))
    assert fast_ok == reference_ok, data


def test_oversized_file_reports_its_real_size(tmp_path):
    from estate.config import ProcessorConfig

    config = ProcessorConfig(max_form_bytes=100)
    result = parse_form(b"{" + b" " * 150, "big.json", config, POLICY, size=123456)
    assert isinstance(result, Rejection)
    assert "123456 字节" in result.problems[0].zh and "limit 100" in result.problems[0].en


@pytest.mark.parametrize("where,raw", [
    ("resident.name", rb'"resident": {"name": "\ud800", "phone": "1", "building": "1", "unit": "1", "room": "1"}'),
    ("photos[0]", rb'"photos": ["a\udc80.jpg"]'),
    ("x\\ud800y", rb'"x\ud800y": 1'),
])
def test_a_lone_surrogate_escape_is_rejected_naming_its_field_not_a_crash(where, raw):
    """"\\ud800" parses to a string UTF-8 cannot hold: the form is rejected (digest, journal and report would fail)."""
    body = json.dumps(fixture("repair"), ensure_ascii=False).encode("utf-8")
    result = parse(body[:-1] + b", " + raw + b"}")
    found = problems(result)
    assert where in found and "代理项" in found[where] and "lone surrogate" in found[where]
    json.dumps(result.to_dict(), ensure_ascii=False).encode("utf-8")      # the error report can be written


def test_a_surrogate_pair_escape_is_a_real_character_and_accepted():
    body = json.dumps({**fixture("repair"), "description": "@"}).encode()
    form = parse(body.replace(b'"@"', b'"\\ud83d\\ude00 \\u6f0f\\u6c34"'))
    assert isinstance(form, Form) and form.data["description"] == "😀 漏水"


@pytest.mark.parametrize("name,ok", [("a.json", False), ("A.Json", False), ("a.json.tmp", False), ("x.error.json", False),
                                     ("a.tmp", False), ("json.jpg", True), ("a.jsonl.jpg", True)])
def test_a_photo_may_not_be_a_form_file(name, ok):
    """A photo named *.json or *.tmp would carry a form (or one still being written) away unread: rejected."""
    data = fixture("repair")
    data["photos"] = [name]
    result = parse(data)
    assert isinstance(result, Form) if ok else "表单文件" in problems(result)["photos[0]"]


@pytest.mark.parametrize("raw,incomplete", [
    (b"", True), (b'{"form": "repair", "id": "abc', True), (b'{"form": "repair"', True), (b'{"a": [1, 2,', True),
    ('{"description": "漏水'.encode()[:-1], True), (b'{"form": "repair" "id": 1}', False), (b"[1, 2]", False),
    (b'{"form": "repair"} x', False),
])
def test_a_file_that_ends_before_its_json_does_is_marked_incomplete(raw, incomplete):
    """The intake leaves such a file for a later pass while it is recent: its writer may not have finished."""
    result = parse(raw)
    assert isinstance(result, Rejection) and result.incomplete is incomplete


@pytest.mark.parametrize("kind", ["repair", "complaint", "inquiry", "suggestion", "praise", "service"])
@pytest.mark.parametrize("value,says", [("", "不能为空"), ({"x": [1]}, "类型错误"), ("长" * 5001, "过长")])
def test_the_description_field_is_validated_not_dropped_as_an_annotation(kind, value, says):
    """Compiling the schemas dropped every key named "description", the property too: "" and {} passed."""
    data = {**fixture(kind), "description": value}
    assert says in problems(parse(data))["description"]


def test_every_published_property_survives_compilation():
    """Annotations (description, title) are dropped only where they are annotations, never a property's name."""
    schemas = load_schemas()
    compiled = _validators(POLICY.routes)
    for kind in FORM_TYPES:
        published = set(schemas[kind].get("properties", {}))
        assert published <= set(compiled[kind].base.schema["properties"]), kind


@pytest.mark.parametrize("name,ok", [("照" * 83 + ".jpg", True), ("照" * 84 + ".jpg", False),
                                     ("a" * 200, True), ("😀" * 64, False)])
def test_photo_names_are_limited_in_bytes_as_the_file_system_counts_them(name, ok):
    """The schema's 200 characters let 86 Chinese ones through: 258 bytes, more than a file name may have
    (255), and looking for that photo failed with ENAMETOOLONG. Such a form is rejected naming the photo."""
    data = fixture("repair")
    data["photos"] = [name]
    result = parse(data)
    if ok:
        assert isinstance(result, Form)
    else:
        found = problems(result)["photos[0]"]
        assert "过长" in found and "255" in found
