"""Edits of schema.pbtxt as text, keeping every comment: what a proposal changes, exactly.

TFDV's `write_schema_text` drops all comments, and the curated schema explains its ranges and
thresholds in comments. So a proposal is a small list of `Edit`s applied to the text (insert
lines at the end of a block, replace one line inside a block, insert a block after the last
block of a type); the drafting step (pipelines/proposals/draft.py, tfdv environment) checks
that the edited text parses to exactly the schema TFDV's `update_schema` proposes.

Standard library only: an approval re-applies the edits to the schema as it is then (another
proposal may have been approved meanwhile) and checks that the diff adds and removes exactly
the lines the curator saw (`same_change`), in any environment.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass
from typing import Any

INSERT_AT_END, REPLACE_LINE, INSERT_AFTER_LAST = (
    "insert_at_end",
    "replace_line",
    "insert_after_last",
)
INDENT = "  "


class EditConflict(ValueError):
    """The schema text has no place for the edit (a block is gone, a line is not there)."""


@dataclass(frozen=True)
class Edit:
    """One change of the text.

    INSERT_AT_END: `lines` go before the closing brace of the top-level block `block` named
    `name` (e.g. a value at the end of string_domain "purpose": categories are appended, never
    inserted, since a category's code is its position: mlsys.features.Feature.code_of).
    REPLACE_LINE: inside that block, the one line whose stripped text starts with `match` is
    replaced by `lines`, indented as it was. INSERT_AFTER_LAST: `lines` (a whole block) go after the last top-level
    block of type `block` (at the end of the text when there is none).
    """

    op: str
    block: str
    name: str = ""
    match: str = ""
    lines: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Edit:
        return cls(**(data | {"lines": tuple(data.get("lines", ()))}))


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')


def _code(line: str) -> str:
    """A line without its string literals and comment: what braces are counted on."""
    return _STRING.sub('""', line).split("#", 1)[0]


@dataclass(frozen=True)
class Block:
    kind: str  # 'feature', 'string_domain', ...
    name: str  # its `name:` field ('' when it has none)
    start: int  # index of the line opening it
    end: int  # index of the line holding its closing brace


def top_level_blocks(lines: list[str]) -> list[Block]:
    """The top-level `kind { ... }` blocks of a text-format file, with their `name:` field."""
    blocks: list[Block] = []
    depth, start, kind, name = 0, -1, "", ""
    for i, line in enumerate(lines):
        code = _code(line)
        if depth == 0:
            opened = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*:?\s*\{", code)
            if opened:
                start, kind, name = i, opened.group(1), ""
        elif depth == 1 and not name:
            named = re.match(r'\s*name\s*:\s*("(?:[^"\\]|\\.)*")', line)
            if named:
                name = _unquote(named.group(1))
        before = depth
        depth += code.count("{") - code.count("}")
        if depth < 0:
            raise EditConflict(f"unbalanced braces at line {i + 1}")
        if depth == 0 and start >= 0 and (before > 0 or start == i):
            blocks.append(Block(kind, name, start, i))
            start = -1
    return blocks


def _unquote(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def quote(text: str) -> str:
    """A string literal of protobuf's text format (backslash, quote and control characters
    escaped as text_format writes them)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _find(blocks: list[Block], kind: str, name: str) -> Block:
    found = [b for b in blocks if b.kind == kind and b.name == name]
    if len(found) != 1:
        raise EditConflict(f"{len(found)} {kind} blocks named {name!r} (need exactly one)")
    return found[0]


def apply_edit(text: str, edit: Edit) -> str:
    """The text with one edit applied; EditConflict when it has no place for it."""
    lines = text.splitlines(keepends=True)
    blocks = top_level_blocks(lines)
    new = [line + "\n" for line in edit.lines]
    if edit.op == INSERT_AT_END:
        block = _find(blocks, edit.block, edit.name)
        lines[block.end : block.end] = new
    elif edit.op == REPLACE_LINE:
        block = _find(blocks, edit.block, edit.name)
        hits = [
            i for i in range(block.start + 1, block.end) if lines[i].strip().startswith(edit.match)
        ]
        if len(hits) != 1:
            raise EditConflict(
                f"{len(hits)} lines starting with {edit.match!r} in {edit.block} {edit.name!r}"
            )
        indent = lines[hits[0]][: len(lines[hits[0]]) - len(lines[hits[0]].lstrip())]
        lines[hits[0] : hits[0] + 1] = [indent + line for line in new]
    elif edit.op == INSERT_AFTER_LAST:
        same = [b for b in blocks if b.kind == edit.block]
        at = same[-1].end + 1 if same else len(lines)
        if at == len(lines) and lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines[at:at] = new
    else:
        raise EditConflict(f"unknown edit {edit.op!r}")
    return "".join(lines)


def apply_edits(text: str, edits: list[Edit] | tuple[Edit, ...]) -> str:
    for edit in edits:
        text = apply_edit(text, edit)
    return text


def unified_diff(old: str, new: str, *, old_name: str, new_name: str) -> str:
    """A unified diff of two schema texts (3 lines of context), as `diff -u` prints it."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=old_name,
            tofile=new_name,
        )
    )


def changed_lines(diff: str) -> list[str]:
    """The removed and added lines of a unified diff, in order, without context."""
    return [
        line.rstrip("\n")
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def same_change(diff_a: str, diff_b: str) -> bool:
    """Do two diffs remove and add the same lines (wherever their context now is)?"""
    return changed_lines(diff_a) == changed_lines(diff_b)
