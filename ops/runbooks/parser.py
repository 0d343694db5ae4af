"""Read Markdown runbooks into checklists, on a CommonMark parser (markdown-it-py with
mdit-py-plugins' task lists), so comments, fences, quotes, nesting, links, code spans and tables
behave as GitHub renders them.

Plain Python with no Django import: the importer, the management command and the tests use it,
and it can be tested on a file alone.

What becomes a checklist
    Every heading whose own section (up to the next heading of any level) holds task-list items.
    Items before the first heading form a checklist titled after the file. A heading may end with
    an explicit key, ``## Daily checks {#daily}``, kept when the heading is reworded.

What becomes an item
    A list item that starts with ``[ ]`` or ``[x]`` (any marker, any depth, inside block quotes
    too). Its text keeps its inline Markdown (links, code spans, emphasis) without HTML comments.
    Nested under it:

    - task items are its children; a plain bullet that holds task items is a child grouping them;
    - fenced or indented code, and plain bullets that are nothing but a code span, are its
      ``command`` (joined by a blank line / a line break);
    - anything else (prose, plain bullets, tables, quotes) is its ``help_text``, as Markdown.

Around the items
    Prose and other blocks of the section that are not items are the checklist's
    ``description``. A paragraph of only bold text (``**Before the release**``) and a top-level
    plain bullet holding task items name the section of the items that follow.

Refused, naming the line
    Item text over ``MAX_ITEM_TEXT`` characters, a title over ``MAX_TITLE``, a line over
    ``MAX_LINE``, list items or quotes nested deeper than ``MAX_NESTING`` levels (anywhere, as
    past its own limit the parser would silently stop reading), an explicit key used twice, a
    NUL byte.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
import unicodedata
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from markdown_it.tree import SyntaxTreeNode

from ops.runbooks.markdown import parser as markdown_parser
from ops.runbooks.schedule import CADENCES, Schedule, key_text, read_schedule

__all__ = [
    "CADENCES",
    "MAX_ITEM_TEXT",
    "MAX_NESTING",
    "ParsedChecklist",
    "ParsedItem",
    "RunbookError",
    "checklist_as_dict",
    "parse_runbook",
]

MAX_ITEM_TEXT = 500
MAX_TITLE = 200
MAX_SECTION_TITLE = 200
MAX_DESCRIPTION = 20_000
MAX_HELP = 20_000
MAX_COMMAND = 20_000
MAX_NESTING = 8
MAX_LINE = 10_000  # longer lines are not prose; refused before parsing, which they would slow
MAX_KEY = 480
KEY_SEPARATOR = "/"

_ANCHOR_RE = re.compile(r"\s*\{#([A-Za-z0-9][A-Za-z0-9_.:-]{0,99})\}\s*$")
_MARKDOWN = markdown_parser()


@dataclass
class ParsedItem:
    text: str  # inline Markdown, on one line
    command: str = ""
    help_text: str = ""  # Markdown
    section: str = ""  # only on top-level items
    line: int = 0  # 1-based line of the item in its file
    children: list[ParsedItem] = field(default_factory=list)


@dataclass
class ParsedChecklist:
    title: str  # the heading as plain text, without emoji
    path: list[str]  # the titles of the enclosing headings, outermost first
    key: str  # stable within its file: the explicit {#key}, else the heading path
    schedule: Schedule
    description: str
    items: list[ParsedItem]
    line: int = 0
    explicit_key: bool = False

    @property
    def cadence(self) -> str:
        return self.schedule.cadence

    @property
    def due_time(self):
        return self.schedule.due_time

    @property
    def estimated_minutes(self) -> int | None:
        return self.schedule.estimated_minutes

    @property
    def warnings(self) -> list[str]:
        return self.schedule.warnings


class RunbookError(ValueError):
    """A runbook that cannot be imported; the message is one line and starts with its name."""


def parse_runbook(data: bytes, *, name: str) -> list[ParsedChecklist]:
    """The checklists of a Markdown runbook, in document order."""
    text = _decode(data, name=name)
    if not text.strip():
        raise RunbookError(f"{name}: is empty")
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_LINE:
            raise RunbookError(
                f"{name}:{number}: line is {len(line):,} characters; at most {MAX_LINE:,}"
            )
    tree = SyntaxTreeNode(_MARKDOWN.parse(text))
    checklists = _Reader(name=name, lines=lines).read(tree)
    if not checklists:
        raise RunbookError(f"{name}: contains no task-list items (- [ ] ...)")
    return checklists


def runbook_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checklist_as_dict(checklist: ParsedChecklist) -> dict:
    """A JSON-ready copy of a checklist, for previews, logs and tests."""
    plan = checklist.schedule
    return {
        "title": checklist.title,
        "path": list(checklist.path),
        "key": checklist.key,
        "cadence": plan.cadence,
        "weekdays_only": plan.weekdays_only,
        "due_time": plan.due_time.strftime("%H:%M") if plan.due_time else None,
        "due_weekday": plan.due_weekday,
        "due_day": plan.due_day,
        "due_week": plan.due_week,
        "time_zone": plan.time_zone,
        "estimated_minutes": plan.estimated_minutes,
        "description": checklist.description,
        "warnings": list(plan.warnings),
        "items": [item_as_dict(item) for item in checklist.items],
    }


def item_as_dict(item: ParsedItem) -> dict:
    return {
        "text": item.text,
        "command": item.command,
        "help_text": item.help_text,
        "section": item.section,
        "children": [item_as_dict(child) for child in item.children],
    }


# --- Bytes to text ------------------------------------------------------------------------------


def _decode(data: bytes, *, name: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        byte = data[error.start]
        raise RunbookError(
            f"{name}: not valid UTF-8 (byte 0x{byte:02x} at offset {error.start})"
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise RunbookError(f"{name}:{line}: contains a NUL byte; is it a text file?")
    # Editors on Windows write a BOM and CRLF.
    text = text.removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- Tree to checklists -------------------------------------------------------------------------


@dataclass
class _Section:
    """The blocks under one heading, until the next heading."""

    title: str
    path: list[str]
    key_parts: list[str]
    anchor: str
    line: int
    items: list[ParsedItem] = field(default_factory=list)
    description: list[str] = field(default_factory=list)
    label: str = ""  # the bold pseudo-heading the next items belong to


class _Reader:
    def __init__(self, *, name: str, lines: list[str]) -> None:
        self.name = name
        self.lines = lines

    def error(self, line: int, message: str) -> RunbookError:
        return RunbookError(f"{self.name}:{line}: {message}")

    def read(self, tree: SyntaxTreeNode) -> list[ParsedChecklist]:
        self._check_nesting(tree)
        file_title = _title_from_name(self.name)
        sections = [_Section(file_title, [], [_slug(file_title)], "", 1)]
        parents: list[tuple[int, str, str]] = []  # (level, title, key part)
        for node in tree.children:
            if node.type == "heading":
                level = int(node.tag[1])
                raw = node.children[0].content if node.children else ""
                title, anchor = self._heading(raw, line=_line(node))
                while parents and parents[-1][0] >= level:
                    parents.pop()
                part = anchor or _slug(key_text(title)) or _slug(title) or "untitled"
                sections.append(
                    _Section(
                        title=title or file_title,
                        path=[text for _, text, _ in parents if text],
                        key_parts=[*(key for _, _, key in parents), part],
                        anchor=anchor,
                        line=_line(node),
                    )
                )
                parents.append((level, title, part))
            else:
                self.section_block(node, sections[-1])
        checklists = [self.checklist(section) for section in sections if section.items]
        self._check_anchors(checklists)
        return checklists

    def _heading(self, raw: str, *, line: int) -> tuple[str, str]:
        anchor = ""
        if match := _ANCHOR_RE.search(raw):
            anchor, raw = match.group(1), raw[: match.start()]
        title = _clean_title(raw)
        if len(title) > MAX_TITLE:
            raise self.error(line, f"heading is {len(title)} characters; at most {MAX_TITLE}")
        return title, anchor

    def checklist(self, section: _Section) -> ParsedChecklist:
        key = section.anchor or KEY_SEPARATOR.join(section.key_parts)
        if len(key) > MAX_KEY:
            digest = hashlib.sha256(key.encode()).hexdigest()[:16]
            key = f"{key[: MAX_KEY - 17]}~{digest}"
        description = "\n\n".join(section.description)
        if len(description) > MAX_DESCRIPTION:
            raise self.error(
                section.line,
                f"the prose of this section is {len(description)} characters; "
                f"at most {MAX_DESCRIPTION}",
            )
        return ParsedChecklist(
            title=section.title,
            path=section.path,
            key=key,
            schedule=read_schedule([section.title, *reversed(section.path)]),
            description=description,
            items=section.items,
            line=section.line,
            explicit_key=bool(section.anchor),
        )

    def _check_anchors(self, checklists: list[ParsedChecklist]) -> None:
        seen: dict[str, int] = {}
        for checklist in checklists:
            if not checklist.explicit_key:
                continue
            if checklist.key in seen:
                raise self.error(
                    checklist.line,
                    f"the key {{#{checklist.key}}} is already used on line {seen[checklist.key]}",
                )
            seen[checklist.key] = checklist.line

    # Blocks directly in a section: items, the labels that group them, and prose.

    def section_block(self, node: SyntaxTreeNode, section: _Section) -> None:
        if node.type in ("bullet_list", "ordered_list"):
            for entry in node.children:
                self.section_list_item(entry, section)
        elif node.type == "blockquote":
            if _has_task(node):
                for child in node.children:
                    self.section_block(child, section)
            else:
                section.description.append(self.source(node))
        elif node.type == "paragraph" and (label := _bold_label(node)):
            section.label = label
        elif node.type == "html_block" and _is_comment(node.content):
            return
        elif node.type != "hr":
            section.description.append(self.source(node))

    def section_list_item(self, node: SyntaxTreeNode, section: _Section) -> None:
        if _is_task(node):
            for item in _unless_empty(self.item(node)):
                item.section = section.label
                section.items.append(item)
        elif _has_task(node):
            # A plain bullet over task items names their group: "- Mock run / - [ ] Stage".
            head, *rest = node.children
            outer = section.label
            label = self.inline_text(head) if head.type == "paragraph" else ""
            section.label = " › ".join(part for part in (outer, _plain(label)) if part)
            for child in rest if head.type == "paragraph" else node.children:
                self.section_block(child, section)
            section.label = outer
        else:
            section.description.append(self.source(node))

    # One task item and what is nested in it.

    def item(self, node: SyntaxTreeNode) -> ParsedItem:
        head, *rest = node.children
        item = ParsedItem(text=self.inline_text(head), line=_line(node))
        self._check_text(item.text, item.line)
        help_parts: list[str] = []
        commands: list[str] = []
        for child in rest:
            self.item_block(child, item, help_parts, commands)
        item.command = "\n\n".join(command for command in commands if command)
        item.help_text = "\n\n".join(part for part in help_parts if part)
        if len(item.command) > MAX_COMMAND:
            raise self.error(item.line, f"the item's commands are over {MAX_COMMAND} characters")
        if len(item.help_text) > MAX_HELP:
            raise self.error(item.line, f"the item's help text is over {MAX_HELP} characters")
        return item

    def item_block(
        self,
        node: SyntaxTreeNode,
        item: ParsedItem,
        help_parts: list[str],
        commands: list[str],
    ) -> None:
        if node.type in ("fence", "code_block"):
            # What indentation the lines share is the list item's, not the command's.
            commands.append(textwrap.dedent(node.content).strip("\n"))
        elif node.type in ("bullet_list", "ordered_list"):
            code_lines: list[str] = []
            for entry in node.children:
                if _is_task(entry):
                    item.children.extend(_unless_empty(self.item(entry)))
                elif _has_task(entry):
                    item.children.extend(_unless_empty(self.group(entry)))
                elif (code := _only_code(entry)) is not None:
                    code_lines.append(code)
                else:
                    help_parts.append(self.source(entry))
            if code_lines:
                commands.append("\n".join(code_lines))
        elif node.type == "blockquote" and _has_task(node):
            for child in node.children:
                self.item_block(child, item, help_parts, commands)
        elif node.type == "html_block" and _is_comment(node.content):
            return
        elif node.type != "hr":
            help_parts.append(self.source(node))

    def group(self, node: SyntaxTreeNode) -> ParsedItem:
        """A plain bullet nested in an item that holds task items: an item grouping them."""
        head, *rest = node.children
        group = ParsedItem(text=self.inline_text(head) if head.type == "paragraph" else "")
        group.line = _line(node)
        self._check_text(group.text, group.line)
        help_parts: list[str] = []
        commands: list[str] = []
        for child in rest if head.type == "paragraph" else node.children:
            self.item_block(child, group, help_parts, commands)
        group.command = "\n\n".join(commands)
        group.help_text = "\n\n".join(help_parts)
        return group

    def inline_text(self, paragraph: SyntaxTreeNode) -> str:
        """An item's inline Markdown on one line: HTML comments out, whitespace collapsed."""
        inline = paragraph.children[0] if paragraph.children else None
        if inline is None:
            return ""
        content = inline.content
        for child in inline.children:
            if child.type == "html_inline" and _is_comment(child.content):
                content = content.replace(child.content, " ", 1)
        content = re.sub(r"^\s*\[[ xX]\]\s+", "", content)
        text = " ".join(content.split())
        return _repair_mojibake(text)

    def source(self, node: SyntaxTreeNode) -> str:
        """The Markdown source of a block, dedented, without block-quote markers, with HTML
        comments left out."""
        if node.map is None:
            return ""
        start, end = node.map
        lines = self.lines[start:end]
        quote_depth = sum(1 for ancestor in _ancestors(node) if ancestor.type == "blockquote")
        for _ in range(quote_depth):
            lines = [re.sub(r"^\s{0,3}>\s?", "", line, count=1) for line in lines]
        lines = [line.expandtabs(4).rstrip() for line in lines]
        # The block's first line says how far it is indented; a lazy continuation line that
        # starts further left loses only what it has.
        first = next((line for line in lines if line), "")
        indent = len(first) - len(first.lstrip(" "))
        text = "\n".join(
            line[min(indent, len(line) - len(line.lstrip(" "))) :] for line in lines
        ).strip("\n")
        return _without_comments(text).strip("\n")

    def _check_text(self, text: str, line: int) -> None:
        if len(text) > MAX_ITEM_TEXT:
            raise self.error(line, f"item text is {len(text)} characters; at most {MAX_ITEM_TEXT}")

    def _check_nesting(self, tree: SyntaxTreeNode) -> None:
        """List items and block quotes at most MAX_NESTING deep, anywhere: deeper, the parser
        would stop reading (its own limit) and the rest of the file would be lost silently."""
        stack = [(child, 0) for child in reversed(tree.children)]
        while stack:
            node, depth = stack.pop()
            if node.type in ("list_item", "blockquote"):
                depth += 1
                if depth > MAX_NESTING:
                    raise self.error(_line(node), f"nested more than {MAX_NESTING} levels deep")
            stack.extend((child, depth) for child in reversed(node.children))


