"""One readable line and the right exit code for every failure an operator can meet, never a traceback.

regsync.cli.commands builds its Typer app with `ReadableErrors` as the group class: whatever a command raises
that regsync understands (a bad config, an unreachable or unwritable warehouse, a full disk, a
lock held) becomes one line and its exit code (docs/operations.md, "Exit codes"). Under
`--log-format json` that line, the lines every command prints on stderr, and a bad command line
are each one JSON object, like every log line. An exception nobody expected (a bug) keeps its
traceback: that is what a bug report needs.
"""

from __future__ import annotations

import errno
import io
import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError
from typer.core import TyperGroup

from regsync.errors import ConfigError, LockHeldError, RegsyncError, WarehouseError
from regsync.exitcodes import ExitCode
from regsync.logs import setup_logging

log = logging.getLogger("regsync.cli")
LOG_FORMATS = ("auto", "rich", "text", "json")


class _Output:
    """What the error handling must know about this invocation (set by the CLI callback)."""

    log_format: str = "auto"
    warehouse_url: str = ""
    logging_ready: bool = False


OUTPUT = _Output()


def _ensure_json_logging() -> None:
    if not OUTPUT.logging_ready:
        setup_logging("json")
        OUTPUT.logging_ready = True


def _level_of(markup: str) -> int:
    """The log level a console line's colour stands for (red: error, yellow: warning)."""
    head = markup[: markup.index("]")] if markup.startswith("[") and "]" in markup else ""
    if "red" in head:
        return logging.ERROR
    if "yellow" in head:
        return logging.WARNING
    return logging.INFO


class JsonAwareConsole(Console):
    """A stderr console that, under --log-format json, writes each print as one JSON log line."""

    @property
    def is_terminal(self) -> bool:
        """Under JSON logs, no progress bars or other live display between the JSON lines."""
        return OUTPUT.log_format != "json" and super().is_terminal

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if OUTPUT.log_format != "json":
            super().print(*objects, **kwargs)
            return
        _ensure_json_logging()
        texts = [obj for obj in objects if isinstance(obj, str)]
        if len(texts) == len(objects):
            markup = " ".join(texts)
            plain = Text.from_markup(markup).plain if kwargs.get("markup", True) else markup
            log.log(_level_of(markup), plain)
            return
        # A table or another renderable: rendered as text, one JSON line all the same.
        buffer = Console(file=io.StringIO(), width=1_000, soft_wrap=True, color_system=None)
        buffer.print(*objects, **kwargs)
        log.info(buffer.file.getvalue().rstrip())  # type: ignore[attr-defined]


console = JsonAwareConsole(stderr=True, soft_wrap=True)


def fail(code: ExitCode, message: str) -> NoReturn:
    """Say `message` on stderr (one line, or one JSON object) and exit with `code`."""
    style = "bold yellow" if code == ExitCode.LOCK_HELD else "bold red"
    console.print(f"[{style}]{escape(message)}[/]", highlight=False)
    raise typer.Exit(code)


def _os_error(exc: OSError) -> str:
    """A file-system error with the file it concerns: 'cannot write X: No space left on device'."""
    why = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why += " (the disk is full)"
    if exc.filename is None:
        return f"file system error: {why}"
    target = exc.filename2 if exc.filename2 is not None else exc.filename
    return f"cannot write {target}: {why}"


def explain(exc: BaseException) -> tuple[ExitCode, str] | None:
    """The exit code and one line for an error regsync understands; None for anything else (a bug)."""
    if isinstance(exc, SQLAlchemyError):
        # Imported here: it loads Alembic, which a command that never opens the warehouse (and
        # every `--help`) should not pay for at start-up.
        from regsync.warehouse.engine import explain_warehouse_error

        exc = explain_warehouse_error(exc, OUTPUT.warehouse_url)
    if isinstance(exc, ConfigError):
        return ExitCode.CONFIG, f"config error: {exc}"
    if isinstance(exc, LockHeldError):
        return ExitCode.LOCK_HELD, str(exc)
    if isinstance(exc, WarehouseError):
        return ExitCode.FAILED, f"warehouse error: {exc}"
    if isinstance(exc, OSError):
        return ExitCode.FAILED, _os_error(exc)
    if isinstance(exc, RegsyncError):
        return ExitCode.FAILED, f"{type(exc).__name__}: {exc}"
    return None


def _json_requested(args: Sequence[str]) -> bool:
    for index, arg in enumerate(args):
        if arg == "--log-format" and index + 1 < len(args):
            return args[index + 1] == "json"
        if arg == "--log-format=json":
            return True
    return False


class ReadableErrors(TyperGroup):
    """The regsync command group: understood failures become one line and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            explained = explain(exc)
            if explained is not None:
                fail(*explained)
            if OUTPUT.log_format != "json":
                raise  # a bug: its traceback is what a report needs
            # Under JSON logs the traceback too is one JSON object (in "error"), never loose lines.
            _ensure_json_logging()
            log.error("unexpected error (a bug?): %s: %s", type(exc).__name__, exc, exc_info=True)
            raise typer.Exit(ExitCode.FAILED) from None

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        OUTPUT.logging_ready, OUTPUT.warehouse_url = False, ""  # one invocation's (tests run many)
        if not _json_requested(argv):
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        # A bad command line under --log-format json: click would print a framed usage text.
        OUTPUT.log_format = "json"
        try:
            code = super().main(argv, prog_name, complete_var, False, **extra)
        except typer.TyperException as exc:
            _ensure_json_logging()
            log.error("usage error: %s", exc.format_message(), extra={"exit_code": exc.exit_code})
            code = exc.exit_code
        except typer.Abort:
            code = ExitCode.FAILED
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)
