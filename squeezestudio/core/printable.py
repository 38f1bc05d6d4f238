"""Strings from files, made safe to show in a terminal or a window.

Class names, model names, layer names and error messages that quote them
come from files written by anyone. Printed raw, an ESC sequence clears the
screen or sets the window title, OSC 52 writes the clipboard, a newline
followed by ``error:`` forges a line of our own output, and bidirectional
overrides reorder what the reader sees. :func:`printable` escapes every such
character the way Python's ``repr`` would (``\\x1b``, ``\\n``, ``\\u202e``), so
the text stays readable and nothing in it acts.
"""

from __future__ import annotations

import unicodedata

_SAFE_CATEGORIES_EXCLUDED = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_MAX_SHOWN = 2000


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable_lines(text: str) -> str:
    """Multi-line output of our own (a table) with every line made printable, the newlines kept."""
    return "\n".join(printable(line, max_length=max(len(line), _MAX_SHOWN)) for line in text.split("\n"))


def printable(text: object, max_length: int = _MAX_SHOWN) -> str:
    """``text`` with control, format and separator characters escaped, and cut to ``max_length``."""
    s = text if isinstance(text, str) else str(text)
    if s.isprintable() and len(s) <= max_length:
        return s
    out = []
    for ch in s[:max_length]:
        if ch == " " or unicodedata.category(ch) not in _SAFE_CATEGORIES_EXCLUDED:
            out.append(ch)
        else:
            out.append(_escape(ch))
    shown = "".join(out)
    return shown if len(s) <= max_length else f"{shown}... ({len(s) - max_length:,d} more characters)"