def _without_comments(text: str) -> str:
    """Text without its complete HTML comments; one never closed is left as it is. Linear: a
    pattern would rescan to the end from every unclosed "<!--"."""
    parts, position = [], 0
    while (start := text.find("<!--", position)) != -1:
        end = text.find("-->", start + 4)
        if end == -1:
            break
        parts.append(text[position:start])
        position = end + 3
    parts.append(text[position:])
    return "".join(parts)


def _unless_empty(item: ParsedItem) -> list[ParsedItem]:
    """An item whose text was only a comment ("- [ ] <!-- later -->") is no item; what is
    nested in it takes its place."""
    return [item] if item.text else item.children


def _line(node: SyntaxTreeNode) -> int:
    return node.map[0] + 1 if node.map else 0


def _ancestors(node: SyntaxTreeNode):
    parent = node.parent
    while parent is not None:
        yield parent
        parent = parent.parent


def _is_task(node: SyntaxTreeNode) -> bool:
    return node.type == "list_item" and "task-list-item" in str(node.attrs.get("class", ""))


def _has_task(node: SyntaxTreeNode) -> bool:
    return any(_is_task(child) or _has_task(child) for child in node.children)


def _is_comment(html: str) -> bool:
    stripped = html.strip()
    return stripped.startswith("<!--") and stripped.endswith("-->")


