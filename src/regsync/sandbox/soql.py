"""A strict SOQL subset for the Salesforce emulator: it answers as Salesforce would, or refuses."""

# Shape of the module:
#   parse()          text -> ParsedQuery (syntax only; MALFORMED_QUERY on anything outside the subset)
#   bind()           ParsedQuery + schemas -> Query (names resolved to canonical case, literals
#                    type-checked and converted to the rows' wire representation)
#   compile_filter() Query -> one closure tree built once, so a row costs a few Python calls
#   execute()        filter, order (one C-keyed sort per key, later keys only on tied runs), offset, limit
#
# Null semantics follow SOQL, which is not SQL's three-valued logic: a null is a value for
# equality, so `f != 'x'` and `f NOT IN ('x')` DO match rows where f is null, while `<`, `<=`,
# `>`, `>=` and LIKE never match a null; NOT simply negates. On boolean fields null means false
# (Salesforce documents `Flag__c = null` as equivalent to `Flag__c = false`).

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import compress, repeat
from typing import Any

from regsync.sandbox.store import id_checksum

__all__ = [
    "MAX_OFFSET",
    "BoolOp",
    "Comparison",
    "Condition",
    "Like",
    "Membership",
    "Not",
    "OrderKey",
    "ParsedQuery",
    "Query",
    "SoqlError",
    "bind",
    "compile_filter",
    "execute",
    "parse",
    "project",
    "sort_key",
]

MAX_OFFSET = 2000

MALFORMED = "MALFORMED_QUERY"
INVALID_FIELD = "INVALID_FIELD"
INVALID_TYPE = "INVALID_TYPE"
OUT_OF_RANGE = "NUMBER_OUTSIDE_VALID_RANGE"
# Not in the original list of codes, but what Salesforce answers for a malformed Id literal
# (`Id = 'abc'`) and for an operator a field type does not support (`Id LIKE ...`).
INVALID_OPERATOR = "INVALID_QUERY_FILTER_OPERATOR"


class SoqlError(Exception):
    """A query Salesforce would refuse; `error_code` and `message` go straight into the REST body."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message


def _located(text: str, pos: int, message: str) -> str:
    """Salesforce's error text: the query line, a caret, `ERROR at Row:r:Column:c`, the message."""
    pos = max(0, min(pos, len(text)))
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start : end if end != -1 else len(text)]
    row = text.count("\n", 0, pos) + 1
    column = pos - start + 1
    return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{message}"


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Syntax tree (parse output)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Name:
    text: str
    pos: int


@dataclass(frozen=True)
class _Literal:
    kind: str  # string | number | date | datetime | boolean | null
    text: str  # raw source text (string body undecoded)
    pos: int


@dataclass(frozen=True)
class _FieldExpr:
    field: _Name
    op: str  # = != < <= > >= IN NOTIN LIKE
    op_pos: int
    value: _Literal | tuple[_Literal, ...]


@dataclass(frozen=True)
class _Logic:
    op: str  # AND | OR
    items: tuple[_Expr, ...]


@dataclass(frozen=True)
class _Negation:
    item: _Expr


_Expr = _FieldExpr | _Logic | _Negation


@dataclass(frozen=True)
class _OrderItem:
    field: _Name
    descending: bool
    nulls_first: bool | None  # None: not given


@dataclass(frozen=True)
class ParsedQuery:
    """A syntactically valid query of the subset; names not yet resolved against a schema."""

    text: str
    fields: tuple[_Name, ...]
    is_count: bool
    sobject: _Name
    where: _Expr | None
    order_by: tuple[_OrderItem, ...]
    limit: int | None
    offset: int | None


# Words that can never be a field or object name, so a clear error beats "No such column".
_RESERVED = frozenset(
    [
        "AND",
        "ASC",
        "BY",
        "CUBE",
        "DESC",
        "ELSE",
        "END",
        "EXCLUDES",
        "FALSE",
        "FIRST",
        "FOR",
        "FROM",
        "GROUP",
        "HAVING",
        "IN",
        "INCLUDES",
        "LAST",
        "LIKE",
        "LIMIT",
        "NOT",
        "NULL",
        "NULLS",
        "OFFSET",
        "OR",
        "ORDER",
        "ROLLUP",
        "SELECT",
        "THEN",
        "TRUE",
        "TYPEOF",
        "USING",
        "WHEN",
        "WHERE",
        "WITH",
    ]
)

_UNSUPPORTED_CLAUSES = {
    "GROUP": "GROUP BY",
    "HAVING": "HAVING",
    "WITH": "WITH",
    "FOR": "FOR VIEW / FOR REFERENCE / FOR UPDATE",
    "USING": "USING SCOPE",
    "UPDATE": "UPDATE TRACKING / VIEWSTAT",
    "ALL": "ALL ROWS (Apex only; use the queryAll resource)",
}

_DATE_LITERAL = re.compile(
    r"(YESTERDAY|TODAY|TOMORROW|(LAST|THIS|NEXT)_(WEEK|MONTH|QUARTER|YEAR|FISCAL_QUARTER|FISCAL_YEAR)"
    r"|LAST_90_DAYS|NEXT_90_DAYS|(LAST|NEXT)_N_\w+|N_\w+_AGO)",
    re.IGNORECASE,
)


