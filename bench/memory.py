"""``python -m bench.memory``: peak memory per input pixel of a whole CLI run (read, upscale, write), the figure
behind the default pixel limit in ``hat_plugin/limits.py``.

Each case runs ``hat-upscale`` in its own subprocess on a random image of two sizes with a fixed tile (so the
model's activations are the same at both sizes) and takes the growth of peak RSS between them per added input
pixel: what the pipeline itself needs per pixel. With the x2 and x4 slopes of one layout, ``a + b * scale**2``
is solved for ``a`` (bytes per input pixel) and ``b`` (bytes per output pixel).

    python -m bench.memory                      # RGBA 8-bit (the worst layout) at 256 and 512 px, x2 and x4
    python -m bench.memory --layouts rgb8 rgba8 rgba16 --sizes 256 512
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import png
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
MODELS = {
    2: REPO / "hat_plugin" / "bundled" / "hat-tiny-x2.safetensors",
    4: REPO / "hat_plugin" / "bundled" / "hat-tiny-x4.safetensors",
}
LAYOUTS = {"rgb8": (3, 8), "rgba8": (4, 8), "rgba16": (4, 16)}
_RUN = """
import resource, sys
from hat_plugin.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, code)
"""


def _image(folder: Path, side: int, layout: str) -> Path:
    channels, depth = LAYOUTS[layout]
    top = (1 << depth) - 1
    pixels = np.random.default_rng(0).integers(0, top + 1, (side, side, channels)).astype(f"uint{depth}")
    path = folder / f"{layout}-{side}.png"
    if depth == 8:
        Image.fromarray(pixels).save(path)
    else:
        with open(path, "wb") as file:
            png.Writer(side, side, alpha=channels == 4, bitdepth=16).write_array(file, pixels.reshape(-1))
    return path


def peak_rss(image: Path, scale: int, out: Path, tile: int) -> int:
    """Peak RSS in bytes of one CLI run upscaling ``image``."""
    args = [
        str(image),
        "-w",
        str(MODELS[scale]),
        "-o",
        str(out),
        "--overwrite",
        "--quiet",
        "-d",
        "cpu",
        "-t",
        str(tile),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="2")
    done = subprocess.run([sys.executable, "-c", _RUN, *args], capture_output=True, text=True, env=env, check=True)
    rss, code = done.stdout.split()
    if code != "0":
        raise RuntimeError(done.stderr)
    return int(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layouts", nargs="+", default=["rgba8"], choices=sorted(LAYOUTS))
    parser.add_argument("--sizes", nargs=2, type=int, default=[256, 512])
    parser.add_argument("--tile", type=int, default=128)
    args = parser.parse_args()
    small, large = args.sizes
    with tempfile.TemporaryDirectory() as folder:
        for layout in args.layouts:
            slopes = {}
            for scale in (2, 4):
                peaks = [
                    peak_rss(_image(Path(folder), side, layout), scale, Path(folder) / "out", args.tile)
                    for side in (small, large)
                ]
                slopes[scale] = (peaks[1] - peaks[0]) / (large**2 - small**2)
                print(
                    f"{layout} x{scale}: peak RSS {peaks[0] / 1e6:,.0f} MB at {small}px, {peaks[1] / 1e6:,.0f} MB "
                    f"at {large}px: {slopes[scale]:,.0f} bytes per input pixel",
                    flush=True,
                )
            per_output = (slopes[4] - slopes[2]) / 12
            print(
                f"{layout}: a = {slopes[2] - 4 * per_output:,.0f} bytes per input pixel, "
                f"b = {per_output:,.1f} bytes per output pixel",
                flush=True,
            )


if __name__ == "__main__":
    main()