def _bold_label(paragraph: SyntaxTreeNode) -> str:
    """The text of a paragraph that is only bold text (a pseudo-heading), else ""."""
    inline = paragraph.children[0] if paragraph.children else None
    if inline is None:
        return ""
    children = [
        child
        for child in inline.children
        if not (child.type == "text" and not child.content.strip())
    ]
    if children and children[-1].type == "text" and children[-1].content.strip() == ":":
        children = children[:-1]
    if len(children) != 1 or children[0].type != "strong":
        return ""
    label = "".join(_node_text(children[0])).strip().rstrip(":").strip()
    return label[:MAX_SECTION_TITLE]


def _only_code(list_item: SyntaxTreeNode) -> str | None:
    """The code of a plain bullet that is nothing but one code span, else None."""
    if len(list_item.children) != 1 or list_item.children[0].type != "paragraph":
        return None
    inline = list_item.children[0].children[0]
    children = [child for child in inline.children if not _is_blank_text(child)]
    if len(children) == 1 and children[0].type == "code_inline":
        return children[0].content
    return None


def _is_blank_text(node: SyntaxTreeNode) -> bool:
    return node.type == "text" and not node.content.strip()


def _node_text(node: SyntaxTreeNode) -> list[str]:
    if node.type in ("text", "code_inline"):
        return [node.content]
    if node.type in ("softbreak", "hardbreak"):
        return [" "]
    return [part for child in node.children for part in _node_text(child)]


