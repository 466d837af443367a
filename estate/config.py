"""The estate's declared configuration: `content/estate.toml`, as a documented schema.

Every section is a frozen dataclass; every field carries its documentation in
``field(metadata={"doc": ...})``.  `tests/test_config.py` fails if a field is undocumented, and
`docs()` renders the whole schema for the handbook (like MkDocs' config options page).
"""

from __future__ import annotations

import logging
import math
import os
import re
import tomllib
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path, PurePath
from typing import Any, get_type_hints

log = logging.getLogger(__name__)

CONFIG_FILE = "content/estate.toml"
LANGUAGES = ("zh-Hans", "zh-Hant", "en")


class ConfigError(Exception):
    """The configuration file is missing, unreadable or does not match the schema."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        super().__init__("\n".join(f"{self.path}: {p}" for p in problems))


def doc(text: str, default: Any = MISSING, factory: Any = MISSING, at_least: float | None = None,
        at_most: float | None = None) -> Any:
    """Declare a documented config field; a number may be bounded (AT_LEAST, AT_MOST, both inclusive)."""
    metadata = {"doc": text, "range": (at_least, at_most)}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    if default is not MISSING:
        return field(default=default, metadata=metadata)
    return field(metadata=metadata)


@dataclass(frozen=True)
class EstateInfo:
    """[estate]: who the handbook and notice board belong to."""

    name: str = doc("The estate's name as residents know it, shown in every page header.")
    office: str = doc("The management office's name (管理处).", default="管理处")
    address: str = doc("Postal address, shown in the public footer.", default="")
    phone: str = doc("The customer-service centre's phone number, shown on public pages.", default="")
    emergency_phone: str = doc("The 24-hour duty phone for emergencies.", default="")
    language: str = doc("UI language: zh-Hans (default), zh-Hant or en.", default="zh-Hans")
    timezone: str = doc("UTC offset of the estate, e.g. +08:00; used for dates and deadlines.", default="+08:00")


@dataclass(frozen=True)
class Department:
    """[[departments]]: a department that owns procedures and works tickets."""

    id: str = doc("Stable identifier used in code and routing rules, e.g. engineering.")
    name: str = doc("Display name, e.g. 工程部; procedures may name a department by id or name.")
    aliases: tuple[str, ...] = doc("Other names accepted in front matter (e.g. a Traditional spelling).", factory=tuple)
    description: str = doc("One line on what the department does.", default="")


@dataclass(frozen=True)
class Category:
    """[[categories]]: a group of procedures on the handbook home page."""

    id: str = doc("Stable identifier, e.g. complaints.")
    name: str = doc("Display name, e.g. 投诉处理; procedures may name a category by id or name.")
    aliases: tuple[str, ...] = doc("Other names accepted in front matter.", factory=tuple)
    description: str = doc("One line shown under the category heading.", default="")


@dataclass(frozen=True)
class BuildConfig:
    """[build]: how the handbook and notice board are built."""

    site_dir: str = doc("Output folder, relative to the estate root.", default="site")
    procedures_dir: str = doc("Folder of procedure Markdown files, relative to the estate root.", default="procedures")
    notices_dir: str = doc("Folder of notice Markdown files, relative to the estate root.", default="content/notices")
    synonyms_file: str = doc("Search synonyms (TOML), relative to the estate root.", default="content/synonyms.toml")
    recent_changes: int = doc("How many procedures the 'what changed' summary and empty search show.", default=20,
                              at_least=0, at_most=10_000)
    review_warning_days: int = doc("Days before review_by that a procedure is marked 'review due soon'.", default=30,
                                   at_least=0, at_most=3660)
    workers: int = doc("Processes used for a full build; 0 means one per CPU core.", default=0, at_least=0, at_most=64)


@dataclass(frozen=True)
class ProcessorConfig:
    """[processor]: the form processor's folders and limits."""

    inbox_dir: str = doc("Drop folder for submitted JSON forms, relative to the estate root.", default="inbox")
    var_dir: str = doc("Runtime state: journal, store, archive, rejected; relative to the estate root.", default="var")
    policy_file: str = doc("Deadline, routing and escalation rules (TOML), relative to the estate root.",
                           default="content/policy.toml")
    max_form_bytes: int = doc("Largest form file accepted, in bytes.", default=1_048_576, at_least=1024,
                              at_most=1 << 30)
    max_depth: int = doc("Deepest JSON nesting accepted in a form.", default=20, at_least=3, at_most=500)
    rescan_seconds: float = doc("Period of the safety rescan of the inbox in watch mode.", default=5.0,
                                at_least=0.1, at_most=86_400)
    settle_seconds: float = doc("A file whose size or mtime changed within this time is left for the next pass.",
                                default=0.2, at_least=0, at_most=3600)
    write_grace_seconds: float = doc(
        "A file that ends before its JSON does and changed within this time is taken to be still being written "
        "(a writer that stalls) and left for a later pass; after it, it is rejected as truncated.", default=5.0,
        at_least=0, at_most=86_400)
    batch_size: int = doc("Forms whose journal records share one fsync.", default=64, at_least=1, at_most=100_000)
    snapshot_every: int = doc("Journal records between store snapshots; bounds the replay at start.", default=5000,
                              at_least=1, at_most=10_000_000)