# The date literals the sandbox answers (Salesforce's "Date Formats and Date Literals in WHERE"):
# each is a range of whole days [start, end) in the user's time zone (UTC in the sandbox).
_DATE_RANGE = "date_range"
_RELATIVE_DAYS = ("TODAY", "YESTERDAY", "TOMORROW", "THIS_MONTH", "LAST_MONTH", "NEXT_MONTH")
_N_DAYS = ("LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO")


def date_literal_range(literal: str, today: date) -> tuple[date, date]:
    """[start, end) of a date literal relative to `today`, as Salesforce documents them: TODAY is
    today from 00:00 for 24 hours; LAST_N_DAYS:n starts n days ago and includes today (":1" is
    yesterday and today); NEXT_N_DAYS:n starts tomorrow and lasts n days (not today); N_DAYS_AGO:n
    is the one day n days ago; THIS_MONTH, LAST_MONTH and NEXT_MONTH are whole calendar months."""
    word, _, amount = literal.partition(":")
    n = int(amount or 0)
    day = timedelta(days=1)
    if word == "TODAY":
        return today, today + day
    if word == "YESTERDAY":
        return today - day, today
    if word == "TOMORROW":
        return today + day, today + 2 * day
    if word == "LAST_N_DAYS":
        return today - n * day, today + day
    if word == "NEXT_N_DAYS":
        return today + day, today + (n + 1) * day
    if word == "N_DAYS_AGO":
        return today - n * day, today - (n - 1) * day
    first = today.replace(day=1)
    if word == "LAST_MONTH":
        first = (first - day).replace(day=1)
    elif word == "NEXT_MONTH":
        first = (first + 32 * day).replace(day=1)
    return first, (first + 32 * day).replace(day=1)