def _plain(markdown: str) -> str:
    """Plain text of a line of inline Markdown (for titles and labels)."""
    tree = SyntaxTreeNode(_MARKDOWN.parseInline(markdown))
    return " ".join("".join(_node_text(tree)).split())


# --- Cleaning titles ----------------------------------------------------------------------------

# Joiners and selectors that only shape an emoji: left alone they would survive its removal.
_EMOJI_COMPONENTS = frozenset("\u200d\u20e3\ufe0e\ufe0f")


def _clean_title(markdown: str) -> str:
    text = _plain(_repair_mojibake(markdown))
    return " ".join("".join(char for char in text if not _is_pictograph(char)).split())


def _slug(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _repair_mojibake(text: str) -> str:
    """Undo UTF-8 that was once read as Mac Roman or Windows-1252 and saved again.

    Seed 004's headings start with "üö®" where "🚨" was meant. Legible text almost never survives
    the round trip (a lone "é" is not valid UTF-8 once encoded), so each word is only replaced
    when it decodes cleanly.
    """
    if text.isascii():
        return text
    return re.sub(r"\S+", lambda match: _repair_word(match.group(0)), text)


def _repair_word(word: str) -> str:
    if word.isascii():
        return word
    for codec in ("mac_roman", "cp1252"):
        try:
            return word.encode(codec).decode("utf-8")
        except UnicodeError:
            continue
    return word


def _is_pictograph(char: str) -> bool:
    if char in _EMOJI_COMPONENTS:
        return True
    category = unicodedata.category(char)
    if category in ("So", "Co"):  # symbols and emoji; private use (the Apple logo of mojibake)
        return True
    if category == "Sk":  # skin-tone modifiers are the only emoji among modifier symbols
        return "\U0001f3fb" <= char <= "\U0001f3ff"
    # Emoji newer than this Python's Unicode tables are unassigned to it, but still emoji.
    return category == "Cn" and "\U0001f000" <= char <= "\U0001faff"


def _title_from_name(name: str) -> str:
    """A title for items written before any heading: the file's name in words."""
    stem = PurePosixPath(name.replace("\\", "/")).stem
    words = " ".join(re.sub(r"[-_.]+", " ", stem).split())
    return words[:1].upper() + words[1:] if words else "Runbook"
