"""Rendering the Markdown that item texts, help texts and descriptions keep, safely.

One CommonMark parser for the importer and the pages (markdown-it-py), with no Django import.
Raw HTML is never passed through (it shows as text), link targets that are not safe
(``javascript:``, ``data:``...) are not made links, every link opens with ``rel="noopener"``, and
an image shows as a link to it (pages have a strict CSP and checklists are text).
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.token import Token
from mdit_py_plugins.tasklists import tasklists_plugin

# The nesting markdown-it itself allows; the importer refuses deeper runbooks long before.
MAX_PARSER_NESTING = 40


def parser() -> MarkdownIt:
    """The parser the importer reads runbooks with: CommonMark, GitHub's tables, strikethrough
    and task lists, as GitHub renders a runbook."""
    md = MarkdownIt("commonmark", {"maxNesting": MAX_PARSER_NESTING})
    md.enable(["table", "strikethrough"])
    md.use(tasklists_plugin)
    return md


def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "maxNesting": MAX_PARSER_NESTING})
    md.enable(["table", "strikethrough"])

    def link_open(self, tokens: list[Token], idx: int, options, env) -> str:
        tokens[idx].attrSet("rel", "noopener")
        return self.renderToken(tokens, idx, options, env)

    def image(self, tokens: list[Token], idx: int, options, env) -> str:
        token = tokens[idx]
        alt = self.renderInlineAsText(token.children or [], options, env) or token.attrGet("src")
        src = escapeHtml(str(token.attrGet("src") or ""))
        return f'<a href="{src}" rel="noopener">{escapeHtml(str(alt))}</a>'

    md.add_render_rule("link_open", link_open)
    md.add_render_rule("image", image)
    return md


_RENDERER = _renderer()


def render_inline(text: str) -> str:
    """HTML of one line of inline Markdown (an item's text): links, code spans, emphasis."""
    return _RENDERER.renderInline(text) if text else ""


def render_block(text: str) -> str:
    """HTML of Markdown blocks (help texts, descriptions): paragraphs, lists, tables, code."""
    return _RENDERER.render(text) if text else ""


def plain_text(text: str) -> str:
    """The words of inline Markdown, for plain-text places (audit summaries, CSV, titles): the
    text of links followed by their address in brackets, code without its backticks."""
    if not text:
        return ""
    tokens = _RENDERER.parseInline(text)
    parts: list[str] = []
    links: list[str] = []
    for token in tokens[0].children or [] if tokens else []:
        if token.type in ("text", "code_inline", "html_inline"):
            parts.append(token.content)
        elif token.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif token.type == "image":
            parts.append(token.content or str(token.attrGet("src") or ""))
        elif token.type == "link_open":
            links.append(str(token.attrGet("href") or ""))
        elif token.type == "link_close":
            href = links.pop() if links else ""
            # An autolink already shows its address.
            if href and not (parts and href.endswith(parts[-1].removeprefix("mailto:"))):
                parts.append(f" ({href})")
    return " ".join("".join(parts).split())
