"""Help > About: what this program is, the versions it runs on (for bug reports) and the licence of the model."""

from __future__ import annotations

import html
import platform
import sys
from importlib import metadata

from PyQt6.QtCore import PYQT_VERSION_STR, QT_VERSION_STR, Qt
from PyQt6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

import hat_plugin
from gui.models import friendly_name
from hat_plugin.weights import ModelEntry

__all__ = ["AboutDialog", "about_html", "versions"]

HAT_CREDIT = (
    "HAT by Xiangyu Chen et al. (XPixelGroup/HAT, CVPR 2023), Apache-2.0; this is an independent implementation."
)


def versions() -> dict[str, str]:
    """The versions worth naming in a bug report."""
    try:
        product = metadata.version("hat-plugin")
    except metadata.PackageNotFoundError:
        product = hat_plugin.__version__
    torch = sys.modules.get("torch")
    return {
        "hat-plugin": product,
        "Python": platform.python_version(),
        "PyTorch": str(getattr(torch, "__version__", "not loaded yet")),
        "Qt": f"{QT_VERSION_STR} (PyQt {PYQT_VERSION_STR})",
        "System": platform.platform(terse=True),
    }


def about_html(entry: ModelEntry | None, weights_file: str = "") -> str:
    """The About text: the program, its versions, and the model in use with its licence."""
    if entry is not None:
        model = (
            f"{html.escape(friendly_name(entry))}: {html.escape(entry.description)}"
            f"<br>licence: {html.escape(entry.license)}"
        )
    elif weights_file:
        model = f"the weights file {html.escape(weights_file)}<br>licence: that of the file's source"
    else:
        model = "the best model for the chosen scale (see the Model box)"
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in versions().items())
    return (
        "<h3>HAT Upscaler</h3>"
        "<p>Super-resolution with HAT (Hybrid Attention Transformer): drop images, upscale them, compare.</p>"
        f"<table cellspacing='4'>{rows}</table>"
        f"<p><b>Model</b>: {model}</p>"
        f"<p>{html.escape(HAT_CREDIT)}<br>hat-plugin is licensed under Apache-2.0.</p>"
    )


class AboutDialog(QDialog):
    """A small window with ``about_html``; selectable text, so versions can be copied into a bug report."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About HAT Upscaler")
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addWidget(buttons)
        self.setMinimumWidth(420)
