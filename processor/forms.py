"""Read and validate a dropped file against the form contract: bytes in, Form or Rejection out.

The contract is the JSON Schema files in processor/schemas/ (draft 2020-12), compiled once; the
categories come from the policy's routing table, so the contract and the routing never disagree.
Every problem is reported, field by field, in Chinese and English.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from estate.config import ProcessorConfig
from estate.contract import FORM_TYPES, TICKET_KINDS, load_schemas
from estate.policy import Policy
from processor.models import Form, Problem, Rejection

log = logging.getLogger(__name__)

_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
# Endings of the files the intake reads as forms (NAME.json, its NAME.error.json) or soon will (NAME.json.tmp,
# renamed into place when written): a form naming one as a photo would carry another form away unread.
FORM_FILE_ENDINGS = (".json", ".tmp")
# The longest file name the usual file systems take, in bytes (ext4, XFS, Btrfs; NTFS counts 255 UTF-16 units). A
# photo named longer cannot lie in the inbox, and merely asking for it fails with ENAMETOOLONG, which had stopped
# the processor. 86 Chinese characters are already more than this: the schema's 200 characters are not enough.
NAME_MAX_BYTES = 255
# Three NUL bytes in a row: no form holds them, in UTF-8 or UTF-16 (any three span a whole UTF-16 unit, and U+0000
# is not JSON text). A writer that sets the file's size first and fills it later (Windows/SMB copies, download
# tools) leaves them: such a file is still being written, not broken JSON.
NUL_RUN = b"\x00\x00\x00"

_TYPE_ZH = {"string": "文本", "integer": "整数", "number": "数字", "boolean": "布尔值 (true/false)",
            "object": "对象 {...}", "array": "列表 [...]", "null": "空值 null"}
_JSON_MSG_ZH = {  # json's error messages, said in Chinese
    "Expecting ',' delimiter": "缺少逗号",
    "Expecting ':' delimiter": "缺少冒号",
    "Expecting value": "缺少值或有多余的逗号",
    "Expecting property name enclosed in double quotes": "属性名须用双引号括起",
    "Unterminated string starting at": "字符串没有结束的引号",
    "Invalid control character at": "字符串中有非法控制字符",
    "Extra data": "JSON 结束后还有多余内容",
    "Invalid \\escape": "非法的转义符",
}


@dataclass(frozen=True)
class _Compiled:
    """One form type's validators: a fast yes/no check, and jsonschema to explain a no field by field."""

    fast: Callable[[Any], Any]          # fastjsonschema: generated code, ~5x faster on the accept path
    base: Draft202012Validator          # jsonschema, the reference implementation: every error, with its path
    by_action: dict[str, Draft202012Validator]  # the `if action == X then ...` branches, split out by action


@lru_cache(maxsize=4)
def _validators(routes: tuple[Any, ...]) -> dict[str, _Compiled]:
    """Compile one validator per form type, with each ticket kind's categories taken from ROUTES."""
    schemas = load_schemas()
    compiled = {}
    for name in FORM_TYPES:
        # Inlining the $refs makes validation about 3x faster than resolving them on every form.
        schema = _inline(schemas[name], schemas["common"])
        if name in TICKET_KINDS:
            schema["properties"]["category"]["enum"] = [r.category for r in routes if r.kind == name]
        fast = fastjsonschema.compile(json.loads(json.dumps(schema)), use_default=False)
        branches = _split_action_branches(schema)
        compiled[name] = _Compiled(fast, Draft202012Validator(schema),
                                   {a: Draft202012Validator(s) for a, s in branches.items()})
    return compiled


_BY_POLICY: dict[int, tuple[Policy, dict[str, _Compiled]]] = {}


def _compiled_for(policy: Policy) -> dict[str, _Compiled]:
    """The validators of POLICY, found by identity: hashing 28 routes on every form cost a sixth of the time."""
    hit = _BY_POLICY.get(id(policy))
    if hit is None or hit[0] is not policy:
        if len(_BY_POLICY) > 16:     # a long-running process sees one or two policies; tests see more
            _BY_POLICY.clear()
        hit = _BY_POLICY[id(policy)] = (policy, _validators(policy.routes))
    return hit[1]


