"""Starting on a bare X server: the check of the libraries Qt's xcb plugin needs (a library really missing: one
built here and removed), and the real app on a real X server (Xvfb, the xcb platform, not offscreen) with a
screenshot that shows its window."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gui import platform_check
from gui.app import EXIT_MISSING_LIBRARIES, main, split_qt_options
from hat_plugin import images

ROOT = Path(__file__).resolve().parent.parent


def test_xcb_is_the_platform_only_where_qt_would_choose_it():
    x11 = {"DISPLAY": ":0"}
    assert platform_check.uses_xcb(x11, [], "linux")
    assert not platform_check.uses_xcb(x11, [], "darwin")
    assert not platform_check.uses_xcb({"QT_QPA_PLATFORM": "offscreen"}, [], "linux")
    assert not platform_check.uses_xcb({"QT_QPA_PLATFORM": "offscreen"}, [], "linux")
    assert platform_check.uses_xcb({"QT_QPA_PLATFORM": "offscreen"}, ["-platform", "xcb"], "linux")
    assert not platform_check.uses_xcb({}, ["-platform", "wayland"], "linux")
    assert platform_check.uses_xcb({"QT_QPA_PLATFORM": "xcb;wayland"}, [], "linux")
    wayland = {"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}
    assert not platform_check.uses_xcb(wayland, [], "linux")


def test_qt_options_with_values_are_qt_s_not_files_to_queue():
    ours, qt = split_qt_options(["a.png", "-platform", "xcb", "--start", "-style", "fusion", "b.png"])
    assert ours == ["a.png", "--start", "b.png"] and qt == ["-platform", "xcb", "-style", "fusion"]
    assert platform_check.uses_xcb({"QT_QPA_PLATFORM": "offscreen"}, qt, "linux")


def test_a_missing_library_is_named_with_the_packages_of_each_system():
    message = platform_check.xcb_problem(
        {"QT_QPA_PLATFORM": "xcb"}, [], names=["libc.so.6", "libxcb-icccm-hat-test.so.4", "libxcb-keysyms.so.0.0.0"]
    )
    assert message is not None and message.count(".") >= 3 and "\n" not in message
    assert "libxcb-icccm-hat-test.so.4 and libxcb-keysyms.so.0.0.0, which are not installed" in message
    assert "libc.so.6" not in message, "a library that loads is not named"
    assert platform_check.xcb_problem({"QT_QPA_PLATFORM": "offscreen"}, [], names=["libnope.so.1"]) is None
    known = platform_check.missing_message(["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1"])
    assert "`sudo apt install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1` (Debian, Ubuntu)" in known
    assert "`sudo dnf install xcb-util-cursor xcb-util-wm xcb-util-keysyms` (Fedora)" in known
    assert "`sudo pacman -S xcb-util-cursor xcb-util-wm xcb-util-keysyms` (Arch)" in known


@pytest.fixture
def plugin_missing_a_library(tmp_path) -> Path:
    """A shared library linked against another that is then removed: what ``ldd`` shows for Qt's xcb plugin on a
    system without libxcb-cursor0."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build a library with a missing dependency")
    (tmp_path / "dep.c").write_text("int hat_dep(void) { return 1; }\n")
    (tmp_path / "plugin.c").write_text("int hat_dep(void);\nint hat_plugin(void) { return hat_dep(); }\n")
    dep = tmp_path / "libhatgone.so.1"
    plugin = tmp_path / "libqxcb-like.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-Wl,-soname,libhatgone.so.1", "-o", str(dep), str(tmp_path / "dep.c")],
        check=True,
    )
    (tmp_path / "libhatgone.so").symlink_to(dep.name)
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-o", str(plugin), str(tmp_path / "plugin.c"), f"-L{tmp_path}", "-lhatgone"],
        check=True,
    )
    dep.unlink()
    return plugin


def test_hat_gui_names_what_the_xcb_plugin_lacks_and_exits_non_zero(plugin_missing_a_library, monkeypatch, capsys):
    monkeypatch.setattr(platform_check, "_plugin_files", lambda: [plugin_missing_a_library])
    assert platform_check.missing_libraries() == ["libhatgone.so.1"]
    assert main(["-platform", "xcb"]) == EXIT_MISSING_LIBRARIES != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("hat-gui cannot open its window") and "libhatgone.so.1" in err and "\n" not in err


def test_the_libraries_of_the_installed_xcb_plugin_are_found():
    """The project's set-up installs what Qt's xcb plugin needs (the Makefile's system packages)."""
    assert platform_check._plugin_files(), "PyQt6's xcb plugin is where the check looks"
    missing = platform_check.missing_libraries()
    if missing and os.geteuid() != 0:
        pytest.skip(f"not root, so make setup could not install them: {platform_check.missing_message(missing)}")
    assert not missing, platform_check.missing_message(missing)


def _screenshot(display: str, target: Path) -> np.ndarray | None:
    """The X server's whole screen, taken by a separate Qt client on the xcb platform."""
    script = (
        "import sys\nfrom PyQt6.QtGui import QGuiApplication\n"
        "app = QGuiApplication([sys.argv[0], '-platform', 'xcb'])\n"
        "sys.exit(0 if app.primaryScreen().grabWindow(0).save(sys.argv[1]) else 1)\n"
    )
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    done = subprocess.run([sys.executable, "-c", script, str(target)], env=env, capture_output=True, timeout=60)
    return images.read_image(target).pixels if done.returncode == 0 and target.is_file() else None


@pytest.mark.slow
def test_the_app_opens_its_window_on_a_real_x_server(tmp_path):
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (make setup installs it with apt-get when run as root)")
    read, write = os.pipe()
    server = subprocess.Popen(
        [xvfb, "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    app = None
    try:
        with os.fdopen(read) as pipe:
            display = ":" + pipe.readline().strip()
        home = tmp_path / "home"
        home.mkdir()
        (tmp_path / "runtime").mkdir(mode=0o700)
        images.write_image(tmp_path / "photo.png", images.Image(np.full((24, 32, 3), 200, np.uint8)))
        env = {key: value for key, value in os.environ.items() if not key.startswith(("QT_", "XDG_", "WAYLAND"))}
        env.update(
            DISPLAY=display,
            QT_QPA_PLATFORM="xcb",
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_RUNTIME_DIR=str(tmp_path / "runtime"),
        )
        log = (tmp_path / "app.log").open("w")
        app = subprocess.Popen(
            [sys.executable, "-m", "gui", str(tmp_path / "photo.png")], cwd=ROOT, env=env, stderr=log, stdout=log
        )
        shot = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and app.poll() is None:
            time.sleep(2)
            shot = _screenshot(display, tmp_path / "screen.png")
            if shot is not None and _shows_a_window(shot):
                break
        output = (tmp_path / "app.log").read_text()
        assert app.poll() is None, f"the app ended: {output}"
        assert "Could not load the Qt platform plugin" not in output
        assert shot is not None and shot.shape == (800, 1280, 3), "a screenshot of the X server's screen"
        assert _shows_a_window(shot), f"the screen stays blank (see {tmp_path / 'screen.png'})"
    finally:
        if app is not None:
            app.terminate()
            app.wait(30)
        server.terminate()
        server.wait(30)


def _shows_a_window(shot: np.ndarray) -> bool:
    """More than a blank screen: many colours (text, icons, the queue's thumbnail) over a large part of it."""
    colours = len(np.unique(shot.reshape(-1, 3), axis=0))
    lit = float((shot.max(axis=-1) > 40).mean())
    return colours > 50 and lit > 0.3
