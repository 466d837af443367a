"""What a page body may not contain: anything that runs, and anything that needs the network.

Raw HTML in Markdown is allowed for markup (tables, <details>, <kbd>) but these pages are opened by every
front-desk officer and, in the public tree, by residents, from a USB stick with no network: a script,
an event handler, a javascript: link or an image from another host is a build problem, named by file and
line. (Hugo's default goes further and drops raw HTML outright.) The checks read the HTML Markdown made,
so they see links however they were written (inline, reference-style, entity-encoded).

Tags are read with the standard library's HTML tokenizer, made stricter than a browser where the two
differ: it sees a tag wherever "<name" starts one (also inside <style>, <script>, <textarea>), and only
HTML's own five whitespace characters separate attributes (a full-width space does not).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser

from handbook.models import BuildProblem
from render.markdown import LINK_MARKER


@dataclass(frozen=True)
class Body:
    """A page body as the checks see it."""

    shown: str        # the file, as problems name it
    text: str         # its Markdown
    first_line: int   # the line of the file the Markdown starts on
    html: str         # what Markdown made of it
    links: int = 0    # how many links to procedures Markdown made (each is a link marker in HTML)


# Elements that run, embed another document, or change where the page's links and scripts come from.
# (animate/set can rewrite an SVG link's href to javascript:.)
ACTIVE_ELEMENTS = frozenset({"script", "iframe", "frame", "frameset", "object", "embed", "applet", "portal",
                             "base", "meta", "link", "animate", "set", "animatemotion", "animatetransform"})
_ACTIVE_URLS = ("javascript:", "vbscript:", "data:text/html")
# Attributes whose URL the browser loads with the page (href too, on anything but a link).
_RESOURCE_ATTRIBUTES = frozenset({"src", "srcset", "poster", "data", "background", "lowsrc", "dynsrc", "codebase",
                                  "href", "xlink:href"})
_TEXT_ATTRIBUTES = frozenset({"title", "alt", "aria-label", "aria-description", "placeholder"})  # read, never loaded
_NETWORK_SCHEMES = ("http", "https", "ftp", "ws", "wss")
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s*['"]([^'"]+)""", re.I)
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})\s?|(.))", re.S)
_CSS_STRING = re.compile(r"""["']([^"']+)["']""")
_MAY_HAVE_MARKUP = re.compile(r"<[a-zA-Z!/?]|\{")  # without these, Markdown makes no tag or attribute of the author's
_MARKDOWN_TAG = re.compile(r"<(a|img)\b([^>]*)>")
_MARKDOWN_ATTRIBUTE = re.compile(r'([a-z][a-z:-]*)="([^"]*)"')
_RAW_ATTRIBUTE = re.compile(r"""([^\s"'>/=]+)\s*=\s*("[^"]*"|'[^']*'|[^\s>]*)""")  # only to find lines
_IGNORED_IN_URLS = re.compile(r"[\x00-\x20]+")  # browsers drop controls and spaces around and inside a scheme
# Characters Python's \s takes for whitespace but HTML does not: the tokenizer must not either.
_NOT_HTML_SPACE = str.maketrans({chr(c): "\x01" for c in range(0x3001)
                                 if chr(c).isspace() and chr(c) not in "\t\n\f\r "} | {"\x0b": "\x01"})


def check_body(body: Body) -> list[BuildProblem]:
    """Every problem of BODY, as file:line problems."""
    scanner = _Scanner()
    if _MAY_HAVE_MARKUP.search(body.text) or "[[policy:" in body.text:  # raw HTML, attribute lists: every tag
        scanner.feed(body.html.translate(_NOT_HTML_SPACE))
        scanner.close()
    else:  # only Markdown's own links and images, whose attributes it writes "quoted" and escaped
        for tag in _MARKDOWN_TAG.finditer(body.html):
            for key, value in _MARKDOWN_ATTRIBUTE.findall(tag.group(2)):
                scanner._attribute(tag.group(1), key, html.unescape(value), value)
    found = scanner.found
    if body.html.count(LINK_MARKER) != body.links:  # the builder's link marker, typed by hand: links are
        found.append((LINK_MARKER, f"正文不能含有 {LINK_MARKER}（构建程序的保留字）(reserved text)"))  # made of it
    return [BuildProblem(body.shown, _line_of(body, needle), message) for needle, message in found]


