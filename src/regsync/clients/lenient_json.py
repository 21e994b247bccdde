"""Parse JSON bodies that vendors publish broken: stray quotes in strings, trailing or missing commas.

Checkfront's own documented booking-session answer carries `title="Adults"` unescaped inside a
string, and Blackthorn's samples carry trailing commas. Strict parsing comes first; only when it
fails is the body repaired, conservatively, and parsed again.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_STRUCTURAL_AFTER_CLOSE = frozenset(",:}]")
_TRAILING_COMMA = re.compile(rb",(\s*[}\]])")
# A value ending a line and a key starting the next with no comma between (raw newlines never
# occur inside JSON strings, so this only matches between tokens).
_MISSING_COMMA = re.compile(rb'(["\d\]}]|true|false|null)([ \t\r]*\n\s*)(")')


def loads(body: bytes | str) -> Any:
    """Strict JSON first; on failure, repair quotes and trailing commas and try once more.

    Raises ValueError when the body cannot be made into JSON.
    """
    data = body.encode("utf-8") if isinstance(body, str) else body
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as first:
        repaired = _repair(data)
        if repaired == data:
            raise ValueError(f"not JSON: {first}") from None
        try:
            return orjson.loads(repaired)
        except orjson.JSONDecodeError:
            raise ValueError(f"not JSON: {first}") from None


def _repair(data: bytes) -> bytes:
    text = data.decode("utf-8", errors="strict")
    out: list[str] = []
    in_string = False
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if not in_string:
            if char == '"':
                in_string = True
            out.append(char)
        elif char == "\\":
            out.append(text[index : index + 2])
            index += 1
        elif char == '"':
            # A quote closes the string only if what follows is structural; otherwise it is a
            # stray quote inside the value (as in Checkfront's `title="Adults"`): escape it.
            # A line break after it also closes it: JSON strings never hold a raw newline.
            tail = text[index + 1 : index + 200]
            rest = tail.lstrip()
            gap = tail[: len(tail) - len(rest)]
            if not rest or rest[0] in _STRUCTURAL_AFTER_CLOSE or "\n" in gap:
                in_string = False
                out.append(char)
            else:
                out.append('\\"')
        else:
            out.append(char)
        index += 1
    repaired = _TRAILING_COMMA.sub(rb"\1", "".join(out).encode("utf-8"))
    return _MISSING_COMMA.sub(rb"\1,\2\3", repaired)
