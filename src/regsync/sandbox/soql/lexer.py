"""SOQL tokens: the scanner, string literals and their escapes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from regsync.sandbox.soql.errors import MALFORMED, SoqlError, _located

_IDENT, _STRING, _NUMBER, _DATE, _DATETIME, _OP, _PUNCT, _EOF = (
    "ident",
    "string",
    "number",
    "date",
    "datetime",
    "op",
    "punct",
    "eof",
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str  # source text; for strings the raw body between the quotes (escapes undecoded)
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == _IDENT else ""

    def shown(self) -> str:
        if self.kind == _EOF:
            return "<EOF>"
        return f"'{self.text}'"


_SCAN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T[^\s,()]*)
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>[+-]?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),.:])
    """,
    re.VERBOSE,
)

_RUN = re.compile(r"[^\s,()]*")  # a literal up to the next separator, for error messages

# Escape sequences Salesforce accepts inside a quoted string. `\%` and `\_` only mean something
# in a LIKE pattern; elsewhere they stand for themselves, backslash included.
_ESCAPES = {
    "'": "'",
    '"': '"',
    "\\": "\\",
    "n": "\n",
    "N": "\n",
    "r": "\r",
    "R": "\r",
    "t": "\t",
    "T": "\t",
    "b": "\b",
    "B": "\b",
    "f": "\f",
    "F": "\f",
}
_LIKE_ONLY_ESCAPES = "%_"


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos, size = 0, len(text)
    while pos < size:
        char = text[pos]
        if char == "'":
            tokens.append(_scan_string(text, pos))
            pos = tokens[-1].pos + len(tokens[-1].text) + 2
            continue
        match = _SCAN.match(text, pos)
        if match is None:
            hint = ""
            if char == '"':
                hint = " (SOQL strings use single quotes)"
            elif char == "*":
                hint = " (SOQL has no SELECT *: list the fields)"
            raise SoqlError(MALFORMED, _located(text, pos, f"unexpected token: '{char}'{hint}"))
        kind = match.lastgroup
        assert kind is not None
        end = match.end()
        if kind != "ws":
            if kind in (_NUMBER, _DATE, _DATETIME) and end < size and _glued(text[end]):
                bad = _RUN.match(text, pos).group()  # type: ignore[union-attr]
                raise SoqlError(MALFORMED, _located(text, pos, f"unexpected token: '{bad}'"))
            tokens.append(_Token(kind, match.group(), pos))
        pos = end
    tokens.append(_Token(_EOF, "", size))
    return tokens


def _glued(char: str) -> bool:
    """A literal may not run straight into letters, digits, dots or colons (`5abc`, `1.2.3`)."""
    return char.isalnum() or char in "_.:"


def _scan_string(text: str, start: int) -> _Token:
    pos = start + 1
    size = len(text)
    while pos < size:
        char = text[pos]
        if char == "\\":
            if pos + 1 >= size:
                break
            escaped = text[pos + 1]
            if escaped not in _ESCAPES and escaped not in _LIKE_ONLY_ESCAPES:
                close = text.find("'", pos + 2)
                body = text[start + 1 : close if close != -1 else size]
                raise SoqlError(
                    MALFORMED,
                    _located(
                        text,
                        pos,
                        f"Invalid string literal '{body}'. Illegal character sequence "
                        f"'\\{escaped}' in string literal.",
                    ),
                )
            pos += 2
            continue
        if char == "'":
            return _Token(_STRING, text[start + 1 : pos], start)
        pos += 1
    raise SoqlError(
        MALFORMED,
        _located(text, start, "unterminated string literal: missing closing quote (')"),
    )


def _decode(raw: str) -> str:
    """The value of a quoted string outside LIKE."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        char = raw[pos]
        if char == "\\":
            escaped = raw[pos + 1]
            out.append("\\" + escaped if escaped in _LIKE_ONLY_ESCAPES else _ESCAPES[escaped])
            pos += 2
        else:
            out.append(char)
            pos += 1
    return "".join(out)
