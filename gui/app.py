"""Starting the desktop app: command-line arguments, the QApplication, the system theme, the main window."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Qt loads only when the window opens, so `hat-gui --help` is instant
    from PyQt6.QtWidgets import QApplication

ORGANIZATION = "hat-plugin"
APPLICATION = "HAT Upscaler"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hat-gui", description="HAT super-resolution desktop app: drop images, compare before and after."
    )
    parser.add_argument("paths", nargs="*", type=Path, help="image files or folders to put in the queue")
    parser.add_argument("--start", action="store_true", help="start processing the queued images right away")
    return parser


def apply_system_theme(app: QApplication) -> None:
    """Let light and dark follow the system: Qt tracks the colour scheme; the old Windows style cannot show a
    dark palette, so Fusion replaces it there."""
    if app.style().name().lower() == "windowsvista":
        app.setStyle("Fusion")


def main(argv: list[str] | None = None) -> int:
    """Open the main window (queueing ``paths`` from the command line) and run until it closes.

    Arguments this parser does not know (``-platform offscreen``, ``-style fusion``) are passed on to Qt.
    """
    args, qt_args = _parser().parse_known_args(argv)
    from hat_plugin.runtime import configure_process

    configure_process()  # before PyTorch is imported (the OpenMP thread policy is read when it loads)
    from PyQt6.QtWidgets import QApplication

    from gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0], *qt_args])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    apply_system_theme(app)
    window = MainWindow()
    window.show()
    if args.paths:
        window.add_paths(args.paths)
    if args.start:
        window.start()
    return app.exec()