def _split_action_branches(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Take `{"if": action == X, "then": S}` out of SCHEMA's allOf, returning {X: S}.

    Same meaning as the published schema, but a form is checked against its own action's branch
    only, instead of evaluating a dozen `if`s (which doubled the time of an update form).
    """
    branches: dict[str, dict[str, Any]] = {}
    kept = []
    for part in schema.get("allOf", []):
        action = part.get("if", {}).get("properties", {}).get("action", {}).get("const")
        if action and set(part) <= {"if", "then"}:
            branches[action] = part["then"]
        else:
            kept.append(part)
    if branches:
        schema["allOf"] = kept
    return branches


_ANNOTATIONS = ("description", "title", "$id", "$schema")   # dropped from the compiled schemas: faster validation
# Keywords whose value maps names to schemas: there "description" is a property (the form's field), not a note.
_NAME_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")


def _inline(node: Any, common: dict[str, Any], *, names: bool = False) -> Any:
    """Copy NODE with references to common.schema.json replaced by what they point at.

    NAMES says NODE maps names to schemas (the value of "properties"): its keys are kept whatever they are.
    """
    if isinstance(node, list):
        return [_inline(v, common) for v in node]
    if not isinstance(node, dict):
        return node
    if names:
        return {k: _inline(v, common) for k, v in node.items()}
    ref = node.get("$ref")
    if ref == "common.schema.json":
        return _inline({k: v for k, v in common.items() if k != "$defs"}, common)
    if ref and ref.startswith("common.schema.json#/$defs/"):
        return _inline(common["$defs"][ref.rsplit("/", 1)[1]], common)
    if ref:
        raise ValueError(f"unsupported $ref {ref!r} in processor/schemas")
    return {k: _inline(v, common, names=k in _NAME_MAPS) for k, v in node.items() if k not in _ANNOTATIONS}


def read_form(path: Path, config: ProcessorConfig, policy: Policy) -> Form | Rejection:
    """Read the file at PATH (without reading an oversized one whole) and parse it."""
    try:
        size = path.stat().st_size
        if size > config.max_form_bytes:
            return _reject(path.name, _too_big(size, config.max_form_bytes))
        raw = path.read_bytes()
    except OSError as exc:
        return _reject(path.name, Problem("", f"无法读取文件：{exc.strerror}", f"cannot read the file: {exc}"))
    return parse_form(raw, path.name, config, policy)


def parse_form(raw: bytes, source: str, config: ProcessorConfig, policy: Policy,
               size: int | None = None) -> Form | Rejection:
    """Turn RAW bytes of a dropped file named SOURCE into a Form, or a Rejection that says why.

    SIZE is the file's real size when the caller read only the first max_form_bytes + 1 bytes.
    """
    if not raw.strip():
        return _reject(source, Problem("", "文件为空", "the file is empty"), incomplete=True)
    if len(raw) > config.max_form_bytes:
        return _reject(source, _too_big(size or len(raw), config.max_form_bytes))
    if NUL_RUN in raw:
        at = raw.index(NUL_RUN)
        return _reject(source, Problem("", f"文件从第 {at} 字节起是连续的空字节（NUL）：可能是尚未写完的预分配文件",
                                       f"a run of NUL bytes from byte {at}: a pre-allocated file not yet filled?"),
                       incomplete=True)
    text, notes, problem = _decode(raw)
    if problem:
        return _reject(source, problem, incomplete=_cut_mid_character(raw))
    data, problem = _parse_json(text, config.max_depth)
    if problem:
        return _reject(source, problem, incomplete=_ends_early(text))
    # "\ud800" parses, but no UTF-8 file (journal, store, report) can hold it; only an escape makes one
    problem = _lone_surrogate(data) if _SURROGATE_ESCAPE.search(text) else None
    if problem:
        return _reject(source, problem)
    form_id = data.get("id") if isinstance(data.get("id"), str) else None
    problems = _check(data, policy)
    if problems:
        return Rejection(source, tuple(problems), form_id)
    return Form(type=data["form"], id=data["id"], submitted_at=datetime.fromisoformat(data["submitted_at"]),
                data=data, source=source, digest=digest(data), notes=tuple(notes))


def digest(data: dict[str, Any]) -> str:
    """Hash the canonical JSON of DATA (sorted keys, no whitespace, UTF-8 as is)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _reject(source: str, problem: Problem, *, incomplete: bool = False) -> Rejection:
    return Rejection(source, (problem,), incomplete=incomplete)


def _cut_mid_character(raw: bytes) -> bool:
    """Tell whether RAW is UTF-8 cut off inside its last character (a file still being written)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.reason == "unexpected end of data"
    return False


def _ends_early(text: str) -> bool:
    """Tell whether TEXT fails as JSON only because it stops too soon (at its end, or inside a string).

    Asked of rejected files only, so parsing them a second time costs nothing on the accept path.
    """
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
    except (ValueError, RecursionError):
        return False
    return False


def _too_big(size: int, limit: int) -> Problem:
    return Problem("", f"文件过大：{size} 字节，上限 {limit} 字节", f"file too large: {size} bytes, limit {limit}")


def _decode(raw: bytes) -> tuple[str, list[str], Problem | None]:
    """Decode UTF-8 (BOM or not); convert UTF-16 or GBK when they decode cleanly, noting it."""
    if raw.startswith(codecs.BOM_UTF8):
        return _try(raw[3:], "utf-8", "")
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _try(raw, "utf-16", "converted from UTF-16 (已从 UTF-16 转换)")
    if b"\x00" in raw:  # ASCII-heavy UTF-16 without a BOM is full of zero bytes, and still "valid UTF-8"
        zeros_odd = raw[1::2].count(0)
        encoding = "utf-16-le" if zeros_odd > raw[0::2].count(0) else "utf-16-be"
        return _try(raw, encoding, f"converted from {encoding.upper()} (已从 {encoding.upper()} 转换)")
    try:
        return raw.decode("utf-8"), [], None
    except UnicodeDecodeError as exc:
        bad = exc.start
    try:
        return raw.decode("gbk"), ["converted from GBK (已从 GBK 转换)"], None
    except UnicodeDecodeError:
        return "", [], Problem("", f"文件不是 UTF-8 编码（第 {bad} 字节起无法解码），也不是可识别的 GBK 或 UTF-16",
                               f"not UTF-8 (undecodable from byte {bad}), nor cleanly GBK or UTF-16")


def _try(raw: bytes, encoding: str, note: str) -> tuple[str, list[str], Problem | None]:
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        return "", [], Problem("", f"文件按 {encoding} 无法解码（第 {exc.start} 字节）",
                               f"cannot decode as {encoding} (byte {exc.start})")
    return text.removeprefix("\ufeff"), [note] if note else [], None


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _finite(text: str) -> float:
    """A JSON number too large for a float (1e999) is not infinity: the journal would hold `Infinity`, which
    is not JSON."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:20]}（超出数值范围 / out of range）")
    return value