def _unsupported(text: str, pos: int, what: str) -> SoqlError:
    return SoqlError(
        MALFORMED,
        _located(text, pos, f"{what} is not supported by the sandbox's SOQL subset"),
    )


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    # -- token helpers
    @property
    def tok(self) -> _Token:
        return self.tokens[self.index]

    def peek(self, ahead: int = 1) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != _EOF:
            self.index += 1
        return token

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == _IDENT and self.tok.upper in words

    def is_punct(self, char: str, token: _Token | None = None) -> bool:
        token = token or self.tok
        return token.kind == _PUNCT and token.text == char

    def error(self, token: _Token | None = None, hint: str = "") -> SoqlError:
        token = token or self.tok
        message = f"unexpected token: {token.shown()}{hint}"
        return SoqlError(MALFORMED, _located(self.text, token.pos, message))

    def expect_kw(self, word: str) -> _Token:
        if not self.is_kw(word):
            raise self.error(hint=f" (expected {word})")
        return self.advance()

    def expect_punct(self, char: str) -> _Token:
        if not self.is_punct(char):
            raise self.error(hint=f" (expected '{char}')")
        return self.advance()

    # -- grammar
    def query(self) -> ParsedQuery:
        self.expect_kw("SELECT")
        fields, is_count = self.select_list()
        self.expect_kw("FROM")
        sobject = self.name("object")
        if self.is_punct(","):
            raise _unsupported(self.text, self.tok.pos, "Querying more than one object")
        where = None
        if self.is_kw("WHERE"):
            self.advance()
            where = self.condition()
        order_by: tuple[_OrderItem, ...] = ()
        if self.is_kw("ORDER"):
            self.advance()
            self.expect_kw("BY")
            order_by = self.order_list()
        limit = None
        if self.is_kw("LIMIT"):
            self.advance()
            limit = self.unsigned("LIMIT")
        offset = None
        if self.is_kw("OFFSET"):
            self.advance()
            offset = self.unsigned("OFFSET")
        self.end()
        return ParsedQuery(self.text, fields, is_count, sobject, where, order_by, limit, offset)

    def end(self) -> None:
        token = self.tok
        if token.kind == _EOF:
            return
        clause = _UNSUPPORTED_CLAUSES.get(token.upper)
        if clause is not None:
            raise _unsupported(self.text, token.pos, clause)
        if token.upper in ("WHERE", "ORDER", "LIMIT", "OFFSET"):
            raise self.error(
                hint=" (clauses must come in the order WHERE, ORDER BY, LIMIT, OFFSET, once each)"
            )
        if token.upper in ("AND", "OR"):
            raise self.error(hint=" (mixing AND and OR needs parentheses in SOQL)")
        raise self.error()

    def select_list(self) -> tuple[tuple[_Name, ...], bool]:
        if self.is_kw("COUNT") and self.is_punct("(", self.peek()):
            start = self.advance()
            self.advance()
            if not self.is_punct(")"):
                raise _unsupported(self.text, start.pos, "COUNT(field) (an aggregate query); only COUNT()")
            self.advance()
            if self.is_punct(","):
                raise self.error(hint=" (COUNT() cannot be combined with other fields)")
            return (), True
        fields = [self.select_item()]
        while self.is_punct(","):
            self.advance()
            fields.append(self.select_item())
        return tuple(fields), False

    def select_item(self) -> _Name:
        token = self.tok
        if self.is_punct("("):
            raise _unsupported(self.text, token.pos, "A subquery")
        if self.is_kw("TYPEOF"):
            raise _unsupported(self.text, token.pos, "TYPEOF")
        if self.is_kw("FIELDS") and self.is_punct("(", self.peek()):
            raise _unsupported(self.text, token.pos, "FIELDS()")
        return self.name("field")

    def name(self, what: str) -> _Name:
        token = self.tok
        if token.kind != _IDENT or token.upper in _RESERVED:
            raise self.error(hint=f" (expected a {what} name)")
        self.advance()
        if self.is_punct("."):
            raise _unsupported(
                self.text,
                token.pos,
                f"A relationship or qualified name ({token.text}.{self.peek().text})",
            )
        if self.is_punct("("):
            if token.upper == "COUNT":
                raise self.error(self.tok, " (COUNT() must be the only item in the SELECT list)")
            raise _unsupported(self.text, token.pos, f"The function {token.text}()")
        return _Name(token.text, token.pos)

    def unsigned(self, clause: str) -> int:
        token = self.tok
        if token.kind != _NUMBER or not token.text.isdigit():
            raise self.error(hint=f" ({clause} takes a non-negative integer)")
        self.advance()
        return int(token.text)

    def order_list(self) -> tuple[_OrderItem, ...]:
        items = [self.order_item()]
        while self.is_punct(","):
            self.advance()
            items.append(self.order_item())
        return tuple(items)

    def order_item(self) -> _OrderItem:
        field = self.name("field")
        descending = False
        if self.is_kw("ASC", "DESC"):
            descending = self.advance().upper == "DESC"
        nulls_first = None
        if self.is_kw("NULLS"):
            self.advance()
            if not self.is_kw("FIRST", "LAST"):
                raise self.error(hint=" (expected FIRST or LAST)")
            nulls_first = self.advance().upper == "FIRST"
        return _OrderItem(field, descending, nulls_first)

    # Salesforce refuses `a AND b OR c`: every AND/OR chain at one level uses a single operator,
    # so parentheses are mandatory when mixing. NOT binds tightest.
    def condition(self) -> _Expr:
        items = [self.unary()]
        joiner: str | None = None
        while self.is_kw("AND", "OR"):
            token = self.tok
            if joiner is None:
                joiner = token.upper
            elif token.upper != joiner:
                raise self.error(
                    hint=" (SOQL rejects mixing AND and OR without parentheses: "
                    "write (a AND b) OR c or a AND (b OR c))"
                )
            self.advance()
            items.append(self.unary())
        if joiner is None:
            return items[0]
        return _Logic(joiner, tuple(items))

    def unary(self) -> _Expr:
        if self.is_kw("NOT"):
            self.advance()
            return _Negation(self.unary())
        if self.is_punct("("):
            self.advance()
            if self.is_kw("SELECT"):
                raise _unsupported(self.text, self.tok.pos, "A subquery")
            inner = self.condition()
            self.expect_punct(")")
            return inner
        return self.field_expr()

    def field_expr(self) -> _FieldExpr:
        if self.tok.kind != _IDENT or self.tok.upper in _RESERVED:
            if self.tok.kind in (_STRING, _NUMBER, _DATE, _DATETIME) or self.is_kw("TRUE", "FALSE", "NULL"):
                raise self.error(hint=" (the left side of a condition must be a field)")
            raise self.error(hint=" (expected a field name)")
        field = self.name("field")
        token = self.tok
        if token.kind == _OP:
            self.advance()
            op = "!=" if token.text == "<>" else token.text
            return _FieldExpr(field, op, token.pos, self.value())
        if self.is_kw("LIKE"):
            self.advance()
            return _FieldExpr(field, "LIKE", token.pos, self.value())
        if self.is_kw("IN"):
            self.advance()
            return _FieldExpr(field, "IN", token.pos, self.value_list())
        if self.is_kw("NOT"):
            self.advance()
            if self.is_kw("IN"):
                self.advance()
                return _FieldExpr(field, "NOTIN", token.pos, self.value_list())
            if self.is_kw("LIKE"):
                raise self.error(hint=f" (SOQL has no NOT LIKE operator: write NOT {field.text} LIKE '...')")
            raise self.error(hint=" (expected IN)")
        if self.is_kw("INCLUDES", "EXCLUDES"):
            raise _unsupported(self.text, token.pos, f"{token.upper} (multi-select picklists)")
        raise self.error(hint=" (expected a comparison operator)")

    def value_list(self) -> tuple[_Literal, ...]:
        if self.is_punct(":"):
            raise self.bind_variable()
        self.expect_punct("(")
        if self.is_kw("SELECT"):
            raise _unsupported(self.text, self.tok.pos, "A semi-join or anti-join subquery")
        values = [self.value()]
        while self.is_punct(","):
            self.advance()
            values.append(self.value())
        self.expect_punct(")")
        return tuple(values)

    def bind_variable(self) -> SoqlError:
        name = self.peek().text if self.peek().kind == _IDENT else ""
        return _unsupported(self.text, self.tok.pos, f"A bind variable (:{name}) outside Apex")

    def value(self) -> _Literal:
        token = self.tok
        if token.kind in (_STRING, _NUMBER, _DATE, _DATETIME):
            self.advance()
            return _Literal(token.kind, token.text, token.pos)
        if token.kind == _IDENT:
            word = token.upper
            if word in ("TRUE", "FALSE"):
                self.advance()
                return _Literal("boolean", word, token.pos)
            if word == "NULL":
                self.advance()
                return _Literal("null", word, token.pos)
            colon = self.is_punct(":", self.peek())
            if word in _RELATIVE_DAYS and not colon:
                self.advance()
                return _Literal(_DATE_RANGE, word, token.pos)
            if word in _N_DAYS and colon:
                amount = self.peek(2)
                if amount.kind != _NUMBER or not amount.text.isdigit():
                    raise self.error(self.peek(2), f" (expected a whole number of days after {token.text}:)")
                self.advance()
                self.advance()
                self.advance()
                return _Literal(_DATE_RANGE, f"{word}:{int(amount.text)}", token.pos)
            if colon or _DATE_LITERAL.fullmatch(token.text):
                literal = token.text + (f":{self.peek(2).text}" if colon else "")
                raise _unsupported(self.text, token.pos, f"The date literal {literal}")
            if self.is_punct("(", self.peek()):
                raise _unsupported(self.text, token.pos, f"The function {token.text}()")
            raise self.error(hint=" (a value must be a literal; SOQL cannot compare two fields)")
        if self.is_punct(":"):
            raise self.bind_variable()
        raise self.error(hint=" (expected a value)")