@dataclass(frozen=True)
class EstateConfig:
    """The whole of content/estate.toml."""

    estate: EstateInfo = doc("The [estate] table.")
    departments: tuple[Department, ...] = doc("The [[departments]] array.", factory=tuple)
    categories: tuple[Category, ...] = doc("The [[categories]] array.", factory=tuple)
    build: BuildConfig = doc("The [build] table.", factory=BuildConfig)
    processor: ProcessorConfig = doc("The [processor] table.", factory=ProcessorConfig)
    root: Path = field(default=Path("."), metadata={"doc": "The estate root folder (not read from the file).",
                                                    "internal": True})

    def department(self, name: str) -> Department | None:
        """Find a department by id, name or alias."""
        return _lookup(self.departments, name)

    def category(self, name: str) -> Category | None:
        """Find a category by id, name or alias."""
        return _lookup(self.categories, name)

    def path(self, relative: str) -> Path:
        """Resolve a configured relative path against the estate root."""
        return self.root / relative


def _lookup(items: tuple[Any, ...], name: str) -> Any:
    for item in items:
        if name in (item.id, item.name, *item.aliases):
            return item
    return None


def load_config(root: Path | str = ".") -> EstateConfig:
    """Read and validate ROOT/content/estate.toml."""
    root = Path(root)
    config = load_toml_schema(EstateConfig, root / CONFIG_FILE, _check_semantics)
    # absolute (not resolved: symlinks stay as given), so that every path the build derives from it is the
    # same whatever the working folder: the build cache knows unchanged files by path, and `--root .` one
    # time and `--root /srv/estate` the next made a one-page rebuild read and hash all 1,000 procedures
    return replace(config, root=root.absolute())


