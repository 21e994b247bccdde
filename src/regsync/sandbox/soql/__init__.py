"""A strict SOQL subset for the Salesforce emulator: it answers as Salesforce would, or refuses."""

# Shape of the package:
#   lexer.py      text -> tokens (string literals and their escapes)
#   parser.py     parse()          text -> ParsedQuery (syntax only; MALFORMED_QUERY on anything
#                                  outside the subset)
#   dates.py      the date literals (TODAY, LAST_N_DAYS:n, ...) as day ranges
#   binder.py     bind()           ParsedQuery + schemas -> Query (names resolved to canonical case,
#                                  literals type-checked and converted to the rows' wire representation)
#   evaluator.py  compile_filter() Query -> one closure tree built once, so a row costs a few Python calls
#                 execute()        filter, order (one C-keyed sort per key, later keys only on tied
#                                  runs), offset, limit
#   errors.py     SoqlError and Salesforce's error codes and caret messages

from regsync.sandbox.soql.binder import (
    MAX_OFFSET,
    BoolOp,
    Comparison,
    Condition,
    Like,
    Membership,
    Not,
    OrderKey,
    Query,
    bind,
    canonical_id,
)
from regsync.sandbox.soql.errors import SoqlError
from regsync.sandbox.soql.evaluator import compile_filter, execute, project, sort_key
from regsync.sandbox.soql.parser import ParsedQuery, parse

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
    "canonical_id",
    "compile_filter",
    "execute",
    "parse",
    "project",
    "sort_key",
]
