"""PSNR/SSIM of HAT models on a folder of HR images, with bicubic as the baseline (the HAT paper's protocol).

Each HR image is cropped to a multiple of the scale, shrunk with MATLAB-style bicubic (antialiased) to make the
LR input, upscaled by the model (through ``hat_plugin.Upscaler``, the engine the front ends use) and by bicubic,
and scored on the Y channel with ``scale`` border pixels cropped: the protocol of ``hat_plugin.training.validation``,
which training validates with. ``--degrade pil`` makes the LR image (and the bicubic baseline) with Pillow's
bicubic resize instead, and ``--crop N`` scores the centred N x N crop of each image (the check of the bundled
models on photographs: ``--crop 384 --degrade pil``).

    python -m tools.evaluate hat-tiny-x2 hat-tiny-x4 --images build/sr-data/heldout
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hat_plugin import HATError, Upscaler
from hat_plugin.files import atomic_path
from hat_plugin.imresize import imresize
from hat_plugin.training.degrade import load_rgb8
from hat_plugin.training.folders import image_files
from hat_plugin.training.validation import Score, min_side, prepare, score

__all__ = ["DEGRADATIONS", "Row", "bicubic", "centre_crop", "evaluate", "hr_lr_pair", "main"]

DEGRADATIONS = ("matlab", "pil")
"""How the LR image and the bicubic baseline are made: MATLAB-style ``imresize`` (the paper's), or Pillow's."""


@dataclass(frozen=True)
class Row:
    """One image scored for one model, next to the bicubic baseline at the same scale."""

    model: str
    image: str
    scale: int
    bicubic: Score
    result: Score

    @property
    def gain(self) -> float:
        return self.result.psnr - self.bicubic.psnr


def _pil_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC))


def bicubic(lr: np.ndarray, scale: int, degrade: str = "matlab") -> np.ndarray:
    """The baseline: bicubic upscaling of a uint8 image, MATLAB-style or Pillow's."""
    if degrade == "pil":
        return _pil_resize(lr, lr.shape[1] * scale, lr.shape[0] * scale)
    return imresize(lr, float(scale))


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The centred ``size`` x ``size`` crop (the whole image along a side shorter than ``size``)."""
    h, w = image.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[top : top + size, left : left + size]


def hr_lr_pair(path: Path, scale: int, crop: int = 0, degrade: str = "matlab") -> tuple[np.ndarray, np.ndarray]:
    """The HR image of ``path`` (its centred ``crop``, cut to a multiple of ``scale``) and its LR version."""
    image = load_rgb8(path)
    if crop:
        image = centre_crop(image, crop)
    if degrade == "pil":
        hr = image[: image.shape[0] // scale * scale, : image.shape[1] // scale * scale]
        return hr, _pil_resize(hr, hr.shape[1] // scale, hr.shape[0] // scale)
    return prepare(image, scale)


def evaluate(
    upscaler: Upscaler, name: str, files: list[Path], *, crop: int = 0, degrade: str = "matlab"
) -> tuple[list[Row], list[str]]:
    """Score ``upscaler`` and bicubic on every HR file (its centred ``crop`` when given, LR made the ``degrade``
    way); returns the rows and one message per unreadable file."""
    s = upscaler.scale
    rows, failures = [], []
    for path in files:
        try:
            hr, lr = hr_lr_pair(path, s, crop, degrade)
        except (HATError, ValueError) as exc:
            failures.append(f"{path}: skipped: {exc}")
            continue
        if min(hr.shape[:2]) < min_side(s) - s:
            failures.append(f"{path}: skipped: too small to score at x{s}")
            continue
        output = upscaler.upscale(lr)
        rows.append(Row(name, path.name, s, score(bicubic(lr, s, degrade), hr, s), score(output, hr, s)))
    return rows, failures


def _mean(rows: list[Row], model: str) -> Row:
    picked = [r for r in rows if r.model == model]

    def avg(values: list[float]) -> float:
        return float(np.mean(values))

    return Row(
        model,
        "mean",
        picked[0].scale,
        Score(avg([r.bicubic.psnr for r in picked]), avg([r.bicubic.ssim for r in picked])),
        Score(avg([r.result.psnr for r in picked]), avg([r.result.ssim for r in picked])),
    )


def format_table(rows: list[Row], models: list[str]) -> str:
    """A Markdown table: per image and mean, bicubic and model PSNR/SSIM and the PSNR gain."""
    lines = [
        "| model | image | scale | bicubic PSNR / SSIM | model PSNR / SSIM | gain (dB) |",
        "|---|---|---|---|---|---|",
    ]
    for model in models:
        picked = [r for r in rows if r.model == model]
        if not picked:
            continue
        for row in [*picked, _mean(rows, model)]:
            image = f"**{row.image}**" if row.image == "mean" else row.image
            lines.append(
                f"| {row.model} | {image} | x{row.scale} | {row.bicubic.psnr:.2f} / {row.bicubic.ssim:.4f} "
                f"| {row.result.psnr:.2f} / {row.result.ssim:.4f} | {row.gain:+.2f} |"
            )
    return "\n".join(lines)


def _finite(value: object) -> object:
    """JSON has no infinity: a perfect PSNR is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m tools.evaluate``."""
    p = argparse.ArgumentParser(prog="python -m tools.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="weights files or manifest names (e.g. hat-tiny-x2)")
    p.add_argument("--images", type=Path, required=True, help="folder of HR images (png, jpg, ...)")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument("--precision", default="fp32", help="fp32, fp16 or bf16 (default fp32)")
    p.add_argument("--tile", type=int, default=0, help="tile side in LR pixels (0: whole image when it fits)")
    p.add_argument("--overlap", type=int, default=16)
    p.add_argument("--crop", type=int, default=0, help="score the centred N x N crop of each image (0: all of it)")
    p.add_argument("--degrade", choices=DEGRADATIONS, default="matlab", help="how LR and the baseline are made")
    p.add_argument("--json", type=Path, help="also write every score to this JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit status 0 when every image was scored, 1 when some were skipped, 2 on a usage or model error."""
    args = build_parser().parse_args(argv)
    if not args.images.is_dir():
        print(f"error: {args.images} is not a folder of HR images", file=sys.stderr)
        return 2
    files = image_files(args.images)
    if not files:
        print(f"error: no image files in {args.images}", file=sys.stderr)
        return 2
    rows: list[Row] = []
    failures: list[str] = []
    for model in args.models:
        try:
            upscaler = Upscaler(
                model, device=args.device, precision=args.precision, tile=args.tile, overlap=args.overlap
            )
        except HATError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        model_rows, model_failures = evaluate(upscaler, model, files, crop=args.crop, degrade=args.degrade)
        rows += model_rows
        failures += [f for f in model_failures if f not in failures]
    print(format_table(rows, args.models))
    for failure in failures:
        print(failure, file=sys.stderr)
    if args.json:
        records = [{**asdict(r), "gain": r.gain} for r in rows]
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(_finite(records), indent=1))
    return 1 if failures or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
