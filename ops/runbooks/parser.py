"""Read Markdown runbooks into checklist templates.

Plain Python with no Django import, so the importer, a management command and the tests can all
use it and it can be tested on a file alone.

What becomes a checklist
    Every heading (ATX ``#`` to ``######``, or setext ``===``/``---`` under a line at column 0)
    whose own section, the lines up to the next heading of any level, holds task-list items.
    Task items written before the first heading form a checklist titled after the file:
    ``daily-ops.md`` gives "Daily ops" (see ``_title_from_name``).

What becomes an item
    ``- [ ]``, ``* [ ]``, ``+ [ ]``, ``1. [ ]`` and ``1) [ ]``. A ticked box (``[x]``) is read
    like an empty one: a template has no state, and seeds tick boxes to record a past launch.
    A task item indented deeper than the one before it is its child. Below an item:

    - a fenced block indented under it is its ``command`` (several are joined by a blank line);
    - a line that directly continues the item's line is part of its text, as Markdown renders it;
    - other text indented under it (prose, plain bullets) is its ``help_text``, kept as Markdown
      source and dedented, one line per paragraph or bullet (wrapped lines are joined, blank
      lines dropped), so it reads well as plain text too.

    Anything not indented under an item (a table, a fence at column 0, prose) is not part of it.
    Everything inside a fenced block is code: no headings, no items.

What is inferred from the headings
    - ``cadence``: the first cadence word in the heading, else in its parents, nearest first;
    - ``due_time``: a time in the heading itself ("9 AM UTC", "6 pm", "14:30"); a zone is not
      read, the portal applies its own;
    - ``estimated_minutes``: a parenthesised duration ("(10 minutes)", "(2 hours)") in the
      heading or, failing that, the nearest parent that has one.
"""

from __future__ import annotations

import datetime
import re
import textwrap
import unicodedata
from dataclasses import dataclass, field
from pathlib import PurePosixPath

DAILY = "daily"
WEEKLY = "weekly"
MONTHLY = "monthly"
QUARTERLY = "quarterly"
ON_DEMAND = "on-demand"
CADENCES = (DAILY, WEEKLY, MONTHLY, QUARTERLY, ON_DEMAND)

_CADENCE_WORDS = {
    "daily": DAILY,
    "morning": DAILY,
    "midday": DAILY,
    "evening": DAILY,
    "shift": DAILY,
    "weekly": WEEKLY,
    "monthly": MONTHLY,
    "quarterly": QUARTERLY,
}


@dataclass
class ParsedItem:
    text: str  # plain text: no emphasis or link markup, code spans without their backticks
    command: str = ""  # the fenced blocks nested in the item, dedented, joined by a blank line
    help_text: str = ""  # the prose and plain bullets nested in the item, as Markdown lines
    children: list[ParsedItem] = field(default_factory=list)


@dataclass
class ParsedChecklist:
    title: str  # the heading without emoji or Markdown markup
    path: list[str]  # the titles of the enclosing headings, outermost first
    cadence: str  # one of CADENCES
    due_time: datetime.time | None
    estimated_minutes: int | None
    items: list[ParsedItem]


class RunbookError(ValueError):
    """A runbook that cannot be imported; the message is one line and starts with its name."""


def parse_runbook(data: bytes, *, name: str) -> list[ParsedChecklist]:
    """The checklists of a Markdown runbook, in document order."""
    text = _decode(data, name=name)
    if not text.strip():
        raise RunbookError(f"{name}: is empty")
    checklists = _build_checklists(_scan(text.split("\n")), file_title=_title_from_name(name))
    if not checklists:
        raise RunbookError(f"{name}: contains no task-list items (- [ ] ...)")
    return checklists


def checklist_as_dict(checklist: ParsedChecklist) -> dict:
    """A JSON-ready copy of a checklist, for previews, logs and tests."""
    due_time = checklist.due_time
    return {
        "title": checklist.title,
        "path": list(checklist.path),
        "cadence": checklist.cadence,
        "due_time": due_time.strftime("%H:%M") if due_time else None,
        "estimated_minutes": checklist.estimated_minutes,
        "items": [_item_as_dict(item) for item in checklist.items],
    }


def _item_as_dict(item: ParsedItem) -> dict:
    return {
        "text": item.text,
        "command": item.command,
        "help_text": item.help_text,
        "children": [_item_as_dict(child) for child in item.children],
    }


# --- Bytes to lines -----------------------------------------------------------------------------


