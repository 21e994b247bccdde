"""The SOQL parser: text to a syntax tree of the subset, names not yet resolved (parse())."""

from __future__ import annotations

from dataclasses import dataclass

from regsync.sandbox.soql.dates import _DATE_LITERAL, _DATE_RANGE, _N_DAYS, _RELATIVE_DAYS
from regsync.sandbox.soql.errors import MALFORMED, SoqlError, _located, _unsupported
from regsync.sandbox.soql.lexer import (
    _DATE,
    _DATETIME,
    _EOF,
    _IDENT,
    _NUMBER,
    _OP,
    _PUNCT,
    _STRING,
    _Token,
    _tokenize,
)


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
