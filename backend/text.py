"""What text the system accepts, written once: no lone UTF-16 surrogate (it cannot be encoded, so it broke
password hashing and the database drivers), no NUL (PostgreSQL refuses it, SQLite stored it inside
identifiers), no other control character — except tab, line feed and carriage return in free text.

``backend.web`` applies it to every request (query, path, form and multipart fields, file names, JSON
bodies); importers (iCalendar, legacy documents) use ``clean`` on the text they take from files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# C0 controls but tab/LF/CR, DEL, C1 controls, and surrogates (a pair is one character by the time JSON is
# decoded, so any surrogate left is a lone one)
_FREE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class BadCharacter:
    field: str       # where, printable: "password", "entry[0].resource.title", "query.q"
    codepoint: int

    @property
    def what_fr(self) -> str:
        if 0xD800 <= self.codepoint <= 0xDFFF:
            return f"demi-caractère UTF-16 isolé U+{self.codepoint:04X}"
        if self.codepoint == 0:
            return "caractère nul U+0000"
        return f"caractère de contrôle U+{self.codepoint:04X}"

    @property
    def what_en(self) -> str:
        if 0xD800 <= self.codepoint <= 0xDFFF:
            return f"lone UTF-16 surrogate U+{self.codepoint:04X}"
        if self.codepoint == 0:
            return "null character U+0000"
        return f"control character U+{self.codepoint:04X}"


def bad_character(value: str, *, multiline: bool) -> int | None:
    """The code point of the first character refused in ``value``, or None."""
    found = (_FREE_TEXT if multiline else _ONE_LINE).search(value)
    return ord(found.group()) if found else None


def printable(name: str) -> str:
    """A field name as it may be shown back (it may itself hold the refused character)."""
    return _ONE_LINE.sub(lambda m: f"\\u{ord(m.group()):04x}", name)[:200]


def clean(value: str, *, multiline: bool = True) -> str:
    """Text taken from a file (not from a person at a form): refused characters are dropped."""
    return (_FREE_TEXT if multiline else _ONE_LINE).sub("", value)


def find_in_json(document: Any, path: str = "") -> BadCharacter | None:
    """The first refused character of a decoded JSON document: in keys (one line) and string values (free
    text: tab and new lines allowed)."""
    stack: list[tuple[str, Any]] = [(path, document)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str):
            codepoint = bad_character(node, multiline=True)
            if codepoint is not None:
                return BadCharacter(printable(where) or "(corps)", codepoint)
        elif isinstance(node, dict):
            children = []
            for key, value in node.items():
                name = f"{where}.{key}" if where else str(key)
                codepoint = bad_character(str(key), multiline=False)
                if codepoint is not None:
                    return BadCharacter(printable(name), codepoint)
                children.append((name, value))
            stack.extend(reversed(children))
        elif isinstance(node, list):
            for index in range(len(node) - 1, -1, -1):
                stack.append((f"{where}[{index}]", node[index]))
    return None
