"""What a page body may contain: markup from a list, nothing that runs, nothing that needs the network.

Raw HTML in Markdown is allowed for markup (tables, <details>, <kbd>, <span style>) but these pages are
opened by every front-desk officer and, in the public tree, by residents, from a USB stick with no
network. So the author's HTML is held to an allowlist of elements and attributes, as HTML sanitizers do
(Hugo's default goes further and drops raw HTML outright): anything else, any script URL, any CSS that
can load something, and any markup a browser could read differently from us (declarations, CDATA,
processing instructions, a tag left open) is a build problem named by file and line. The checks read the
HTML Markdown made, so they see links however they were written (inline, reference-style, encoded).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser

from handbook.models import BuildProblem
from render.anchors import FILE_MARKER, LINK_MARKER, markdown_path


@dataclass(frozen=True)
class Body:
    """A page body as the checks see it: the author's own, without the policy tables the builder inserts."""

    shown: str        # the file, as problems name it
    text: str         # its Markdown
    first_line: int   # the line of the file the Markdown starts on
    html: str         # what Markdown made of it
    links: int = 0    # how many links to procedures Markdown made (each is a link marker in HTML)


# Elements an author may use (all that Markdown makes, plus common text markup and local media).
ALLOWED_ELEMENTS = frozenset(re.findall(r"\S+", """
    a abbr article aside audio b bdi bdo blockquote br caption center cite code col colgroup data dd del details
    dfn div dl dt em figcaption figure footer h1 h2 h3 h4 h5 h6 header hr i img ins kbd li main mark nav ol p
    picture pre q rp rt ruby s samp section small source span strong sub summary sup table tbody td tfoot th
    thead time tr track u ul var video wbr"""))
_ANY_ELEMENT = frozenset({"class", "id", "title", "lang", "dir", "role", "hidden", "translate", "style"})
_PER_ELEMENT = {
    "a": {"href", "name", "target", "rel", "hreflang", "download", "type"},
    "img": {"src", "srcset", "sizes", "alt", "width", "height", "loading", "decoding"},
    "source": {"src", "srcset", "sizes", "type", "media"}, "track": {"src", "kind", "label", "srclang", "default"},
    "video": {"src", "poster", "controls", "width", "height", "preload", "loop", "muted", "playsinline"},
    "audio": {"src", "controls", "preload", "loop", "muted"},
    "td": {"colspan", "rowspan", "headers", "align", "valign", "width"}, "th": {"colspan", "rowspan", "headers",
                                                                              "scope", "abbr", "align", "valign", "width"},
    "col": {"span", "width"}, "colgroup": {"span", "width"}, "ol": {"start", "type", "reversed"}, "li": {"value"},
    "details": {"open"}, "time": {"datetime"}, "data": {"value"}, "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"}, "q": {"cite"}, "blockquote": {"cite"}, "table": {"border"},
}
_ACTIVE_URLS = ("javascript:", "vbscript:", "data:text/html")
_LOADED = frozenset({"src", "srcset", "poster"})  # URLs the browser fetches with the page
_NETWORK_SCHEMES = ("http", "https", "ftp", "ws", "wss")
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
# CSS that can load or hide something, or spell it so we would not see it: refused in style="…"
_RISKY_CSS = re.compile(r"url\s*\(|image-set|@|\\|expression|behavior|binding|/\*", re.I)
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
    if _MAY_HAVE_MARKUP.search(body.text):  # raw HTML or attribute lists: read every tag
        scanner.feed(body.html.translate(_NOT_HTML_SPACE))
        if "<" in scanner.rawdata:  # a tag the tokenizer could not finish: the page's next ">" would
            scanner.found.append(("<", "HTML 标签没有写完（缺少 >）(unfinished tag)"))
        scanner.close()
    else:  # only Markdown's own links and images, whose attributes it writes "quoted" and escaped
        for tag in _MARKDOWN_TAG.finditer(body.html):
            for key, value in _MARKDOWN_ATTRIBUTE.findall(tag.group(2)):
                scanner.attribute(tag.group(1), key, html.unescape(value), value)
    found = scanner.found
    if body.html.count(LINK_MARKER) != body.links:  # the builder's link marker, typed by hand
        found.append((LINK_MARKER, f"正文不能含有 {LINK_MARKER}（构建程序的保留字）(reserved text)"))
    problems, after = [], {}   # a needle found twice is looked for after its last place: each on its own line
    for needle, message in found:
        line, after[needle] = _line_of(body, needle, after.get(needle, 0))
        problems.append(BuildProblem(body.shown, line, message))
    return problems


