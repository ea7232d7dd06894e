"""Template helpers of the portal: sizes, percentages, Markdown cards, query strings."""

from __future__ import annotations

from typing import Any

from django import template
from django.http import QueryDict
from django.utils.safestring import SafeString

from marketplace.portal.markdown import render_markdown

register = template.Library()


@register.filter
def rename_text(suggestions: Any) -> str:
    """Suggested column matches as the "Rename columns" field's text (``your_name=learnware_name, …``)."""
    from marketplace.portal.forms import format_column_map

    return format_column_map(suggestions or [])


@register.filter
def filesize(value: Any) -> str:
    size = float(value or 0)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


@register.filter
def percent(value: Any, digits: int = 0) -> str:
    return "" if value is None else f"{float(value) * 100:.{int(digits)}f} %"


@register.filter
def number(value: Any, digits: int = 4) -> str:
    return "—" if value is None else f"{float(value):.{int(digits)}g}"


@register.filter
def markdown(value: str) -> SafeString:
    return render_markdown(value)


@register.filter
def get(mapping: Any, key: Any) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.simple_tag(takes_context=True)
def query(context: dict[str, Any], **changes: Any) -> str:
    """The current query string with ``changes`` applied (None removes a key); page resets unless given."""
    params: QueryDict = context["request"].GET.copy()
    if "page" not in changes:
        params.pop("page", None)
    for key, value in changes.items():
        params.pop(key, None)
        if value not in (None, ""):
            params[key] = value
    return "?" + params.urlencode() if params else "?"


@register.filter
def space_name(space: Any) -> str:
    from marketplace.portal.spaces import space_label

    return space_label(space)


@register.filter
def score_name(key: str) -> str:
    from marketplace.portal.explain import score_name as name

    return name(str(key))


@register.filter
def score_help(key: str) -> str:
    from marketplace.portal.explain import score_help as help_text

    return help_text(str(key))


@register.filter
def method_label(key: str) -> str:
    from marketplace.portal.explain import method_label as label

    return label(str(key))
