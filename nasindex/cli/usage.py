"""How a command ends, as the README promises: exit 0 on success, 1 when a run failed,
2 for a usage or configuration mistake with one line on stderr naming the cause and
the fix, never a traceback."""

from __future__ import annotations

from collections.abc import Callable

import typer

# typer vendors click: its usage errors (unknown command or option, missing or bad
# value) are these classes, raised because main() runs it without standalone mode.
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from nasindex.cli import output
from nasindex.errors import IndexStorageError, NasIndexError

USAGE, FAILED, INTERRUPTED = 2, 1, 130


def run(app: Callable[..., object], args: list[str] | None = None) -> int:
    """Run the click/typer ``app``; its exit code, after one line for any mistake."""
    try:
        code = app(args=args, prog_name="nasindex", standalone_mode=False)
    except NoArgsIsHelpError as exc:  # `nasindex firebird`: help, not a mistake
        if exc.format_message():
            print(exc.format_message())
        return 0
    except UsageError as exc:
        output.error(usage_line(exc))
        return USAGE
    except ClickException as exc:
        output.error(exc.format_message())
        return exc.exit_code
    except IndexStorageError as exc:  # the index's disk or file: not a usage mistake
        output.error(str(exc))
        return FAILED
    except NasIndexError as exc:
        output.error(str(exc))
        return USAGE
    except (typer.Abort, KeyboardInterrupt):
        output.error("interrupted")
        return INTERRUPTED
    except Exception as exc:  # a database error: one line if it is a storage fault
        fault = _storage_fault(exc)
        if fault is None:
            raise
        output.error(str(fault))
        return FAILED
    return code if isinstance(code, int) else 0


def _storage_fault(exc: Exception) -> IndexStorageError | None:
    from nasindex.cli.options import settings
    from nasindex.index.faults import storage_fault

    try:
        url = settings().index.url
    except NasIndexError:
        url = None
    return storage_fault(exc, url)


def usage_line(exc: UsageError) -> str:
    """click's message, on one line, with where to read the usage of that command."""
    message = " ".join(exc.format_message().split())
    if message.startswith("Got unexpected extra argument"):
        # click repeats the words, which are often a patient's name: say what to do
        message = ("More arguments than the command takes: put a value with spaces in "
                   "quotes (\"jane doe\").")
    message += "" if message.endswith((".", "?")) else "."
    command = exc.ctx.command_path if exc.ctx else getattr(exc, "command_path", "nasindex")
    return f"{message} See `{command} --help`."
