"""Scoring a model on HR images with the HAT paper's protocol: PSNR and SSIM on Y, ``scale`` pixels of border cropped.

Each HR image is cropped to a multiple of the scale, shrunk with MATLAB-style bicubic to make the LR input, and
upscaled through ``hat_plugin.Upscaler`` (the engine every front end uses, so the score is what users get).
Training validates its EMA weights with ``ValidationSet``; ``tools/evaluate.py`` scores any model with ``score``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..engine import Upscaler
from ..errors import DataError, HATError
from ..metrics import psnr_y, ssim_y
from .degrade import load_rgb8, make_lr, mod_crop
from .folders import scan_folder

__all__ = ["Score", "ValidationSet", "min_side", "prepare", "score"]


@dataclass(frozen=True)
class Score:
    """Y-channel PSNR (dB) and SSIM of one output against its ground truth (or a mean of several)."""

    psnr: float
    ssim: float


def min_side(scale: int) -> int:
    """The smallest HR side that can be scored: the border crop on both sides plus SSIM's 11-pixel window."""
    return 2 * scale + 11 + scale


def prepare(hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hr, lr)``: the HR image cropped to a multiple of ``scale`` and its bicubic LR version."""
    hr = mod_crop(hr, scale)
    return hr, make_lr(hr, scale)


def score(output: np.ndarray, hr: np.ndarray, scale: int) -> Score:
    """Score an ``HxWx3`` uint8 output against the HR image: Y channel, ``scale`` pixels of border cropped."""
    return Score(psnr_y(output, hr, scale), ssim_y(output, hr, scale))


@dataclass
class _Pair:
    name: str
    hr: np.ndarray
    lr: np.ndarray


class ValidationSet:
    """The HR images of a validation folder with their LR inputs, made once and scored as often as needed."""

    def __init__(self, folder: str | os.PathLike[str], scale: int) -> None:
        self.scale = scale
        self.scan = scan_folder(folder, min_side(scale), "validation")
        self.pairs: list[_Pair] = []
        for path in self.scan.files:
            try:
                hr, lr = prepare(load_rgb8(path), scale)
            except HATError as exc:
                self.scan.corrupt.append((path, str(exc)))
                continue
            self.pairs.append(_Pair(path.relative_to(self.scan.folder).as_posix(), hr, lr))
        if not self.pairs:
            raise DataError(f"no image in validation folder {self.scan.folder} could be decoded")

    def score(self, upscaler: Upscaler) -> Score:
        """Mean PSNR-Y and SSIM-Y of ``upscaler`` over the images."""
        scores = [score(upscaler.upscale(p.lr), p.hr, self.scale) for p in self.pairs]
        return Score(float(np.mean([s.psnr for s in scores])), float(np.mean([s.ssim for s in scores])))