def parse(soql: str) -> ParsedQuery:
    """Parse a query of the subset; anything else raises SoqlError(MALFORMED_QUERY)."""
    if not soql or not soql.strip():
        raise SoqlError(MALFORMED, "A query string has to be specified")
    return _Parser(soql).query()


# ---------------------------------------------------------------------------------------------
# Bound query
# ---------------------------------------------------------------------------------------------

# Field type -> how values compare. "text" compares case-insensitively (as Salesforce does for
# all but unique case-sensitive fields, which the schema cannot express); "id" compares the
# canonical 18-character form; the rest compare their wire form directly.
_KINDS = {
    "id": "id",
    "reference": "id",
    "string": "text",
    "textarea": "text",
    "picklist": "text",
    "email": "text",
    "url": "text",
    "phone": "text",
    "combobox": "text",
    "datetime": "datetime",
    "date": "date",
    "boolean": "boolean",
    "double": "number",
    "currency": "number",
    "percent": "number",
    "int": "number",
    "integer": "number",
}

# How Salesforce names the type in "value of filter criterion ... must be of type X".
_TYPE_WORDS = {
    "id": "id",
    "text": "string",
    "datetime": "dateTime",
    "date": "date",
    "boolean": "boolean",
    "number": "double",
}

_RANGE_OPS = ("<", "<=", ">", ">=")


@dataclass(frozen=True)
class Comparison:
    """`field op value`; value is already in the rows' representation (None for null)."""

    field: str
    kind: str
    op: str  # = != < <= > >=
    value: Any


@dataclass(frozen=True)
class Membership:
    """`field [NOT] IN (values)`; values in the rows' representation, None for null."""

    field: str
    kind: str
    values: tuple[Any, ...]
    negated: bool


@dataclass(frozen=True)
class Like:
    """`field LIKE 'pattern'`; pattern is the raw literal body, escapes undecoded."""

    field: str
    pattern: str


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND | OR
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = Comparison | Membership | Like | BoolOp | Not


@dataclass(frozen=True)
class OrderKey:
    field: str
    kind: str
    descending: bool
    nulls_first: bool


@dataclass(frozen=True)
class Query:
    """A bound query: canonical names, type-checked literals; what the emulator executes."""

    fields: tuple[str, ...]  # canonical names in SELECT order; () for COUNT()
    sobject: str
    where: Condition | None
    order_by: tuple[OrderKey, ...]
    limit: int | None
    offset: int | None
    is_count: bool