class _Scanner(HTMLParser):
    """Collects (text to find in the source, problem) for every active or networked thing in a body."""

    CDATA_CONTENT_ELEMENTS = ()  # see a tag even where a browser would not (inside <style> in <svg> it would)

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ACTIVE_ELEMENTS:
            self._active(f"<{tag}", f"<{tag}> 标签")
        written = {k.lower(): v for k, v in reversed(_RAW_ATTRIBUTE.findall(self.get_starttag_text() or ""))}
        for key, value in attrs:
            self._attribute(tag, key, value or "", written.get(key, "").strip("\"'"))

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:  # <style> text too, since no element is CDATA here
        css = _CSS_ESCAPE.sub(_css_char, data)  # u\72l(\68ttps://…) is url(https://…) to a browser
        for m in _CSS_URL.finditer(css):
            self._resource(m.group(1) or m.group(2))
        if "image-set" in css.lower():  # its URLs may be bare strings
            for m in _CSS_STRING.finditer(css):
                self._resource(m.group(1))

    def _attribute(self, tag: str, key: str, value: str, written: str) -> None:
        """Check one attribute; VALUE is decoded, WRITTEN is how the HTML has it (to find its line)."""
        if key.startswith("on"):
            self._active(key, f"事件属性 {key}=")
        url = _IGNORED_IN_URLS.sub("", value).lower()
        if key not in _TEXT_ATTRIBUTES and any(scheme in url for scheme in _ACTIVE_URLS):
            self._active(written[:12] or value[:12], f"脚本链接 {url[:40]}")
        if key == "style":
            self.handle_data(value)
        elif key in _RESOURCE_ATTRIBUTES and not (key.endswith("href") and tag in ("a", "area")):
            for candidate in value.split(",") if key == "srcset" else (value,):
                self._resource(candidate.strip().split(" ")[0])
        if tag == "a" and key == "href" and not value.startswith(LINK_MARKER) and _is_procedure_file(url):
            self.found.append((value[:12], f"HTML 链接 {value} 指向 Markdown 文件：请用 Markdown 链接写法 [文字]({value}) "
                                           "(raw HTML link to a .md file)"))

    def _resource(self, url: str) -> None:
        normal = _IGNORED_IN_URLS.sub("", url).lower().replace("\\", "/")
        scheme = _SCHEME.match(normal)
        if normal.startswith("//") or (scheme and scheme.group(1) in _NETWORK_SCHEMES):
            self.found.append((url[:12], f"引用了外部资源 {url}：离线打开时无法显示，请把文件放进站点 (external resource)"))

    def _active(self, needle: str, what: str) -> None:
        self.found.append((needle, f"正文含有会执行的内容（{what}）：手册页面不允许脚本，请删除 (active content)"))


def _css_char(m: re.Match[str]) -> str:
    if m.group(2) is not None:
        return m.group(2)
    code = int(m.group(1), 16)
    return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"


def _is_procedure_file(url: str) -> bool:
    return not _SCHEME.match(url) and not url.startswith("//") and url.split("#")[0].split("?")[0].endswith(".md")


def _line_of(body: Body, needle: str) -> int:
    """The line NEEDLE is written on (Markdown turns tabs into spaces, so any whitespace matches any)."""
    found = re.search(r"\s*".join(map(re.escape, needle.split())) or re.escape(needle), body.text, re.I)
    return body.first_line + body.text.count("\n", 0, found.start()) if found else body.first_line
