"""Before Qt loads its X11 platform plugin: which system libraries the plugin lacks, and which packages provide
them, so ``hat-gui`` says so in one sentence instead of Qt's "Could not load the Qt platform plugin" text."""

from __future__ import annotations

import ctypes
import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

__all__ = ["PACKAGES", "missing_libraries", "missing_message", "uses_xcb", "xcb_problem"]

PACKAGES: dict[str, tuple[str, str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image", "xcb-util-image"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util", "xcb-util"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil", "xcb-util-renderutil"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon", "libxkbcommon"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb", "libx11"),
    "libxcb.so.1": ("libxcb1", "libxcb", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb", "libxcb"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl", "libglvnd"),
    "libGL.so.1": ("libgl1", "libglvnd-glx", "libglvnd"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig", "fontconfig"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs", "dbus"),
}
"""The libraries Qt's xcb plugin links (``ldd`` of ``libqxcb.so`` and ``libQt6XcbQpa.so.6``) that a bare system
may lack, with the package of each on Debian/Ubuntu, Fedora and Arch."""


def uses_xcb(environ: Mapping[str, str], qt_args: Sequence[str], platform: str = sys.platform) -> bool:
    """Whether Qt would start with its X11 (xcb) platform: named by ``-platform`` or ``QT_QPA_PLATFORM`` (the
    first of a ``;`` list), else the default on Linux outside a Wayland session."""
    chosen = environ.get("QT_QPA_PLATFORM", "")
    for i, arg in enumerate(qt_args):
        if arg in ("-platform", "--platform") and i + 1 < len(qt_args):
            chosen = qt_args[i + 1]
        elif arg.startswith(("-platform=", "--platform=")):
            chosen = arg.split("=", 1)[1]
    if chosen:
        return chosen.split(";")[0].split(":")[0].strip() == "xcb"
    wayland = environ.get("XDG_SESSION_TYPE") == "wayland" and bool(environ.get("WAYLAND_DISPLAY"))
    return platform.startswith("linux") and not wayland


def _plugin_files() -> list[Path]:
    """PyQt6's xcb plugin and the Qt library behind it (none when PyQt6 is not installed)."""
    spec = importlib.util.find_spec("PyQt6")
    if spec is None or not spec.submodule_search_locations:
        return []
    qt = Path(next(iter(spec.submodule_search_locations))) / "Qt6"
    files = [qt / "plugins" / "platforms" / "libqxcb.so", qt / "lib" / "libQt6XcbQpa.so.6"]
    return [f for f in files if f.is_file()]


def _ldd_missing(files: Iterable[Path]) -> list[str] | None:
    """The libraries ``ldd`` reports "not found" for ``files``; None when ``ldd`` cannot tell."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    missing: list[str] = []
    for file in files:
        try:
            done = subprocess.run([ldd, str(file)], capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        for line in done.stdout.splitlines():
            name, _, where = line.strip().partition(" => ")
            if where.strip() == "not found" and name not in missing:
                missing.append(name)
    return missing


def missing_libraries(names: Iterable[str] | None = None) -> list[str]:
    """The libraries that cannot be loaded: of ``names`` (each tried with the dynamic loader), or by default
    what ``ldd`` says the xcb plugin lacks (the loader on ``PACKAGES`` where ``ldd`` cannot tell)."""
    if names is None:
        files = _plugin_files()
        if not files:
            return []
        found = _ldd_missing(files)
        if found is not None:
            return found
        names = PACKAGES
    missing = []
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            missing.append(name)
    return missing


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def missing_message(missing: Sequence[str]) -> str:
    """One sentence: which libraries are missing and the command that installs them on each family of systems."""
    debian, fedora, arch = (
        list(dict.fromkeys(PACKAGES.get(name, (name, name, name))[column] for name in missing)) for column in range(3)
    )
    return (
        f"hat-gui cannot open its window: Qt's X11 platform plugin (xcb) needs {_join(missing)}, which "
        f"{'is' if len(missing) == 1 else 'are'} not installed; install "
        f"{'it' if len(missing) == 1 else 'them'} with `sudo apt install {' '.join(debian)}` (Debian, Ubuntu), "
        f"`sudo dnf install {' '.join(fedora)}` (Fedora) or `sudo pacman -S {' '.join(arch)}` (Arch)."
    )


def xcb_problem(environ: Mapping[str, str], qt_args: Sequence[str], names: Iterable[str] | None = None) -> str | None:
    """The sentence to show when Qt would use the xcb platform and libraries it needs are missing; else None."""
    if not uses_xcb(environ, qt_args):
        return None
    missing = missing_libraries(names)
    return missing_message(missing) if missing else None