def _bounded_int(text: str) -> int:
    """Python refuses more than 4,300 digits with a message about its own limit: say it in the form's terms."""
    if len(text.lstrip("-")) > 18:
        raise ValueError(f"{text[:20]}…（整数位数过多 / too many digits）")
    return int(text)


def _parse_json(text: str, max_depth: int) -> tuple[dict[str, Any], Problem | None]:
    """Parse TEXT as a JSON object no deeper than MAX_DEPTH."""
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        zh = _JSON_MSG_ZH.get(exc.msg, exc.msg)
        return {}, Problem("", f"JSON 格式错误：第 {exc.lineno} 行第 {exc.colno} 列，{zh}",
                           f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
    except ValueError as exc:
        return {}, Problem("", f"JSON 中不允许 {exc}", f"{exc} is not allowed in JSON")
    except RecursionError:
        return {}, _too_deep(max_depth)
    if not isinstance(data, dict):
        return {}, Problem("", "表单必须是一个 JSON 对象 {...}", "a form must be a JSON object {...}")
    if _depth_exceeds(data, max_depth):
        return {}, _too_deep(max_depth)
    return data, None


def _too_deep(limit: int) -> Problem:
    return Problem("", f"嵌套层数超过上限 {limit}", f"nesting deeper than the limit of {limit}")


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(data: dict[str, Any]) -> Problem | None:
    """Find a key or string holding half of a UTF-16 pair (an escaped "\\ud800" with no partner)."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str) and _SURROGATE.search(value):
            return _surrogate_problem(where)
        if isinstance(value, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(value))
        elif isinstance(value, dict):
            for key, v in value.items():
                inner = f"{where}.{key}" if where else key
                if _SURROGATE.search(key):
                    return _surrogate_problem(inner)
                stack.append((v, inner))
    return None


def _surrogate_problem(where: str) -> Problem:
    field = printable(where)
    return Problem(field, f"{field or '表单'} 含有无效的 Unicode 转义（单独的代理项，如 \\ud800），无法保存为 UTF-8",
                   f"{field or 'the form'} holds an invalid Unicode escape (a lone surrogate such as \\ud800): "
                   f"it cannot be stored as UTF-8")


def printable(text: str) -> str:
    """TEXT with anything UTF-8 cannot hold (lone surrogates) written as \\udXXX escapes, for reports."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _check(data: dict[str, Any], policy: Policy) -> list[Problem]:
    """Validate DATA against its type's schema and the checks JSON Schema cannot say."""
    kind = data.get("form")
    if not isinstance(kind, str) or kind not in FORM_TYPES:
        shown = json.dumps(kind, ensure_ascii=False) if "form" in data else "（缺失）"
        return [Problem("form", f"未知的表单类型 {shown}，应为：{'、'.join(FORM_TYPES)}",
                        f"unknown form type {shown}; expected one of {', '.join(FORM_TYPES)}")]
    compiled = _compiled_for(policy)[kind]
    problems: list[Problem] = []
    try:
        compiled.fast(data)
    except fastjsonschema.JsonSchemaException:
        problems = [_problem(e) for e in compiled.base.iter_errors(data)]
        branch = compiled.by_action.get(data.get("action"))  # type: ignore[arg-type]
        if branch:
            problems.extend(_problem(e) for e in branch.iter_errors(data))
    problems.extend(_check_dates(data, problems))
    problems.extend(_check_names(data))
    return sorted(set(problems), key=lambda p: p.field)


def _check_names(data: dict[str, Any]) -> list[Problem]:
    """Catch a trailing newline that a schema `$` lets through (Python's `$` matches before a final newline)."""
    found = []
    if isinstance(data.get("id"), str) and not _ID.fullmatch(data["id"]):
        found.append(Problem("id", "编号须为 8–64 个字母、数字或 . _ - 字符",
                             "id must be 8-64 characters of A-Z a-z 0-9 . _ -"))
    photos = data.get("photos")
    for i, name in enumerate(photos if isinstance(photos, list) else []):
        if isinstance(name, str) and "\n" in name:
            found.append(Problem(f"photos[{i}]", "照片文件名不能包含换行", "a photo name must not contain a newline"))
        elif isinstance(name, str) and not is_photo_name(name):
            found.append(Problem(f"photos[{i}]", f"照片不能是表单文件（{name}：以 .json 或 .tmp 结尾）",
                                 f"a photo must not be a form file ({name} ends with .json or .tmp)"))
        elif isinstance(name, str) and name_bytes(name) > NAME_MAX_BYTES:
            size = name_bytes(name)
            found.append(Problem(f"photos[{i}]",
                                 f"照片文件名过长：{size} 字节，文件系统上限 {NAME_MAX_BYTES} 字节（UTF-8 中一个汉字占 3 字节）",
                                 f"photo name too long: {size} bytes, the file system's limit is {NAME_MAX_BYTES} "
                                 f"(a Chinese character takes 3 bytes in UTF-8)"))
    return found


def name_bytes(name: str) -> int:
    """The length of file name NAME in bytes, as UTF-8 (what Linux and the limit count)."""
    return len(name.encode("utf-8", "surrogatepass"))


def fits_name(name: str) -> bool:
    """Tell whether NAME can be a file's name here: encodable, and within the file system's limit."""
    try:
        return len(os.fsencode(name)) <= NAME_MAX_BYTES
    except UnicodeError:        # a lone surrogate from \ud800 in a rejected form's JSON
        return False


def is_photo_name(name: str) -> bool:
    """Tell whether NAME may be a photo: not a file the intake treats as a form."""
    return not name.lower().endswith(FORM_FILE_ENDINGS)


def _check_dates(data: dict[str, Any], problems: list[Problem]) -> list[Problem]:
    """Check that well-formed date fields name real dates (2026-02-30 matches the pattern)."""
    found = []
    for key, parse in (("submitted_at", datetime.fromisoformat), ("shift_date", date.fromisoformat)):
        value = data.get(key)
        if isinstance(value, str) and not any(p.field == key for p in problems):
            try:
                parse(value)
            except ValueError:
                found.append(Problem(key, f"不是有效的日期时间：{value}", f"not a real date/time: {value}"))
    return found


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _problem(error: ValidationError) -> Problem:
    """Say one schema error in Chinese and English, using the schema's own x-zh/x-en when it has them."""
    where = _path(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "required":
        name = error.message.split("'")[1]
        field = f"{where}.{name}" if where else name
        return Problem(field, f"缺少必填字段 {name}", f"required field {name} is missing")
    if "x-zh" in schema:  # the contract's own wording for this field
        return Problem(schema.get("x-field", where), schema["x-zh"], schema["x-en"])
    zh, en = _MESSAGES.get(error.validator, _fallback)(error)
    return Problem(where, zh, en)


def _type(e: ValidationError) -> tuple[str, str]:
    expected = e.validator_value if isinstance(e.validator_value, str) else "/".join(e.validator_value)
    actual = _json_type(e.instance)
    return (f"类型错误：应为{_TYPE_ZH.get(expected, expected)}，实际是{_TYPE_ZH.get(actual, actual)} {_shown(e.instance)}",
            f"wrong type: expected {expected}, got {actual} {_shown(e.instance)}")


def _json_type(value: Any) -> str:
    for name, kinds in (("null", type(None)), ("boolean", bool), ("integer", int), ("number", float),
                        ("string", str), ("array", list), ("object", dict)):
        if isinstance(value, kinds):
            return name
    return type(value).__name__


def _enum(e: ValidationError) -> tuple[str, str]:
    allowed = list(e.validator_value) if e.validator == "enum" else [e.validator_value]
    shown = "、".join(str(a) for a in allowed[:20])
    return (f"取值 {_shown(e.instance)} 不在允许范围内，应为：{shown}",
            f"{_shown(e.instance)} is not allowed; expected one of {', '.join(str(a) for a in allowed[:20])}")


def _fallback(e: ValidationError) -> tuple[str, str]:
    return (f"不符合表单契约：{e.message}", e.message)


_MESSAGES = {  # jsonschema keyword -> (zh, en) of the failure
    "type": _type,
    "enum": _enum,
    "const": _enum,
    "pattern": lambda e: (f"格式不正确：{_shown(e.instance)}", f"does not match {e.validator_value}: {_shown(e.instance)}"),
    "minimum": lambda e: (f"数值 {e.instance} 小于最小值 {e.validator_value}",
                          f"{e.instance} is less than the minimum {e.validator_value}"),
    "maximum": lambda e: (f"数值 {e.instance} 大于最大值 {e.validator_value}",
                          f"{e.instance} is greater than the maximum {e.validator_value}"),
    "exclusiveMinimum": lambda e: (f"数值 {e.instance} 必须大于 {e.validator_value}",
                                   f"{e.instance} must be greater than {e.validator_value}"),
    "minLength": lambda e: ("不能为空", "must not be empty") if e.validator_value == 1 else (
        f"至少 {e.validator_value} 个字符", f"at least {e.validator_value} characters"),
    "maxLength": lambda e: (f"过长，最多 {e.validator_value} 个字符", f"too long: at most {e.validator_value} characters"),
    "minItems": lambda e: (f"至少需要 {e.validator_value} 项", f"needs at least {e.validator_value} item(s)"),
    "minProperties": lambda e: (f"至少需要 {e.validator_value} 项", f"needs at least {e.validator_value} entry(ies)"),
}
