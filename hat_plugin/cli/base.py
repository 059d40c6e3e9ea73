"""What every command of ``hat-upscale`` shares: the program name, exit codes, usage errors and the console."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from tqdm import tqdm

from hat_plugin.cli.wording import worded
from hat_plugin.errors import OptionError

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "Console",
    "UsageError",
    "add_talk_options",
    "run_parsed",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PROG = "hat-upscale"


class UsageError(OptionError):
    """A command line that cannot run as given (exit code 2)."""


class Console:
    """All output of a run goes to stderr through here, so messages and progress bars do not tangle."""

    def __init__(self, quiet: bool = False, verbose: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.lost = False
        """Set once stderr could not be written (closed, or a pipe whose reader left): the run goes on silently."""

    def _write(self, text: str) -> None:
        if self.lost:
            return
        try:
            tqdm.write(text, file=sys.stderr)
        except (OSError, ValueError):  # nobody is listening any more; the exit code still tells how it went
            self.lost = True

    def info(self, message: str) -> None:
        """A normal progress message (hidden by --quiet)."""
        if not self.quiet:
            self._write(message)

    def detail(self, message: str) -> None:
        """A message only --verbose shows."""
        if self.verbose:
            self._write(message)

    def warning(self, message: str) -> None:
        """A ``warning:`` line (hidden by --quiet)."""
        if not self.quiet:
            self._write(f"warning: {message}")

    def error(self, message: str, exc: BaseException | None = None) -> None:
        """An ``error:`` line, always shown; with --verbose also the traceback of ``exc``."""
        if self.verbose and exc is not None:
            self._write("".join(traceback.format_exception(exc)).rstrip())
        self._write(f"error: {message}")

    def bar(self, **options: Any) -> tqdm[Any]:
        """A progress bar on stderr, shown only on a terminal and never with --quiet."""
        return tqdm(file=sys.stderr, disable=True if self.quiet or self.lost else None, dynamic_ncols=True, **options)

    @contextlib.contextmanager
    def capturing_warnings(self) -> Iterator[None]:
        """Show Python warnings (e.g. 16-bit to JPEG) and log warnings (the engine's, and the libraries' such as
        tifffile's) as ``warning:`` lines, which --quiet hides."""
        logger = logging.getLogger()  # the root: records of every logger that propagates
        handler = _ConsoleHandler(self)
        logger.addHandler(handler)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                warnings.showwarning = lambda message, *_args, **_kw: self.warning(str(message))
                yield
        finally:
            logger.removeHandler(handler)


def add_talk_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, short_quiet: bool = True) -> None:
    """The ``-q/--quiet`` and ``-v/--verbose`` pair every command has (one or the other), which ``run_parsed``
    hands to the ``Console``; ``short_quiet=False`` leaves ``-q`` free where a command uses it for something else."""
    talk = parser.add_mutually_exclusive_group()
    quiet = ("-q", "--quiet") if short_quiet else ("--quiet",)
    talk.add_argument(*quiet, action="store_true", help="print errors only")
    talk.add_argument("-v", "--verbose", action="store_true", help="print details and tracebacks")


def run_parsed(
    parser: argparse.ArgumentParser,
    argv: list[str],
    body: Callable[[argparse.Namespace, Console], int],
    *,
    interrupted: str,
    name: str = PROG,
) -> int:
    """Parse ``argv`` (options and inputs in any order) and run ``body(args, console)`` the way every command runs:
    argparse's own exit codes, a ``UsageError`` as the usage line plus one ``error:`` line (exit 2), Ctrl-C or
    SIGTERM as ``interrupted`` (exit 130), and Python and engine warnings shown as ``warning:`` lines."""
    try:
        args = parser.parse_intermixed_args(argv)  # options between the inputs, as people type them
    except SystemExit as exc:  # argparse has printed the usage error or the help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    console = Console(quiet=args.quiet, verbose=args.verbose)
    try:
        with console.capturing_warnings():
            return body(args, console)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"{name}: error: {worded(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.error(interrupted)
        return EXIT_INTERRUPTED


class _ConsoleHandler(logging.Handler):
    """Routes ``hat_plugin`` log records at WARNING and above to the console."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.WARNING)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.warning(record.getMessage())
