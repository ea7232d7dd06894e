"""Learnware cards: Markdown rendered to HTML, then sanitised with nh3 (an allow-list).

Images are shown only from this site: a remote image would make every visitor's browser
call a server the publisher chooses (tracking, and the CSP blocks it anyway). A Markdown
image with a remote address becomes a plain link to it; a raw ``<img>`` keeps no remote ``src``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import markdown as md
import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "dd",
    "del",
    "div",
    "dl",
    "dt",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "abbr": {"title"},
    "th": {"align"},
    "td": {"align"},
    "code": {"class"},
}
URL_SCHEMES = {"http", "https", "mailto"}


def is_local_url(url: str) -> bool:
    """A path on this site (``/media/x.png``, ``img/x.png``), not ``//host``, ``https:``, ``data:``, ..."""
    url = url.strip()
    return bool(url) and not url.startswith("//") and ":" not in url.split("/", 1)[0] and "\\" not in url


class _RemoteImagesToLinks(Treeprocessor):
    def run(self, root: ET.Element) -> None:
        for parent in root.iter():
            for i, child in enumerate(list(parent)):
                if child.tag == "img" and not is_local_url(child.get("src", "")):
                    link = ET.Element("a", {"href": child.get("src", "")})
                    link.text = f"image: {child.get('alt') or child.get('src', '')}"
                    link.tail = child.tail
                    parent.remove(child)
                    parent.insert(i, link)


class _LocalImagesOnly(Extension):
    def extendMarkdown(self, md_: md.Markdown) -> None:  # noqa: N802 - Python-Markdown's API
        md_.treeprocessors.register(_RemoteImagesToLinks(md_), "local-images-only", 0)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src" and not is_local_url(value):
        return None
    return value


def render_markdown(text: str) -> SafeString:
    """HTML of a Markdown card with scripts, handlers, styles, unsafe URLs and remote images removed."""
    html = md.markdown(
        text or "",
        extensions=["tables", "fenced_code", "sane_lists", _LocalImagesOnly()],
        output_format="html",
    )
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="nofollow noopener noreferrer",
        attribute_filter=_attribute_filter,
    )
    return mark_safe(clean)  # noqa: S308 - nh3 has just removed everything outside the allow-list