class _Scanner(HTMLParser):
    """Collects (text to find in the source, problem) for everything in a body outside the allowlist."""

    CDATA_CONTENT_ELEMENTS = ()  # no element is read as raw text (those that are, are not allowed anyway)

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_ELEMENTS:
            self.found.append((f"<{tag}", f"不允许的 HTML 标签 <{tag}>：手册页面只允许文字排版类标签 (element not allowed)"))
        written = {k.lower(): v for k, v in reversed(_RAW_ATTRIBUTE.findall(self.get_starttag_text() or ""))}
        for key, value in attrs:
            self.attribute(tag, key, value or "", written.get(key, "").strip("\"'"))

    handle_startendtag = handle_starttag

    def handle_decl(self, decl: str) -> None:
        self._construct(f"<!{decl}")

    def unknown_decl(self, data: str) -> None:  # <![CDATA[ … ]]> and the like
        self._construct(f"<![{data[:8]}")

    def handle_pi(self, data: str) -> None:
        self._construct(f"<?{data[:8]}")

    def _construct(self, needle: str) -> None:
        self.found.append((needle, f"不允许的 HTML 写法 {needle[:12]}…（声明、CDATA 或处理指令）(markup not allowed)"))

    def attribute(self, tag: str, key: str, value: str, written: str) -> None:
        """Check one attribute; VALUE is decoded, WRITTEN is how the HTML has it (to find its line)."""
        written = written.replace(FILE_MARKER, "")  # a local file's marker is ours, not in the source
        # no data-* (the pages' own scripts read some: a planted data-search-slot could load a script), and
        # no id the search box uses
        allowed = key in _ANY_ELEMENT or key in _PER_ELEMENT.get(tag, ()) or key.startswith("aria-")
        if key == "id" and value.startswith("es-"):
            allowed = False
        if not allowed:
            what, name = "事件属性" if key.startswith("on") else "不允许的属性", key.replace("\x01", "")
            hint = "" if name.isascii() else f"；若是正文里的花括号，请写成 \\{{{name}\\}}"  # attr_list took "{…}"
            self.found.append((name, f"{what} {name}=（<{tag}> 标签）：手册页面不允许{hint} (attribute not allowed)"))
        url = _IGNORED_IN_URLS.sub("", value).lower()
        if key in ("href", "src", "srcset", "poster", "cite") and any(s in url for s in _ACTIVE_URLS):
            self.found.append((written or value, f"正文含有会执行的内容（脚本链接 {url[:40]}）(active content)"))
        if key == "style" and _RISKY_CSS.search(value):
            self.found.append(("style", "style 中不允许 url()、@import、image-set、注释或转义：可能加载外部资源 (style not allowed)"))
        if key in _LOADED:
            for candidate in value.split(",") if key == "srcset" else (value,):
                self._resource(candidate.strip().split(" ")[0], written)
        if tag == "a" and key == "href" and not value.startswith(LINK_MARKER) and _is_procedure_file(url):
            self.found.append((value, f"HTML 链接 {value} 指向 Markdown 文件：请用 Markdown 链接写法 [文字]({value}) "
                                           "(raw HTML link to a .md file)"))

    def _resource(self, url: str, written: str) -> None:
        normal = _IGNORED_IN_URLS.sub("", url).lower().replace("\\", "/")
        scheme = _SCHEME.match(normal)
        if normal.startswith("//") or (scheme and scheme.group(1) in _NETWORK_SCHEMES):
            self.found.append((written or url,
                               f"引用了外部资源 {url}：离线打开时无法显示，请把文件放进站点 (external resource)"))


def _is_procedure_file(url: str) -> bool:
    return not _SCHEME.match(url) and not url.startswith("//") and markdown_path(url.split("#")[0].split("?")[0]) is not None


def _line_of(body: Body, needle: str, start: int = 0) -> tuple[int, int]:
    """The line NEEDLE is next written on from offset START, and the offset after it (Markdown turns tabs into
    spaces, so any whitespace matches any). The whole of it first: its first 12 characters alone named the line
    of an earlier link to the same site; then those, for a value written otherwise (entities, escapes)."""
    for text in dict.fromkeys((needle, needle[:12])):
        pattern = re.compile(r"\s*".join(map(re.escape, text.split())) or re.escape(text), re.I)
        found = pattern.search(body.text, start) or pattern.search(body.text)
        if found:
            return body.first_line + body.text.count("\n", 0, found.start()), found.end()
    return body.first_line, start
