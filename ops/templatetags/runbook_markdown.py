"""The Markdown that runbooks keep in item texts, help texts and descriptions, shown safely:
links (rel="noopener"), code spans, emphasis and tables; raw HTML is shown as text."""

from django import template
from django.utils.safestring import SafeString, mark_safe

from ops.runbooks.markdown import plain_text, render_block, render_inline

register = template.Library()


@register.filter
def inline_markdown(text: str) -> SafeString:
    return mark_safe(render_inline(text or ""))  # noqa: S308 - markdown-it escapes; html is off


@register.filter
def block_markdown(text: str) -> SafeString:
    return mark_safe(render_block(text or ""))  # noqa: S308 - markdown-it escapes; html is off


@register.filter
def markdown_text(text: str) -> str:
    """Plain words of inline Markdown (for attributes, titles and options)."""
    return plain_text(text or "")
