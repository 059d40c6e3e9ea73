"""Shared helpers for the VapourSynth filter tests: the shim built from source into a temporary folder, a core
that has it, clips made from the sample image, the engine's answer for a frame, and vspipe runs with y4m parsing.

Nothing here relies on ``python -m vs_filter install`` having been run: the shim is compiled for the session and
handed to VapourSynth with ``std.LoadPlugin`` (in this process) or ``VAPOURSYNTH_EXTRA_PLUGIN_PATH`` (vspipe).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import vapoursynth as vs
from PIL import Image

from vs_filter import build

REPO = Path(__file__).resolve().parent.parent
GOLDEN_X2 = REPO / "tests" / "data" / "golden" / "tiny-x2-w8" / "weights.safetensors"
SAMPLE = REPO / "samples" / "astronaut.png"
BIN = Path(sys.executable).parent
# The venv's launchers, else (an install with pip --target, as on the GPU machine, puts them where this interpreter
# does not look) the binary inside the vapoursynth package and ``python -m vapoursynth``.
VSPIPE = BIN / "vspipe" if (BIN / "vspipe").exists() else Path(vs.__file__).with_name("vspipe")
VS_CONFIG = [str(BIN / "vapoursynth")] if (BIN / "vapoursynth").exists() else [sys.executable, "-m", "vapoursynth"]


@functools.cache
def shim_dir() -> Path:
    """A folder holding a fresh build of the shim, removed when the session ends."""
    folder = Path(tempfile.mkdtemp(prefix="hat-shim-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    build.build(folder)
    return folder


def hat_core() -> vs.Core:
    """This process's core with the hat namespace: the autoloaded install if present, else the session build."""
    core = vs.core.core
    if not hasattr(core, "hat"):
        core.std.LoadPlugin(str(shim_dir() / build.LIBRARY_NAME))
    assert build.source_hash() in core.hat.name, f"stale hat shim at {core.hat.plugin_path}: run make setup"
    return core


@functools.cache
def sample_image() -> np.ndarray:
    """The sample photo as float32 HxWx3 in [0, 1]."""
    with Image.open(SAMPLE) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def image_frames(count: int, width: int, height: int) -> list[np.ndarray]:
    """``count`` different crops of the sample photo (a slow pan), each HxWx3 float32."""
    image = sample_image()
    return [np.ascontiguousarray(image[3 * i : 3 * i + height, 5 * i : 5 * i + width]) for i in range(count)]


def clip_from_arrays(core: vs.Core, frames: list[np.ndarray], fmt: int = vs.RGBS) -> vs.VideoNode:
    """A clip whose frame n holds ``frames[n]`` (HxWx3 floats), in RGBS or RGBH."""
    height, width = frames[0].shape[:2]
    blank = core.std.BlankClip(format=fmt, width=width, height=height, length=len(frames), keep=True)
    dtype = np.float16 if fmt == vs.RGBH else np.float32

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for plane in range(3):
            np.copyto(np.asarray(out[plane]), frames[n][..., plane].astype(dtype))
        return out

    return blank.std.ModifyFrame(clips=blank, selector=fill)


def frame_array(frame: vs.VideoFrame) -> np.ndarray:
    """A video frame's three planes as one ``(3, H, W)`` array."""
    return np.stack([np.asarray(frame[plane]) for plane in range(frame.format.num_planes)])


@dataclass
class Y4M:
    """A parsed y4m stream: the header fields and the frames as ``(planes, H, W)`` arrays."""

    header: dict[str, str]
    frames: list[np.ndarray]

    @property
    def width(self) -> int:
        return int(self.header["W"])

    @property
    def height(self) -> int:
        return int(self.header["H"])


def parse_y4m(data: bytes) -> Y4M:
    """Parse 4:4:4 16-bit y4m; fails on any byte that does not belong there (e.g. a stray print)."""
    line, _, rest = data.partition(b"\n")
    magic, *fields = line.decode("ascii").split(" ")
    assert magic == "YUV4MPEG2", f"not y4m: {data[:60]!r}"
    header = {f[0]: f[1:] for f in fields}
    assert header["C"] == "444p16", header
    width, height = int(header["W"]), int(header["H"])
    size = 3 * width * height * 2
    frames = []
    while rest:
        marker, _, rest = rest.partition(b"\n")
        assert marker.startswith(b"FRAME"), f"bad frame marker {marker[:40]!r}"
        assert len(rest) >= size, "truncated frame"
        frames.append(np.frombuffer(rest[:size], dtype="<u2").reshape(3, height, width))
        rest = rest[size:]
    return Y4M(header, frames)


def vs_env(tmp_path: Path, plugin_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for a vspipe run: a configured private XDG_CONFIG_HOME and the session's shim."""
    env = dict(os.environ)
    env.pop("VAPOURSYNTH_EXTRA_PLUGIN_PATH", None)
    config_home = tmp_path / "xdg"
    env["XDG_CONFIG_HOME"] = str(config_home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    if plugin_dir is not None:
        env["VAPOURSYNTH_EXTRA_PLUGIN_PATH"] = str(plugin_dir)
    env.update(extra)
    if not (config_home / "vapoursynth" / "vapoursynth.toml").exists():
        subprocess.run([*VS_CONFIG, "config"], env=env, check=True, capture_output=True)
    return env


def vspipe(script: Path, env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[bytes]:
    """Run ``vspipe -c y4m [args] script -`` and return the finished process (stdout holds the video)."""
    return subprocess.run(
        [str(VSPIPE), "-c", "y4m", *args, str(script), "-"],
        env=env,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


@functools.cache
def golden_upscaler():
    """The engine with the golden tiny x2 model on CPU, for the expected pixels."""
    from hat_plugin import Upscaler

    return Upscaler(GOLDEN_X2, device="cpu")


def engine_output(image: np.ndarray) -> np.ndarray:
    """What the engine makes of ``image`` (HxWx3), as ``(3, sH, sW)``: the pixels the filter must produce."""
    return np.moveaxis(golden_upscaler().upscale(image), -1, 0)