def bind(
    parsed: ParsedQuery,
    schemas: Mapping[str, tuple[str, Mapping[str, str]]],
    today: date | None = None,
) -> Query:
    """Resolve names against `schemas` (lower-cased object name -> (canonical, field types));
    date literals (TODAY, LAST_N_DAYS:n, ...) count from `today` (default: today in UTC)."""
    text = parsed.text
    today = today or datetime.now(UTC).date()
    found = schemas.get(parsed.sobject.text.lower())
    if found is None:
        raise SoqlError(
            INVALID_TYPE,
            _located(
                text,
                parsed.sobject.pos,
                f"sObject type '{parsed.sobject.text}' is not supported. If you are attempting "
                "to use a custom object, be sure to append the '__c' after the entity name. "
                "Please reference your WSDL or the describe call for the appropriate names.",
            ),
        )
    sobject, field_types = found
    by_lower = {name.lower(): (name, ftype) for name, ftype in field_types.items()}
    by_lower.setdefault("id", ("Id", "id"))

    def resolve(name: _Name) -> tuple[str, str]:
        hit = by_lower.get(name.text.lower())
        if hit is None:
            raise SoqlError(
                INVALID_FIELD,
                _located(
                    text,
                    name.pos,
                    f"No such column '{name.text}' on entity '{sobject}'. If you are attempting "
                    "to use a custom field, be sure to append the '__c' after the custom field "
                    "name. Please reference your WSDL or the describe call for the appropriate "
                    "names.",
                ),
            )
        return hit

    def kind_of(name: _Name, canonical: str, ftype: str, action: str) -> str:
        kind = _KINDS.get(ftype.lower())
        if kind is None:
            raise SoqlError(
                INVALID_FIELD,
                _located(text, name.pos, f"field '{canonical}' can not be {action} in query call"),
            )
        return kind

    fields: list[str] = []
    for name in parsed.fields:
        canonical, _ = resolve(name)
        if canonical in fields:
            raise SoqlError(INVALID_FIELD, _located(text, name.pos, f"duplicate field selected: {canonical}"))
        fields.append(canonical)

    def bind_expr(expr: _Expr) -> Condition:
        if isinstance(expr, _Logic):
            return BoolOp(expr.op, tuple(bind_expr(item) for item in expr.items))
        if isinstance(expr, _Negation):
            return Not(bind_expr(expr.item))
        canonical, ftype = resolve(expr.field)
        kind = kind_of(expr.field, canonical, ftype, "filtered")
        return _bind_field_expr(text, expr, canonical, kind, today)

    where = bind_expr(parsed.where) if parsed.where is not None else None

    order_by = []
    for item in parsed.order_by:
        canonical, ftype = resolve(item.field)
        kind = kind_of(item.field, canonical, ftype, "sorted")
        nulls_first = item.nulls_first if item.nulls_first is not None else not item.descending
        order_by.append(OrderKey(canonical, kind, item.descending, nulls_first))

    if parsed.offset is not None and parsed.offset > MAX_OFFSET:
        raise SoqlError(OUT_OF_RANGE, f"Maximum SOQL offset allowed for apiName {sobject} is {MAX_OFFSET}")
    return Query(
        fields=tuple(fields),
        sobject=sobject,
        where=where,
        order_by=tuple(order_by),
        limit=parsed.limit,
        offset=parsed.offset,
        is_count=parsed.is_count,
    )


def _bind_field_expr(text: str, expr: _FieldExpr, field: str, kind: str, today: date) -> Condition:
    op = expr.op
    if isinstance(expr.value, _Literal) and expr.value.kind == _DATE_RANGE:
        return _bind_date_range(text, expr, field, kind, today)
    if isinstance(expr.value, tuple):
        for literal in expr.value:
            if literal.kind == _DATE_RANGE:
                raise _unsupported(text, literal.pos, f"The date literal {literal.text} in an IN list")
    if op == "LIKE":
        assert isinstance(expr.value, _Literal)
        literal = expr.value
        if kind == "id":
            raise SoqlError(INVALID_OPERATOR, _located(text, expr.op_pos, "invalid operator on id field"))
        if literal.kind == "null":
            raise SoqlError(MALFORMED, _located(text, literal.pos, "LIKE needs a quoted string pattern"))
        if kind != "text" or literal.kind != _STRING:
            raise _type_mismatch(text, literal, field, kind)
        return Like(field, literal.text)
    if op in ("IN", "NOTIN"):
        assert isinstance(expr.value, tuple)
        values = tuple(_coerce(text, literal, field, kind, equality=True) for literal in expr.value)
        return Membership(field, kind, values, negated=op == "NOTIN")
    assert isinstance(expr.value, _Literal)
    literal = expr.value
    if op in _RANGE_OPS:
        if literal.kind == "null":
            raise SoqlError(
                MALFORMED,
                _located(
                    text,
                    literal.pos,
                    f"unexpected token: 'null' (only = and != can compare with null, not {op})",
                ),
            )
        if kind == "boolean":
            raise SoqlError(
                INVALID_OPERATOR, _located(text, expr.op_pos, "invalid operator on boolean field")
            )
    value = _coerce(text, literal, field, kind, equality=op in ("=", "!="))
    return Comparison(field, kind, op, value)


def _bind_date_range(text: str, expr: _FieldExpr, field: str, kind: str, today: date) -> Condition:
    """A date literal is a range: `=` is inside it, `!=` outside, `<`/`>=` against its start,
    `<=`/`>` against its end (Salesforce: "use = to find values in the range, > or < for either side")."""
    literal = expr.value
    assert isinstance(literal, _Literal)
    if expr.op == "LIKE" or kind not in ("date", "datetime"):
        raise _type_mismatch(text, literal, field, kind)
    try:
        start, end = date_literal_range(literal.text, today)
    except (OverflowError, ValueError):
        raise SoqlError(
            MALFORMED, _located(text, literal.pos, f"invalid date literal: {literal.text}")
        ) from None

    def wire(day: date) -> str:
        return day.isoformat() if kind == "date" else f"{day.isoformat()}T00:00:00.000+0000"

    low, high = Comparison(field, kind, ">=", wire(start)), Comparison(field, kind, "<", wire(end))
    op = expr.op
    if op == "=":
        return BoolOp("AND", (low, high))
    if op == "!=":
        return Not(BoolOp("AND", (low, high)))
    if op == "<":
        return Comparison(field, kind, "<", wire(start))
    if op == ">=":
        return low
    if op == "<=":
        return high
    return Comparison(field, kind, ">=", wire(end))  # ">": after the whole range


