"""Starting the desktop app: command-line arguments, the QApplication, the main window. Qt loads only when the
window opens, so ``hat-gui --help`` is instant."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ORGANIZATION = "hat-plugin"
APPLICATION = "HAT Upscaler"
EXIT_MISSING_LIBRARIES = 1
"""The exit status when Qt's platform plugin lacks system libraries (nothing was opened)."""


QT_VALUE_OPTIONS = frozenset(
    {
        "-platform",
        "-platformpluginpath",
        "-platformtheme",
        "-style",
        "-stylesheet",
        "-display",
        "-qwindowgeometry",
        "-qwindowtitle",
        "-qwindowicon",
        "-plugin",
        "-session",
    }
)
"""Qt's command-line options that take a value (``-platform xcb``): the value is Qt's, not a file to queue."""


def split_qt_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` as (the app's arguments, Qt's options with their values)."""
    ours: list[str] = []
    qt: list[str] = []
    items = iter(argv)
    for arg in items:
        if arg in QT_VALUE_OPTIONS:
            qt.extend([arg, next(items, "")])
        else:
            ours.append(arg)
    return ours, qt


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hat-gui", description="HAT super-resolution desktop app: drop images, compare before and after."
    )
    parser.add_argument("paths", nargs="*", type=Path, help="image files or folders to put in the queue")
    parser.add_argument("--start", action="store_true", help="start processing the queued images right away")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Open the main window (queueing ``paths`` from the command line) and run until it closes.

    Arguments this parser does not know (``-platform offscreen``, ``-style fusion``) are passed on to Qt. When
    Qt's X11 platform would be used and system libraries it needs are missing, says which packages to install and
    returns ``EXIT_MISSING_LIBRARIES`` without loading Qt.
    """
    ours, qt_args = split_qt_options(sys.argv[1:] if argv is None else argv)
    args, unknown = _parser().parse_known_args(ours)
    qt_args += unknown
    from gui.platform_check import xcb_problem

    problem = xcb_problem(os.environ, qt_args)
    if problem is not None:  # Qt would abort with its own wall of text when it loads the plugin
        print(problem, file=sys.stderr)
        return EXIT_MISSING_LIBRARIES
    from hat_plugin.runtime import configure_process

    configure_process()  # before PyTorch is imported (the OpenMP thread policy is read when it loads)
    from PyQt6.QtWidgets import QApplication

    from gui.main_window import MainWindow
    from gui.worker import has_abandoned

    app = QApplication.instance() or QApplication([sys.argv[0], *qt_args])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    window = MainWindow()
    window.show()
    if args.paths:
        window.add_paths(args.paths)
    if args.start:
        window.start()
    code = app.exec()
    if has_abandoned():  # work stuck in a system call (a pipe, a dead network drive) was left running at close:
        sys.stdout.flush()  # end without waiting for it, as Python would at exit
        sys.stderr.flush()
        os._exit(code)
    return code
