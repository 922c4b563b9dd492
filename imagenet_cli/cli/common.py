"""What every command shares: the common options, error reporting, logging and output helpers."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
import re
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from .. import stops
from ..errors import EXIT_PROBLEMS, EXIT_USAGE, Stopped
from ..progress import Progress
from .errors import exit_code_for, message_for
from .progress import progress_for

DEFAULT_ROOT = Path("imagenet")


RootOption = Annotated[
    Path,
    typer.Option(
        "--root",
        envvar="IMAGENET_ROOT",
        help="Data root: downloads/, prepared trees and subsets/ live here.",
        metavar="DIR",
        file_okay=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout, for scripts.")]
QuietOption = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Only the result's paths on stdout, one per line; no progress bars or notes."),
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Say more about each step, on stderr.")]
NoWaitOption = Annotated[
    bool,
    typer.Option(
        "--no-wait", help="When another process is writing the same files, exit 1 at once instead of waiting."
    ),
]
FromTreeOption = Annotated[
    Path | None,
    typer.Option(
        "--from",
        help="The prepared tree or subset to read [default: the only prepared tree under the root].",
        file_okay=False,
        exists=True,
        show_default=False,
        metavar="TREE",
    ),
]


StorageOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--storage-option",
        help="KEY=VALUE for the object store's fsspec filesystem (endpoint_url=…, anon=true, profile=…), "
        "repeatable; credentials are better left to the store's own variables and files.",
        show_default=False,
        metavar="KEY=VALUE",
    ),
]


def file_option(help: str) -> Any:
    """An option naming one file (never a folder), shown as FILE, with no default to show."""
    return typer.Option(help=help, dir_okay=False, show_default=False, metavar="FILE")


ForceOption = Annotated[bool, typer.Option("--force", help="Replace the --out file if it exists.")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")]


@dataclass(frozen=True)
class Session:
    """What a command needs from the common options while it runs."""

    progress: Progress
    root: Path = DEFAULT_ROOT


def _no_lines(result: Any) -> Iterable[str]:
    return ()


def its_path(result: Any) -> list[str]:
    """``-q`` for a command that makes one thing: the path of what it made."""
    return [str(result.path)]


@dataclass(frozen=True)
class Rendering:
    """How a command's result is shown: as text for people (the default), as JSON (``--json``),
    or as its paths alone, one per line (``-q``: ``TREE=$(imagenet prepare -q --size 224)``)."""

    text: Callable[[Any], None]
    quiet: Callable[[Any], Iterable[str]] = _no_lines
    json: Callable[[Any], Any] = lambda result: result
    problems: Callable[[Any], bool] = lambda result: False  # True: exit 3 after showing it


def command(
    name: str, rendering: Rendering, uses_root: bool = True
) -> Callable[[Callable[..., Any]], Callable[..., None]]:
    """Give ``imagenet NAME``'s function the common options, declared and consumed here once.

    The function takes its own options and ``ui`` (a :class:`Session`), runs inside the session
    (errors become one line and an exit code) and returns its result; the result is shown as
    ``rendering`` says. Typer sees the function's parameters followed by the common ones.
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., None]:
        @functools.wraps(function)
        def run(
            *args: Any,
            root: Path = DEFAULT_ROOT,
            json_output: bool = False,
            quiet: bool = False,
            verbose: bool = False,
            debug: bool = False,
            **options: Any,
        ) -> None:
            with session(name, quiet, verbose, debug, root) as ui:
                result = function(*args, ui=ui, **options)
                if json_output:
                    print_json(rendering.json(result))
                elif quiet:
                    for line in rendering.quiet(result):
                        typer.echo(line)
                else:
                    rendering.text(result)
            if rendering.problems(result):
                raise typer.Exit(EXIT_PROBLEMS)

        common = _COMMON if uses_root else _COMMON[1:]
        own = [p for p in inspect.signature(function, eval_str=True).parameters.values() if p.name != "ui"]
        parameters = [*own, *(p for _, p in common)]
        vars(run)["__signature__"] = inspect.Signature(parameters)  # what inspect, and so Typer, reads
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return run

    return decorate


def _option(name: str, annotation: Any, default: Any) -> tuple[Any, inspect.Parameter]:
    return annotation, inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


_COMMON = (
    _option("root", RootOption, DEFAULT_ROOT),
    _option("json_output", JsonOption, False),
    _option("quiet", QuietOption, False),
    _option("verbose", VerboseOption, False),
    _option("debug", DebugOption, False),
)


