"""The shared Jinja environment: templates and static assets live beside this module."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from render.i18n import DEFAULT, LOCALES, catalogue, translator

if TYPE_CHECKING:
    import jinja2

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


@cache
def environment() -> jinja2.Environment:
    """One autoescaping environment per process; undefined names fail loudly instead of printing nothing.

    Jinja is imported here, on first use: a one-off rebuild imports it while a forked process converts the
    changed Markdown (see handbook/parallel.py), not before.
    """
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=_bytecode_cache(),
        # a template is looked at once a build (assets_digest, which drops the loaded ones if any changed),
        # not on every page for each template it extends, includes or imports (5 stat calls a page)
        auto_reload=False,
    )
    # tojson writes CJK as itself, not as \uXXXX (6 bytes a character, on every page of a zh-Hant estate);
    # it still escapes < > & ' for HTML, which is what keeps the inline script safe
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}
    env.filters["css_string"] = css_string
    return env


def css_string(text: object) -> Markup:
    """TEXT as a quoted CSS string, safe in a .css file and inside <style>: quotes, backslashes, line
    breaks, control characters and < > & are written as CSS escapes (an estate's name is free text)."""
    escaped = "".join(f"\\{ord(ch):X} " if ch in '"\\<>&' or ord(ch) < 0x20 or ord(ch) == 0x7F else ch
                      for ch in str(text))
    return Markup(f'"{escaped}"')


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept beside the compiled Python (render/__pycache__), as .pyc files are.

    Part of the program, like them: never in the estate's var/, where people who may edit procedures
    could plant code the build would run. The folder names this module's and Jinja's versions, so new
    environment settings never meet templates compiled under old ones; Jinja checks each template's source.
    Under PYTHONDONTWRITEBYTECODE it does what Python does with .pyc files: reads what is there, writes
    nothing. A read-only install just compiles each time (~0.1 s).
    """
    import jinja2

    digest = hashlib.sha256(Path(__file__).read_bytes() + jinja2.__version__.encode()).hexdigest()[:16]
    folder = Path(__file__).parent / "__pycache__" / f"jinja-{digest}"
    if sys.dont_write_bytecode:
        return _read_only_cache()(str(folder)) if folder.is_dir() else None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder)) if os.access(folder, os.W_OK) else None


@cache
def _read_only_cache() -> type[jinja2.FileSystemBytecodeCache]:
    """A bytecode cache that reads compiled templates and never writes one (a class made on first use, as
    Jinja is imported on first use)."""
    import jinja2

    class ReadOnlyBytecodeCache(jinja2.FileSystemBytecodeCache):
        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            pass

    return ReadOnlyBytecodeCache


def preload() -> None:
    """Compile every template now: forked render workers then inherit them instead of each compiling its own."""
    env = environment()
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)


def render(template: str, context: dict[str, Any]) -> str:
    """Render TEMPLATE with CONTEXT; `t()` speaks the context's language (contexts stay plain data)."""
    language = context.get("language", DEFAULT)
    extra: dict[str, Any] = {"t": translator(language)}
    if language != DEFAULT:  # search.js carries the default strings; other languages pass theirs
        extra["search_ui"] = search_ui(language)
    html = environment().get_template(template).render({**context, **extra})
    return html if "<pre" in html or "<textarea" in html else _INDENT.sub("\n", html)


# Template indentation is for people reading templates; in 1,000s of pages it is ~5% of the bytes.
_INDENT = re.compile(r"\n[ \t]+")


def search_ui(language: str) -> dict[str, Any]:
    """The `searchjs.*` strings of LANGUAGE as the nested table search.js expects."""
    ui: dict[str, Any] = {}
    for key, text in catalogue(language).items():
        if key.startswith("searchjs."):
            *parents, leaf = key.removeprefix("searchjs.").split(".")
            node = ui
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = text
    return ui


def assets_digest() -> str:
    """Fingerprint of every template, static file and UI catalogue: a change in any of them rebuilds every page.

    Files are read again only when their size or mtime changed (--watch asks before every rebuild).
    """
    files = [(folder, p, p.stat()) for folder in (TEMPLATES, STATIC, LOCALES)
             for p in sorted(folder.rglob("*")) if p.is_file()]
    stamp = tuple((str(p), st.st_mtime_ns, st.st_size) for _, p, st in files)
    if _DIGEST.get("stamp") != stamp:
        h = hashlib.sha256()
        for folder, path, _ in files:
            h.update(f"{folder.name}/{path.relative_to(folder).as_posix()}".encode())
            h.update(path.read_bytes())
        if "digest" in _DIGEST and environment.cache_info().currsize:  # --watch: a template was edited
            environment().cache.clear()  # type: ignore[union-attr]
        catalogue.cache_clear()  # --watch: a catalogue may have been
        _DIGEST.update(stamp=stamp, digest=h.hexdigest())
    return _DIGEST["digest"]


_DIGEST: dict[str, object] = {}


# What pages load: one stylesheet and one script, each joined from sources kept apart in render/static/
# (so each concern reads on its own). One tag each instead of five saves ~200 bytes on every page and
# four requests. A source with a media query is wrapped in it (print.css: @media print).
BUNDLES: dict[str, tuple[tuple[str, str], ...]] = {
    "site.css": (("site.css", ""), ("search.css", ""), ("print.css", "print")),
    "site.js": (("site.js", ""), ("search.js", "")),
}
_JOIN = {".css": b"\n", ".js": b"\n;\n"}   # a script that ends without ";" must not run into the next


def tree_assets(files: dict[str, bytes], context: dict[str, Any]) -> dict[str, bytes]:
    """A tree's assets: FILES (static_files()), with site.css ending in what is the same on every page of
    the tree (the printed page header's right side: estate and tree names), rendered from tree.css."""
    return {**files, "site.css": files["site.css"] + b"\n" + render("tree.css", context).encode("utf-8")}


def static_files() -> dict[str, bytes]:
    """Static assets as {relative path under assets/: bytes}: BUNDLES, then any other file as it is."""
    sources = {p.relative_to(STATIC).as_posix(): p.read_bytes() for p in sorted(STATIC.rglob("*")) if p.is_file()}
    files: dict[str, bytes] = {}
    for name, parts in BUNDLES.items():
        pieces = [sources.pop(src) if not media else b"@media %s {\n%s\n}" % (media.encode(), sources.pop(src))
                  for src, media in parts]
        files[name] = _JOIN[Path(name).suffix].join(pieces)
    return {**files, **sources}