def _decode(data: bytes, *, name: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        byte = data[error.start]
        raise RunbookError(
            f"{name}: not valid UTF-8 (byte 0x{byte:02x} at offset {error.start})"
        ) from None
    # Editors on Windows write a BOM and CRLF; neither may reach the Markdown rules below.
    text = text.removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- Lines to blocks ----------------------------------------------------------------------------
# A first pass turns lines into blocks, so fenced code is set aside (and its content never read
# as headings or items) before a second pass builds the checklists.


@dataclass
class _Heading:
    level: int
    text: str


@dataclass
class _Task:
    indent: int
    text: str


@dataclass
class _Text:
    """Any other non-blank line: prose, a plain bullet, a table row, a rule."""

    indent: int
    text: str
    # A plain bullet, a rule, a quote or a table row starts a block of its own, so unlike prose
    # it never continues the line above.
    starts_block: bool


@dataclass
class _Fence:
    indent: int
    body: str


@dataclass
class _Blank:
    pass


_Block = _Heading | _Task | _Text | _Fence | _Blank

_ATX_HEADING_RE = re.compile(r"(#{1,6})(?:[ \t]+(.*))?$")
_SETEXT_UNDERLINE_RE = re.compile(r"(=+|-+)[ \t]*$")
_FENCE_OPEN_RE = re.compile(r"(`{3,}(?=[^`]*$)|~{3,})")
_TASK_RE = re.compile(r"(?:[-*+]|\d{1,9}[.)])[ \t]+\[[ xX]\][ \t]+(\S.*)$")
_BLOCK_START_RE = re.compile(
    r"(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)"  # a plain list item
    r"|([-*_])[ \t]*(?:\1[ \t]*){2,}$"  # a thematic break
    r"|[>|]"  # a block quote or a table row
)


def _scan(lines: list[str]) -> list[_Block]:
    blocks: list[_Block] = []
    index = 0
    while index < len(lines):
        indent, rest = _split_indent(lines[index])
        index += 1
        if opener := _FENCE_OPEN_RE.match(rest):
            body, index = _read_fence(lines, index, indent=indent, marker=opener.group(1))
            blocks.append(_Fence(indent, body))
        elif indent <= 3 and _SETEXT_UNDERLINE_RE.match(rest):
            if not _underline_paragraph(blocks, level=1 if rest.startswith("=") else 2):
                # A rule, or a line of "=" under nothing: either way it continues no paragraph,
                # which also keeps the walk back in _underline_paragraph linear.
                blocks.append(_Text(indent, rest, starts_block=True))
        else:
            blocks.append(_classify(indent, rest))
    return blocks


def _split_indent(line: str) -> tuple[int, str]:
    """The column of a line's first non-blank character, tabs stopping every 4, and the rest."""
    column = 0
    for position, char in enumerate(line):
        if char == " ":
            column += 1
        elif char == "\t":
            column += 4 - column % 4
        else:
            return column, line[position:]
    return column, ""


def _classify(indent: int, rest: str) -> _Block:
    if not rest:
        return _Blank()
    if indent <= 3 and (heading := _ATX_HEADING_RE.match(rest)):
        return _Heading(len(heading.group(1)), _strip_closing_hashes(heading.group(2) or ""))
    if task := _TASK_RE.match(rest):
        return _Task(indent, task.group(1))
    return _Text(indent, rest, starts_block=bool(_BLOCK_START_RE.match(rest)))


def _strip_closing_hashes(text: str) -> str:
    """Drop an ATX heading's optional closing sequence: "Title ##" is "Title", "C#" stays."""
    text = text.rstrip(" \t")
    without = text.rstrip("#")
    if without != text and (not without or without[-1] in " \t"):
        return without.rstrip(" \t")
    return text


def _read_fence(lines: list[str], index: int, *, indent: int, marker: str) -> tuple[str, int]:
    """The body of a fence opened just before ``index``, and the index after it."""
    body: list[tuple[int, str]] = []
    while index < len(lines):
        line_indent, rest = _split_indent(lines[index])
        if _closes_fence(rest, marker):
            return _fence_body(body, indent), index + 1
        if indent and rest and line_indent < indent:
            # An indented fence lives in a list item, and a less indented line ends the item
            # and the fence with it (as in CommonMark), so a forgotten closing fence cannot
            # swallow the rest of the runbook.
            return _fence_body(body, indent), index
        body.append((line_indent, rest))
        index += 1
    return _fence_body(body, indent), index


def _closes_fence(rest: str, marker: str) -> bool:
    """A run of the opening character, at least as long as the opening one, and nothing else."""
    rest = rest.rstrip()
    return len(rest) >= len(marker) and rest == marker[0] * len(rest)


def _fence_body(lines: list[tuple[int, str]], indent: int) -> str:
    # Content lines lose the opening fence's indentation; what indentation is left in common is
    # an accident of the list item, not part of the command.
    text = "\n".join(" " * max(column - indent, 0) + rest.rstrip() for column, rest in lines)
    return textwrap.dedent(text).strip("\n")


def _underline_paragraph(blocks: list[_Block], *, level: int) -> bool:
    """Turn the paragraph just above a setext underline into a heading, if there is one."""
    start = len(blocks)
    while start and _is_paragraph_line(blocks[start - 1]):
        start -= 1
    # Only a paragraph at column 0 that opens the file or follows a blank line, a heading or a
    # fence: a line that merely continues a list item does not become a heading in CommonMark.
    before = blocks[start - 1] if start else _Blank()
    if start == len(blocks) or not isinstance(before, _Blank | _Heading | _Fence):
        return False
    text = " ".join(block.text for block in blocks[start:] if isinstance(block, _Text))
    blocks[start:] = [_Heading(level, text)]
    return True


def _is_paragraph_line(block: _Block) -> bool:
    return isinstance(block, _Text) and block.indent == 0 and not block.starts_block


# --- Blocks to checklists -----------------------------------------------------------------------


def _build_checklists(blocks: list[_Block], *, file_title: str) -> list[ParsedChecklist]:
    checklists: list[ParsedChecklist] = []
    parents: list[tuple[int, str]] = []  # (level, cleaned title) of the enclosing headings
    # Items before the first heading make a checklist named after the file.
    title, path, tree = file_title, [], _ItemTree()
    for block in blocks:
        if not isinstance(block, _Heading):
            tree.add(block)
            continue
        if items := tree.close():
            checklists.append(_make_checklist(title, path, items))
        while parents and parents[-1][0] >= block.level:
            parents.pop()
        heading = _clean_heading(block.text)
        # A heading of nothing but an emoji still owns its items; it borrows the file's name.
        title = heading or file_title
        path = [text for _, text in parents if text]
        tree = _ItemTree()
        parents.append((block.level, heading))
    if items := tree.close():
        checklists.append(_make_checklist(title, path, items))
    return checklists


def _make_checklist(title: str, path: list[str], items: list[ParsedItem]) -> ParsedChecklist:
    nearest_first = [title, *reversed(path)]
    return ParsedChecklist(
        title=title,
        path=path,
        cadence=_infer_cadence(nearest_first),
        due_time=_parse_due_time(title),
        estimated_minutes=_find_estimate(nearest_first),
        items=items,
    )


@dataclass
class _OpenItem:
    """An item whose lines are still being read; its fields are filled in when it closes."""

    indent: int
    item: ParsedItem
    text_lines: list[str]  # one paragraph, however many lines it was wrapped over
    help_lines: list[tuple[int, list[str]]] = field(default_factory=list)  # (indent, paragraph)
    commands: list[str] = field(default_factory=list)


class _ItemTree:
    """One section's task items, nested by indentation."""

    def __init__(self) -> None:
        self._items: list[ParsedItem] = []
        self._open: list[_OpenItem] = []  # the innermost open item last
        self._paragraph: list[str] | None = None  # what a next line of prose continues

    def add(self, block: _Task | _Text | _Fence | _Blank) -> None:
        if isinstance(block, _Blank):
            self._paragraph = None
            return
        if isinstance(block, _Text) and self._paragraph is not None and not block.starts_block:
            # Markdown wraps a paragraph onto the next line, however that line is indented.
            self._paragraph.append(block.text)
            return
        self._paragraph = None
        # Whatever starts at or left of an item's marker is no longer inside that item.
        self._close_items_from(block.indent)
        if isinstance(block, _Task):
            self._open_item(block)
        elif not self._open:
            return
        elif isinstance(block, _Fence):
            self._open[-1].commands.append(block.body)
        else:
            self._paragraph = [block.text]
            self._open[-1].help_lines.append((block.indent, self._paragraph))

    def close(self) -> list[ParsedItem]:
        self._close_items_from(0)
        return self._items

    def _open_item(self, task: _Task) -> None:
        item = ParsedItem(text="")
        siblings = self._open[-1].item.children if self._open else self._items
        siblings.append(item)
        self._paragraph = [task.text]
        self._open.append(_OpenItem(task.indent, item, text_lines=self._paragraph))

    def _close_items_from(self, column: int) -> None:
        """Close the open items whose marker stands at ``column`` or right of it."""
        while self._open and self._open[-1].indent >= column:
            _finish_item(self._open.pop())


def _finish_item(open_item: _OpenItem) -> None:
    item = open_item.item
    item.text = _clean_inline(" ".join(open_item.text_lines))
    item.command = "\n\n".join(command for command in open_item.commands if command)
    if open_item.help_lines:
        # Dedented so the shallowest line starts at column 0; deeper bullets keep their nesting.
        base = min(indent for indent, _ in open_item.help_lines)
        item.help_text = "\n".join(
            " " * (indent - base) + " ".join(line.strip() for line in paragraph)
            for indent, paragraph in open_item.help_lines
        )


# --- Cleaning text ------------------------------------------------------------------------------

_CODE_SPAN_RE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_ESCAPE_RE = re.compile(r"\\([!-/:-@\[-`{-~])")
_PLACEHOLDER_RE = re.compile(r"\x00(\d+)\x00")
# No pattern below may scan past the next delimiter of its kind: text comes from uploaded files,
# and a pattern that can rescan to the end of the line from every "[" or "*" is quadratic.
_LINK_RE = re.compile(r"!?\[([^\[\]]*)\](?:\([^()]*\)|\[[^\[\]]*\])")
_AUTOLINK_RE = re.compile(r"<((?:https?|mailto|ftp):[^<>\s]+)>")


def _emphasis(marker: str, *, within_words: bool) -> re.Pattern[str]:
    # Markers must hug their text, as in Markdown, so "5 * 3 * 2" survives; underscores do not
    # work inside words, so snake_case_names survive too.
    char = re.escape(marker[0])
    pattern = rf"{re.escape(marker)}([^{char}\s](?:[^{char}]*[^{char}\s])?){re.escape(marker)}"
    return re.compile(pattern if within_words else rf"(?<!\w){pattern}(?!\w)")


# Strong before emphasis, so "**a**" is not read as "*" + "*a*" + "*".
_EMPHASIS_RES = (
    _emphasis("**", within_words=True),
    _emphasis("__", within_words=False),
    _emphasis("~~", within_words=True),
    _emphasis("*", within_words=True),
    _emphasis("_", within_words=False),
)
_EMPHASIS_PASSES = 3  # each pass undoes one level of nesting, as in "**a *b* c**"
# Joiners and selectors that only shape an emoji: left alone they would survive its removal.
_EMOJI_COMPONENTS = frozenset("\u200d\u20e3\ufe0e\ufe0f")


def _clean_heading(text: str) -> str:
    text = _clean_inline(text)
    return " ".join("".join(char for char in text if not _is_pictograph(char)).split())


def _clean_inline(text: str) -> str:
    """Plain text of inline Markdown: no emphasis, links reduced to their text, code unquoted."""
    text = _repair_mojibake(text.replace("\x00", ""))
    # Code spans and escaped characters are literal: set them aside while markers are removed.
    kept: list[str] = []

    def keep(literal: str) -> str:
        kept.append(literal)
        return f"\x00{len(kept) - 1}\x00"

    text = _CODE_SPAN_RE.sub(lambda match: keep(match.group(2).strip()), text)
    text = _ESCAPE_RE.sub(lambda match: keep(match.group(1)), text)
    text = _LINK_RE.sub(r"\1", text)
    text = _AUTOLINK_RE.sub(r"\1", text)
    for _ in range(_EMPHASIS_PASSES):
        before = text
        for emphasis in _EMPHASIS_RES:
            text = emphasis.sub(r"\1", text)
        if text == before:
            break
    text = _PLACEHOLDER_RE.sub(lambda match: kept[int(match.group(1))], text)
    return " ".join(text.split())


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


# --- Inferring from headings --------------------------------------------------------------------

_CADENCE_RE = re.compile(r"\b(" + "|".join(_CADENCE_WORDS) + r")\b", re.IGNORECASE)
_TIME_12H_RE = re.compile(r"\b(1[0-2]|0?[1-9])(?::([0-5]\d))?\s*([ap])\.?\s*m\b", re.IGNORECASE)
_TIME_24H_RE = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b")
_ESTIMATE_RE = re.compile(
    r"\(\s*(?:~|about\s+|approx\.?\s+)?(?:\d+(?:\.\d+)?\s*[-\u2013]\s*)?"
    r"(\d+(?:\.\d+)?)\s*(minutes?|mins?|m|hours?|hrs?|h)\s*\)",
    re.IGNORECASE,
)


def _infer_cadence(headings_nearest_first: list[str]) -> str:
    """The first cadence word of the nearest heading that has one (leftmost in that heading)."""
    for heading in headings_nearest_first:
        if match := _CADENCE_RE.search(heading):
            return _CADENCE_WORDS[match.group(1).lower()]
    return ON_DEMAND


def _parse_due_time(heading: str) -> datetime.time | None:
    if match := _TIME_12H_RE.search(heading):
        afternoon = match.group(3).lower() == "p"
        hour = int(match.group(1)) % 12 + (12 if afternoon else 0)
        return datetime.time(hour, int(match.group(2) or 0))
    if match := _TIME_24H_RE.search(heading):
        return datetime.time(int(match.group(1)), int(match.group(2)))
    return None


def _find_estimate(headings_nearest_first: list[str]) -> int | None:
    """Minutes of the nearest "(N minutes)" or "(N hours)"; a range counts as its upper end."""
    for heading in headings_nearest_first:
        if match := _ESTIMATE_RE.search(heading):
            amount, unit = float(match.group(1)), match.group(2).lower()
            return round(amount * 60 if unit.startswith("h") else amount)
    return None