def _type_mismatch(text: str, literal: _Literal, field: str, kind: str) -> SoqlError:
    quoted = kind in ("id", "text")
    return SoqlError(
        INVALID_FIELD,
        _located(
            text,
            literal.pos,
            f"value of filter criterion for field '{field}' must be of type {_TYPE_WORDS[kind]} "
            f"and should {'' if quoted else 'not '}be enclosed in quotes",
        ),
    )


def _coerce(text: str, literal: _Literal, field: str, kind: str, *, equality: bool) -> Any:
    """The literal in the rows' representation for a field of this kind, or an error."""
    if literal.kind == "null":
        return None
    if kind == "text":
        if literal.kind != _STRING:
            raise _type_mismatch(text, literal, field, kind)
        value = _decode(literal.text)
        # Salesforce stores no empty strings: `Name = ''` is `Name = null`.
        return None if value == "" and equality else value
    if kind == "id":
        if literal.kind != _STRING:
            raise _type_mismatch(text, literal, field, kind)
        value = _decode(literal.text)
        if value == "" and equality:
            return None
        canonical = canonical_id(value)
        if canonical is None:
            raise SoqlError(INVALID_OPERATOR, _located(text, literal.pos, f"invalid ID field: {value}"))
        return canonical
    if kind == "datetime":
        if literal.kind != _DATETIME:
            raise _type_mismatch(text, literal, field, kind)
        return _wire_datetime(text, literal)
    if kind == "date":
        if literal.kind != _DATE:
            raise _type_mismatch(text, literal, field, kind)
        try:
            date.fromisoformat(literal.text)
        except ValueError:
            raise SoqlError(MALFORMED, _located(text, literal.pos, f"invalid date: {literal.text}")) from None
        return literal.text
    if kind == "boolean":
        if literal.kind != "boolean":
            raise _type_mismatch(text, literal, field, kind)
        return literal.text == "TRUE"
    if kind == "number":
        if literal.kind != _NUMBER:
            raise _type_mismatch(text, literal, field, kind)
        return float(literal.text) if "." in literal.text else int(literal.text)
    raise AssertionError(kind)  # pragma: no cover


_BASE62_CASE = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def canonical_id(value: str) -> str | None:
    """The canonical 18-character form of a 15- or 18-character Salesforce id, or None.

    15-character ids are case-sensitive; an 18-character id carries its own case in the suffix,
    so Salesforce accepts it in any case (the case of the first 15 is restored from the suffix).
    """
    if not value.isascii() or not value.isalnum():
        return None
    if len(value) == 15:
        return value + id_checksum(value)
    if len(value) != 18:
        return None
    suffix = value[15:].upper()
    chars = list(value[:15])
    for chunk, flag in enumerate(suffix):
        bits = _BASE62_CASE.find(flag)
        if bits < 0:
            return None
        for position in range(5):
            index = chunk * 5 + position
            if bits & (1 << position):
                if not chars[index].isalpha():
                    return None
                chars[index] = chars[index].upper()
            else:
                chars[index] = chars[index].lower()
    id15 = "".join(chars)
    return id15 + id_checksum(id15)


_DATETIME_FORM = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?(Z|[+-]\d{2}:\d{2})"
)


def _wire_datetime(text: str, literal: _Literal) -> str:
    """`2024-01-01T01:00:00+01:00` -> `2024-01-01T00:00:00.000+0000` (UTC, fixed width)."""
    match = _DATETIME_FORM.fullmatch(literal.text)
    problem = None
    if match is None:
        problem = "expected YYYY-MM-DDThh:mm:ss[.sss] followed by Z, +hh:mm or -hh:mm"
    else:
        try:
            millis = int((match[7] or "0").ljust(3, "0"))
            year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
            moment = datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=UTC)
            zone = match[8]
            if zone != "Z":
                hours, minutes = int(zone[1:3]), int(zone[4:6])
                if hours > 23 or minutes > 59:
                    raise ValueError(zone)
                shift = timedelta(hours=hours, minutes=minutes)
                moment = moment - shift if zone[0] == "+" else moment + shift
        except (ValueError, OverflowError):
            problem = "not a valid date and time"
    if problem is not None:
        raise SoqlError(
            MALFORMED,
            _located(text, literal.pos, f"invalid datetime literal '{literal.text}': {problem}"),
        )
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}+0000"
    )


# ---------------------------------------------------------------------------------------------
# Filtering: closures built once per query
# ---------------------------------------------------------------------------------------------

Row = dict[str, Any]
Predicate = Callable[[Row], bool]


def compile_filter(query: Query) -> Predicate:
    """A predicate for the WHERE clause (always true when there is none)."""
    if query.where is None:
        return lambda row: True
    return _compile(query.where)


