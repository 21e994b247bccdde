"""SOQL errors as Salesforce words them: the error code, and the message with its caret."""

from __future__ import annotations

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


def _unsupported(text: str, pos: int, what: str) -> SoqlError:
    return SoqlError(
        MALFORMED,
        _located(text, pos, f"{what} is not supported by the sandbox's SOQL subset"),
    )
