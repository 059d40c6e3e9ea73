"""``python -m hat_plugin``: the command line, see :mod:`hat_plugin.cli`."""

import contextlib
import os
import signal
import sys
from types import FrameType

from hat_plugin.cli import EXIT_INTERRUPTED, main


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so it stops as for Ctrl-C: temporary files removed, finished video
    chunks kept, nothing half-written under a final name."""


def run() -> int:
    """The console entry point: ``main`` in a process whose standard streams are safe to use, a quiet exit when
    stdout is closed early, and exit code 130 for Ctrl-C or SIGTERM at any moment, even after the work is done
    (a command may handle them its own way meanwhile, as training does)."""
    _usable_streams()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = main()
    except BrokenPipeError:  # e.g. `python -m hat_plugin models | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    signal.signal(signal.SIGINT, _interrupted_at_exit)
    signal.signal(signal.SIGTERM, _interrupted_at_exit)
    return code


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the cleaning up
    raise Terminated


def _usable_streams() -> None:
    """Reopen a closed standard stream on the null device (so no file we open later becomes fd 2 and gets our
    messages), and let text that the terminal's encoding cannot show (``PYTHONIOENCODING=ascii``) be escaped."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - lives as long as the process
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _interrupted_at_exit(_signum: int, _frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM while Python shuts down (the outputs are all written): exit 130 at once, no atexit
    traceback."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    sys.exit(run())
