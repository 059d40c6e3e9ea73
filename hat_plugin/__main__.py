"""``python -m hat_plugin``: the command line, see :mod:`hat_plugin.cli`."""

import os
import sys

from hat_plugin.cli import main


def run() -> int:
    """The console entry point: ``main`` plus a quiet exit when stdout is closed early."""
    try:
        return main()
    except BrokenPipeError:  # e.g. `python -m hat_plugin models | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(run())