def load_toml_schema(cls: type, path: Path, check: Any = None) -> Any:
    """Read the TOML file PATH into dataclass CLS; CHECK(obj, problems) adds cross-field problems.

    Every problem is collected (not just the first) and raised together as one ConfigError naming PATH.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(path, ["file not found (文件不存在)"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [f"not valid UTF-8 at byte {exc.start} (不是 UTF-8 编码)"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"TOML syntax error (语法错误): {exc}"]) from exc
    problems: list[str] = []
    obj = _build(cls, raw, "", problems)
    if not problems and check is not None:
        check(obj, problems)
    if problems:
        raise ConfigError(path, problems)
    return obj


_UTC_OFFSET = re.compile(r"[+-](?:[01]\d|2[0-3]):?[0-5]\d")


def _check_semantics(config: EstateConfig, problems: list[str]) -> None:
    if config.estate.language not in LANGUAGES:
        problems.append(f"estate.language: {config.estate.language!r} is not one of {', '.join(LANGUAGES)}")
    if not _UTC_OFFSET.fullmatch(config.estate.timezone):  # the processor reads it as one (strptime %z)
        problems.append(f"estate.timezone: {config.estate.timezone!r} is not a UTC offset such as +08:00 "
                        "(时区请写成 +08:00 这样的偏移)")
    inbox, var = (PurePath(os.path.normpath(config.processor.inbox_dir)),
                  PurePath(os.path.normpath(config.processor.var_dir)))
    if inbox == var or var in inbox.parents or inbox in var.parents:
        # rejected files (and their error reports) would be read again as forms, doubling on every pass
        problems.append(f"processor.inbox_dir: {config.processor.inbox_dir!r} and processor.var_dir "
                        f"{config.processor.var_dir!r} must not contain each other (收件箱与 var 目录不能互相包含)")
    for kind, items in (("departments", config.departments), ("categories", config.categories)):
        seen: set[str] = set()
        for item in items:
            for key in (item.id, item.name, *item.aliases):
                if key in seen:
                    problems.append(f"{kind}: {key!r} is used twice")
                seen.add(key)


def _build(cls: type, raw: Any, where: str, problems: list[str]) -> Any:
    """Turn a TOML table into dataclass CLS, collecting every problem instead of stopping at the first."""
    if not isinstance(raw, dict):
        problems.append(f"{where.rstrip('.') or 'file'}: expected a table")
        return None
    hints = get_type_hints(cls)
    settable = [f for f in fields(cls) if not f.metadata.get("internal")]
    problems.extend(f"{where}{unknown}: unknown setting"
                    for unknown in sorted(set(raw) - {f.name for f in settable}))
    before = len(problems)
    values: dict[str, Any] = {}
    for f in settable:
        key = f"{where}{f.name}"
        if f.name not in raw:
            if f.default is MISSING and f.default_factory is MISSING:
                problems.append(f"{key}: required setting is missing")
            continue
        values[f.name] = _coerce(hints[f.name], raw[f.name], key, problems)
        _check_range(key, values[f.name], f.metadata.get("range", (None, None)), problems)
    if len(problems) > before:
        return None
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str, problems: list[str]) -> Any:
    origin = getattr(hint, "__origin__", None)
    if is_dataclass(hint):
        return _build(hint, value, key + ".", problems)
    if origin is tuple:
        if not isinstance(value, list):
            problems.append(f"{key}: expected a list")
            return ()
        return tuple(_coerce(hint.__args__[0], v, f"{key}[{i}]", problems) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{key}: expected a table")
            return {}
        return {k: _coerce(hint.__args__[1], v, f"{key}.{k}", problems) for k, v in value.items()}
    expected = {str: str, int: int, float: (int, float), bool: bool}.get(hint)
    if expected and (not isinstance(value, expected) or (hint is not bool and isinstance(value, bool))):
        problems.append(f"{key}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
        return None
    return float(value) if hint is float else value


def _check_range(key: str, value: Any, bounds: tuple[float | None, float | None], problems: list[str]) -> None:
    """A number must be finite (TOML allows inf and nan) and within its field's bounds: settle_seconds = inf
    had crashed the processor in time.sleep, max_form_bytes = -5 in read()."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    low, high = bounds
    if not math.isfinite(value):
        problems.append(f"{key}: {value!r} is not a finite number (须为有限的数)")
    elif (low is not None and value < low) or (high is not None and value > high):
        problems.append(f"{key}: {value!r} is out of range, {low} to {high} (超出范围)")


def docs(cls: type = EstateConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """List (setting, default, documentation) for every field of a schema (estate.toml's by default)."""
    rows: list[tuple[str, str, str]] = []
    hints = get_type_hints(cls)
    for f in fields(cls):
        if f.metadata.get("internal"):
            continue
        hint = hints[f.name]
        inner = hint.__args__[0] if getattr(hint, "__origin__", None) is tuple else hint
        default = "" if f.default is MISSING else repr(f.default)
        low, high = f.metadata.get("range", (None, None))
        bounds = f" ({low} to {high})" if low is not None or high is not None else ""
        rows.append((prefix + f.name, default, f.metadata.get("doc", "") + bounds))
        if is_dataclass(inner):
            rows.extend(docs(inner, f"{prefix}{f.name}."))
    return rows