# What a URL becomes once Typer made a Path of it: s3://bucket/x is s3:/bucket/x.
_URL_AS_PATH = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def local_folder(path: Path, option: str) -> Path:
    """``path``, refused in one line when it names object storage: trees and roots stay local."""
    if _URL_AS_PATH.match(str(path)) and not str(path).startswith("file:"):
        raise typer.BadParameter(
            f"{option} must be a local folder: trees stay on a local disk (in a bucket, 1.28 M objects to "
            "request one by one); a bucket takes exports (imagenet export FORMAT --out URL)"
        )
    return path


@contextmanager
def session(command: str, quiet: bool, verbose: bool, debug: bool, root: Path = DEFAULT_ROOT) -> Iterator[Session]:
    """Run ``imagenet COMMAND``'s body: set up logging and progress, turn errors into one line
    (whose hint names the command) and an exit code."""
    if quiet and verbose:
        raise typer.BadParameter("choose one of --quiet and --verbose", param_hint="'--quiet'")
    _configure_logging(
        logging.ERROR if quiet else logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    )
    try:
        with _stop_signals_as_interrupts():
            yield Session(progress=progress_for(quiet), root=local_folder(root, "--root"))
    except (typer.Exit, BrokenPipeError):  # a closed stdout ends the program quietly (app.main)
        raise
    except typer.BadParameter as error:  # a value only the command's body could judge
        typer.echo(f"imagenet: error: {error.format_message()} — try `imagenet {command} --help`", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except (Exception, KeyboardInterrupt) as error:
        if debug:
            raise
        typer.echo(message_for(error, command), err=True)
        raise typer.Exit(exit_code_for(error)) from None


@contextmanager
def _stop_signals_as_interrupts() -> Iterator[None]:
    """While a command runs, Ctrl-C raises KeyboardInterrupt, and SIGTERM (a batch scheduler) and
    SIGHUP (a closed terminal) raise :class:`~imagenet_cli.errors.Stopped`, its subclass: workers
    are stopped, finished work is kept, one line is printed, the exit code is 128 + signal.
    Outside a command's body, the entry point's handlers stop the program at once (cli/entry.py):
    Typer would turn a KeyboardInterrupt raised in its own code into a silent exit 130."""

    def stop(number: int, _frame: FrameType | None) -> None:
        if not stops.holding(number):
            raise Stopped(number, signal.Signals(number).name)

    def interrupt(number: int, _frame: FrameType | None) -> None:
        if not stops.holding(number):
            raise KeyboardInterrupt

    handlers: dict[int, Any] = {signal.SIGTERM: stop, signal.SIGHUP: stop, signal.SIGINT: interrupt}
    # A signal the process was started with ignored stays ignored: nohup's SIGHUP, the SIGINT of a
    # shell's background job.
    kept = {number for number in handlers if signal.getsignal(number) is signal.SIG_IGN}
    previous = {number: signal.signal(number, handler) for number, handler in handlers.items() if number not in kept}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class _StderrHandler(logging.Handler):
    """Log lines on whatever stderr is now (tests and redirections swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"imagenet: {record.getMessage()}", err=True)


def _configure_logging(level: int) -> None:
    logger = logging.getLogger("imagenet_cli")
    logger.setLevel(level)
    logger.propagate = False
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())


def plural(count: int, noun: str) -> str:
    """``1 archive``, ``4 archives``, ``1 class``, ``2 classes``: a count with its noun."""
    if count == 1:
        return f"1 {noun}"
    return f"{count:,} {noun}{'es' if noun.endswith(('s', 'x', 'ch', 'sh')) else 's'}"


def jsonable(value: Any) -> Any:
    """Result objects (dataclasses, paths, tuples) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def print_json(value: Any) -> None:
    typer.echo(json.dumps(jsonable(value), indent=2, ensure_ascii=False))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned table on stdout; numbers are right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(isinstance(row[i], int) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    typer.echo(line(headers))
    for row in cells:
        typer.echo(line(row))


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def comma_list(value: str | None, option: str) -> list[str] | None:
    """``a,b, c`` as ``["a", "b", "c"]``; None stays None. A list that names nothing (``""``,
    ``,``) is a usage error: it never silently means "all" or "none"."""
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise typer.BadParameter(f"{value!r} names nothing: give a comma-separated list", param_hint=f"'{option}'")
    return items
