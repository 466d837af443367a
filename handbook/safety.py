"""What a page body may not contain: anything that runs, and anything that needs the network.

Raw HTML in Markdown is allowed for markup (tables, <details>, <kbd>) but these pages are opened by every
front-desk officer and, in the public tree, by residents, from a USB stick with no network: a script,
an event handler, a javascript: link or an image from another host is a build problem, named by file and
line. (Hugo's default goes further and drops raw HTML outright.) The checks read the HTML Markdown made,
so they see links however they were written (inline, reference-style, entity-encoded).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from handbook.models import BuildProblem


@dataclass(frozen=True)
class Body:
    """A page body as the checks see it."""

    shown: str        # the file, as problems name it
    text: str         # its Markdown
    first_line: int   # the line of the file the Markdown starts on
    html: str         # what Markdown made of it


def check_body(body: Body) -> list[BuildProblem]:
    return check_offline(body) + check_active(body)


_EXTERNAL_ASSET = re.compile(r"""\b(?:src|srcset|poster|data)\s*=\s*["']?\s*((?:https?:)?//[^"'\s>]+)""", re.I)


def check_offline(body: Body) -> list[BuildProblem]:
    """Report images, scripts or frames loaded from another host: the handbook must work with no network.

    Ordinary links to websites are fine (a reader may follow them when online); embedded resources are not.
    """
    if "//" not in body.html:  # no URL with a host at all: skip the (slow, unanchored) scan
        return []
    return [BuildProblem(body.shown, _line_of(body, m.group(1)),
                         f"引用了外部资源 {m.group(1)}：离线打开时无法显示，请把文件放进站点 (external resource)")
            for m in _EXTERNAL_ASSET.finditer(body.html)]


# Elements that run, embed another document, or change where the page's links and scripts come from.
# (animate/set can rewrite an SVG link's href to javascript:.)
ACTIVE_ELEMENTS = frozenset({"script", "iframe", "frame", "frameset", "object", "embed", "applet", "portal",
                             "base", "meta", "link", "animate", "set", "animatemotion", "animatetransform"})
_TAG = re.compile(r"""<([a-zA-Z][^\s/>]*)((?:[^>"']|"[^"]*"|'[^']*')*)>?""")  # a ">" inside quotes stays inside
_ATTRIBUTE = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]*))?""")
_IGNORED_IN_URLS = re.compile(r"[\x00-\x20]+")  # browsers drop controls and spaces around and inside a scheme
_ACTIVE_URLS = ("javascript:", "vbscript:", "data:text/html")


def check_active(body: Body) -> list[BuildProblem]:
    """Report scripts, frames, event handlers (onclick=…) and javascript: URLs in any attribute."""
    found: list[tuple[str, str]] = []
    for tag in _TAG.finditer(body.html):
        name = tag.group(1).lower()
        if name in ACTIVE_ELEMENTS:
            found.append((f"<{name}", f"<{name}> 标签"))
        if not tag.group(2):
            continue
        for attribute in _ATTRIBUTE.finditer(tag.group(2)):
            key, value = attribute.group(1).lower(), (attribute.group(2) or "").strip("\"'")
            if key.startswith("on"):
                found.append((key, f"事件属性 {key}="))
            url = _IGNORED_IN_URLS.sub("", html.unescape(value)).lower()
            if any(scheme in url for scheme in _ACTIVE_URLS):
                found.append((value[:12], f"脚本链接 {url[:30]}"))
    return [BuildProblem(body.shown, _line_of(body, needle),
                         f"正文含有会执行的内容（{what}）：手册页面不允许脚本，请删除 (active content)")
            for needle, what in found]


def _line_of(body: Body, needle: str) -> int:
    """The line NEEDLE is written on (Markdown turns tabs into spaces, so any whitespace matches any)."""
    found = re.search(r"\s*".join(map(re.escape, needle.split())) or re.escape(needle), body.text, re.I)
    return body.first_line + body.text.count("\n", 0, found.start()) if found else body.first_line