def _compile(cond: Condition) -> Predicate:
    if isinstance(cond, BoolOp):
        return _compile_and(cond.items) if cond.op == "AND" else _compile_or(cond.items)
    if isinstance(cond, Not):
        inner = _compile(cond.item)
        return lambda row: not inner(row)
    if isinstance(cond, Like):
        return _compile_like(cond)
    if isinstance(cond, Membership):
        return _compile_membership(cond)
    return _compile_comparison(cond)


def _compile_and(items: tuple[Condition, ...]) -> Predicate:
    preds = _merge_ranges(list(items))
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        first, second = preds

        def both(row: Row) -> bool:
            return first(row) and second(row)

        return both

    def every(row: Row) -> bool:
        return all(pred(row) for pred in preds)

    return every


def _compile_or(items: tuple[Condition, ...]) -> Predicate:
    preds = [_compile(item) for item in items]
    if len(preds) == 2:
        first, second = preds

        def either(row: Row) -> bool:
            return first(row) or second(row)

        return either

    def any_of(row: Row) -> bool:
        return any(pred(row) for pred in preds)

    return any_of


def _merge_ranges(items: list[Condition]) -> list[Predicate]:
    """Compile AND operands, fusing `f >= lo AND f < hi` on one field into a single closure.

    The window query the sync issues on SystemModstamp is exactly this shape, and one closure
    per row instead of three is most of the cost of filtering a million rows.
    """
    lows: dict[str, Comparison] = {}
    highs: dict[str, Comparison] = {}
    for item in items:
        if isinstance(item, Comparison) and item.kind != "text" and item.op in _RANGE_OPS:
            bucket = lows if item.op in (">", ">=") else highs
            bucket.setdefault(item.field, item)
    fused = {field: (lows[field], highs[field]) for field in lows.keys() & highs.keys()}
    preds: list[Predicate] = []
    for item in items:
        if isinstance(item, Comparison) and item.field in fused:
            low, high = fused[item.field]
            if item is low:
                preds.append(_window(item.field, low, high))
                continue
            if item is high:
                continue
        preds.append(_compile(item))
    return preds


def _window(field: str, low: Comparison, high: Comparison) -> Predicate:
    lo, hi = low.value, high.value
    lo_incl, hi_incl = low.op == ">=", high.op == "<="
    if lo_incl and not hi_incl:

        def pred(row: Row) -> bool:
            value = row.get(field)
            return value is not None and lo <= value < hi

    elif lo_incl and hi_incl:

        def pred(row: Row) -> bool:
            value = row.get(field)
            return value is not None and lo <= value <= hi

    elif hi_incl:

        def pred(row: Row) -> bool:
            value = row.get(field)
            return value is not None and lo < value <= hi

    else:

        def pred(row: Row) -> bool:
            value = row.get(field)
            return value is not None and lo < value < hi

    return pred


_RANGE_FUNCS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _compile_comparison(cond: Comparison) -> Predicate:
    field, kind, op, value = cond.field, cond.kind, cond.op, cond.value
    if kind == "boolean":
        # Null is false on a boolean field: `= null` is `= false`, `!= null` is `= true`.
        want = bool(value)
        if op == "!=":
            want = not want
        if want:
            return lambda row: row.get(field) is True
        return lambda row: not row.get(field)
    if value is None:
        if op == "=":
            return lambda row: row.get(field) is None
        return lambda row: row.get(field) is not None
    if kind == "text":
        return _compile_text_comparison(field, op, value)
    if op == "=":
        return lambda row: row.get(field) == value
    if op == "!=":
        return lambda row: row.get(field) != value  # a null row value is "not equal" in SOQL
    if op == "<":

        def pred(row: Row) -> bool:
            current = row.get(field)
            return current is not None and current < value

    elif op == "<=":

        def pred(row: Row) -> bool:
            current = row.get(field)
            return current is not None and current <= value

    elif op == ">":

        def pred(row: Row) -> bool:
            current = row.get(field)
            return current is not None and current > value

    else:

        def pred(row: Row) -> bool:
            current = row.get(field)
            return current is not None and current >= value

    return pred


def _compile_text_comparison(field: str, op: str, value: str) -> Predicate:
    # Case-insensitive, as Salesforce compares all but unique case-sensitive text fields.
    # Equality folds with lower(); ranges fold with upper(), the order Salesforce sorts in for
    # English locales ("UTF-8 values of the uppercase characters").
    if op == "=":
        folded = value.lower()

        def equal(row: Row) -> bool:
            current = row.get(field)
            return current is not None and current.lower() == folded

        return equal
    if op == "!=":
        folded = value.lower()

        def not_equal(row: Row) -> bool:
            current = row.get(field)
            return current is None or current.lower() != folded

        return not_equal
    upper = value.upper()
    compare = _RANGE_FUNCS[op]

    def in_range(row: Row) -> bool:
        current = row.get(field)
        return current is not None and compare(current.upper(), upper)

    return in_range


