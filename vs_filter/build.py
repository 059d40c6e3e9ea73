"""Compile the native shim (``hat_shim.c``) and install it where VapourSynth autoloads plugins.

The shim is built from source with the system C compiler against the headers shipped in the vapoursynth
wheel, so it always matches the VapourSynth of this environment.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from hat_plugin.errors import OutputError
from hat_plugin.files import atomic_path

SOURCE = Path(__file__).with_name("hat_shim.c")
LIBRARY_NAME = "libhat_shim.dylib" if sys.platform == "darwin" else "libhat_shim.so"


class BuildError(RuntimeError):
    """The shim could not be compiled or installed; the message says what to do."""


@functools.cache
def source_hash() -> str:
    """Short hash of the C source; compiled into the shim so a stale install can be detected."""
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]


def find_compiler() -> str:
    """The C compiler to use: ``$CC`` when set, else cc, gcc or clang from PATH."""
    chosen = os.environ.get("CC", "").strip()
    if chosen:
        if not shutil.which(chosen.split()[0]):
            raise BuildError(f"CC={chosen!r} is not an executable on PATH; unset CC or point it at a C compiler")
        return chosen
    for candidate in ("cc", "gcc", "clang"):
        if shutil.which(candidate):
            return candidate
    raise BuildError(
        "no C compiler found to build the VapourSynth shim: install one (e.g. `apt install gcc` or "
        "`xcode-select --install`) or set CC"
    )


def compile_command(compiler: str, output: Path) -> list[str]:
    """The command line that builds the shim from ``SOURCE`` into ``output``."""
    import vapoursynth

    flags = ["-O2", "-std=c11", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra"]
    link = ["-dynamiclib"] if sys.platform == "darwin" else ["-shared", "-ldl", "-lpthread"]
    return [
        *compiler.split(),
        *flags,
        f'-DHAT_SHIM_HASH="{source_hash()}"',
        f"-I{vapoursynth.get_include()}",
        str(SOURCE),
        "-o",
        str(output),
        *link,
    ]


def build(out_dir: Path) -> Path:
    """Compile the shim into ``out_dir`` (replacing any previous build atomically); return its path."""
    if sys.platform == "win32":
        raise BuildError("building the VapourSynth shim on Windows is not supported yet")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"cannot create the plugin folder {out_dir}: {exc.strerror}") from exc
    target = out_dir / LIBRARY_NAME
    try:
        with atomic_path(target, mode=0o755) as tmp:
            result = subprocess.run(compile_command(find_compiler(), tmp), capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise BuildError(f"compiling {SOURCE.name} failed:\n{result.stderr.strip()}")
    except OutputError as exc:
        raise BuildError(f"cannot install the shim: {exc}") from exc
    return target


def default_plugin_dir() -> Path:
    """VapourSynth's autoload folder of this Python environment (``<site-packages>/vapoursynth/plugins``)."""
    import vapoursynth

    return Path(vapoursynth.get_plugin_dir())


def install(target_dir: Path | None = None) -> Path:
    """Build the shim into ``target_dir`` (default: the autoload folder); return the installed library."""
    return build(default_plugin_dir() if target_dir is None else Path(target_dir))


def uninstall(target_dir: Path | None = None) -> bool:
    """Remove the installed shim; return whether there was one."""
    target = (default_plugin_dir() if target_dir is None else Path(target_dir)) / LIBRARY_NAME
    existed = target.exists()
    target.unlink(missing_ok=True)
    return existed
