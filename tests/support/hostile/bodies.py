"""Raw bodies through the lenient JSON parser: vendor-style breakage it must repair exactly, or refuse."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from regsync.clients import lenient_json
from tests.support.hostile.outcomes import HostileFailure, Outcome, require_reason, show
from tests.support.hostile.values import deep_json_text

_SAFE = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789 .-_<>/=;$@"), max_size=12)
_WORD = st.text(st.sampled_from("ABCDEFGHIJKLMNOPabcdefghijklmnop0123456789"), min_size=1, max_size=8)
_JSON_DOC_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        _SAFE,
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_WORD, inner, min_size=1, max_size=4)
    ),
    max_leaves=15,
)


@dataclass(frozen=True)
class BrokenBody:
    """A JSON document and the bytes a vendor sent for it; `repairable` when the break is one the
    parser documents it repairs (then any parse must give back exactly `document`)."""

    document: Any
    body: bytes
    repairable: bool
    breaks: tuple[str, ...]


_MARKUP = "\x01MARKUP\x01"  # placeholder for the one value that carries unescaped inner quotes


@st.composite
def vendor_broken_bodies(draw: st.DrawFn) -> BrokenBody:
    """Valid JSON broken the ways vendors' published examples are: an unescaped `title="..."` inside
    a string, a trailing comma, a missing comma between members on separate lines."""
    document = draw(st.dictionaries(_WORD, _JSON_DOC_VALUES, min_size=1, max_size=5))
    breaks: list[str] = []
    markup_value = None
    if draw(st.booleans()):
        word, text = draw(_WORD), draw(_WORD)
        markup_value = f'<strong title="{word}">{text}:</strong> 1 Day'
        document = {**document, "summary": _MARKUP}
        breaks.append("stray quotes")
    text = json.dumps(document, indent=1)
    if markup_value is not None:
        document = {**document, "summary": markup_value}
        text = text.replace(json.dumps(_MARKUP), '"' + markup_value + '"')
    lines = text.split("\n")
    if draw(st.booleans()):
        closers = [i for i, line in enumerate(lines) if line.strip() in ("}", "]", "},", "],") and i > 0]
        if closers:
            at = draw(st.sampled_from(closers))
            if not lines[at - 1].rstrip().endswith((",", "{", "[")):
                lines[at - 1] = lines[at - 1] + ","
                breaks.append("trailing comma")
    if draw(st.booleans()):
        droppable = [
            i
            for i in range(len(lines) - 1)
            if lines[i].endswith(",")
            and lines[i + 1].lstrip().startswith('"')
            and (
                lines[i][-2:-1] in ('"', "]", "}")
                or lines[i][-2:-1].isdigit()
                or lines[i].endswith(("true,", "false,", "null,"))
            )
        ]
        if droppable:
            at = draw(st.sampled_from(droppable))
            lines[at] = lines[at][:-1]
            breaks.append("missing comma")
    return BrokenBody(document, "\n".join(lines).encode(), True, tuple(breaks))


broken_bodies = st.one_of(
    vendor_broken_bodies(),
    st.binary(max_size=300).map(lambda b: BrokenBody(None, b, False, ("bytes",))),
    _JSON_DOC_VALUES.flatmap(
        lambda doc: st.integers(min_value=0, max_value=len(json.dumps(doc))).map(
            lambda cut: BrokenBody(None, json.dumps(doc).encode()[:cut], False, ("truncated",))
        )
    ),
    deep_json_text.map(lambda text: BrokenBody(None, text.encode(), False, ("deep",))),
    st.sampled_from(
        [
            b'"\\ud800"',
            b'{"a": "\\udc00x"}',
            b"\xff\xfe{}",
            b"NaN",
            b'{"a": 1e400}',
            b"[1,2,]]",
            b'{"a":"b"""}',
        ]
    ).map(lambda b: BrokenBody(None, b, False, ("edge",))),
)


def probe_lenient_json(broken: BrokenBody) -> Outcome:
    try:
        parsed = lenient_json.loads(broken.body)
    except ValueError as exc:
        require_reason("lenient_json", str(exc), broken.body)
        return "rejected"
    if broken.repairable and parsed != broken.document:
        raise HostileFailure(
            f"lenient_json: repaired {', '.join(broken.breaks) or 'nothing'} into different data: "
            f"{show(parsed)} instead of {show(broken.document)}"
        )
    return "accepted"