def _compile_membership(cond: Membership) -> Predicate:
    field, kind = cond.field, cond.kind
    has_null = any(value is None for value in cond.values)
    values = [value for value in cond.values if value is not None]
    if kind == "boolean":
        wanted = frozenset(bool(value) for value in cond.values)  # null is false here
        if cond.negated:
            return lambda row: bool(row.get(field)) not in wanted
        return lambda row: bool(row.get(field)) in wanted
    if kind == "text":
        folded = frozenset(value.lower() for value in values)

        def text_in(row: Row) -> bool:
            current = row.get(field)
            if current is None:
                return has_null
            return current.lower() in folded

        if cond.negated:
            return lambda row: not text_in(row)
        return text_in
    members = frozenset(values)

    def is_in(row: Row) -> bool:
        current = row.get(field)
        if current is None:
            return has_null
        return current in members

    if cond.negated:
        return lambda row: not is_in(row)
    return is_in


def _like_regex(raw: str) -> re.Pattern[str]:
    parts: list[str] = []
    pos = 0
    while pos < len(raw):
        char = raw[pos]
        if char == "\\":
            escaped = raw[pos + 1]
            parts.append(re.escape(escaped if escaped in _LIKE_ONLY_ESCAPES else _ESCAPES[escaped]))
            pos += 2
            continue
        if char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
        pos += 1
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _compile_like(cond: Like) -> Predicate:
    # Case-insensitive, whole-value match: 'abc%' matches 'ABCdef' but never 'xabc'.
    field = cond.field
    match = _like_regex(cond.pattern).fullmatch

    def like(row: Row) -> bool:
        current = row.get(field)
        return current is not None and match(current) is not None

    return like


# ---------------------------------------------------------------------------------------------
# Ordering
# ---------------------------------------------------------------------------------------------


class _Descending:
    """Reverses the order of a wrapped value (for DESC on strings inside one tuple key)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Descending) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


def _sort_value(kind: str) -> Callable[[Any], Any] | None:
    # Text sorts case-insensitively by the uppercase form (Salesforce, English locale); ids,
    # dates and datetimes sort by their wire form, which is also their time order.
    return str.upper if kind == "text" else None


def sort_key(query: Query) -> Callable[[Row], tuple[Any, ...]] | None:
    """A key for sorted() giving ORDER BY's order (DESC, NULLS FIRST/LAST), or None without one.

    `execute` sorts in stable passes instead, which is much faster on big inputs; both orders
    agree (ties keep their input order).
    """
    if not query.order_by:
        return None
    parts = [
        (key.field, key.descending, 0 if key.nulls_first else 2, _sort_value(key.kind))
        for key in query.order_by
    ]

    def key(row: Row) -> tuple[Any, ...]:
        out: list[Any] = []
        for field, descending, null_rank, fold in parts:
            value = row.get(field)
            if value is None:
                out.append((null_rank, None))
                continue
            if fold is not None:
                value = fold(value)
            if descending:
                value = -value if isinstance(value, int | float) else _Descending(value)
            out.append((1, value))
        return tuple(out)

    return key


def _getter(field: str, fold: Callable[[Any], Any] | None) -> Callable[[Row], Any]:
    if fold is None:
        return operator.itemgetter(field)

    def folded(row: Row) -> Any:
        return fold(row[field])

    return folded


def _order(rows: list[Row], keys: tuple[OrderKey, ...]) -> list[Row]:
    """Sort by the first key, then sort only the runs that tie on it by the remaining keys.

    Every sort is stable and uses a single-value key (C-level itemgetter where no case folding is
    needed), and the ties are found at C speed, so ORDER BY SystemModstamp, Id over a million rows
    costs one string sort. The result equals a stable sort on the full key (see `sort_key`).
    """
    if len(rows) < 2:
        return rows
    key, rest = keys[0], keys[1:]
    field = key.field
    if None in map(dict.get, rows, repeat(field)):
        present = [row for row in rows if row.get(field) is not None]
        nulls = [row for row in rows if row.get(field) is None]
        if rest:
            nulls = _order(nulls, rest)
    else:
        present, nulls = rows, []
    getter = _getter(field, _sort_value(key.kind))
    present.sort(key=getter, reverse=key.descending)
    if rest and len(present) > 1:
        values = list(map(getter, present))
        ties = list(compress(range(len(values) - 1), map(operator.eq, values, values[1:])))
        run_start = None
        for position, index in enumerate(ties):
            if run_start is None:
                run_start = index
            if position + 1 < len(ties) and ties[position + 1] == index + 1:
                continue  # the run goes on
            present[run_start : index + 2] = _order(present[run_start : index + 2], rest)
            run_start = None
    if not nulls:
        return present
    return nulls + present if key.nulls_first else present + nulls


# ---------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------


def execute(query: Query, rows: Iterable[Row]) -> list[Row]:
    """Rows matching WHERE, in ORDER BY order, after OFFSET and LIMIT (the row dicts themselves)."""
    matched = list(rows) if query.where is None else list(filter(compile_filter(query), rows))
    if query.order_by:
        matched = _order(matched, query.order_by)
    start = query.offset or 0
    if query.limit is not None:
        return matched[start : start + query.limit]
    return matched[start:] if start else matched


def project(query: Query, row: Row) -> dict[str, Any]:
    """The selected fields of a row, in SELECT order, under their canonical names."""
    return {field: row.get(field) for field in query.fields}
