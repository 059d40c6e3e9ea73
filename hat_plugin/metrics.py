"""PSNR and SSIM on the Y channel with a border crop: the protocol of the HAT paper (BasicSR's ``calculate_psnr`` /
``calculate_ssim`` with ``test_y_channel=True`` and ``crop_border=scale``).

Used by training's validation (``hat_plugin.training``) and by ``tools/evaluate.py``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr_y", "rgb_to_y", "ssim_y", "to_rgb8"]

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k: np.ndarray = np.exp(-(x * x) / (2 * sigma * sigma))
    k /= k.sum()
    return k


_WINDOW = _gaussian_1d()


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """An 8-bit ``HxWx3`` view of any image the engine accepts: grey is repeated, alpha dropped, 16-bit rounded.

    Grey becomes RGB because the benchmarks read every file as colour (``cv2.imread``) before taking Y.
    """
    if pixels.dtype == np.uint16:
        pixels = np.floor(pixels.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    elif pixels.dtype != np.uint8:
        raise ValueError(f"expected uint8 or uint16 pixels, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    channels = pixels.shape[2]
    colour = pixels[..., :1] if channels in (1, 2) else pixels[..., :3]
    return np.ascontiguousarray(np.broadcast_to(colour, (*colour.shape[:2], 3)))


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma in [16, 235] (float64, not rounded) of an ``HxWx3`` uint8 RGB image."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {rgb.shape}")
    return rgb.astype(np.float64) @ _Y_WEIGHTS + 16.0


def _pair(a: np.ndarray, b: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if border < 0 or a.shape[0] <= 2 * border or a.shape[1] <= 2 * border:
        raise ValueError(f"border {border} leaves nothing of a {a.shape[0]}x{a.shape[1]} image")
    crop = (slice(border, a.shape[0] - border), slice(border, a.shape[1] - border))
    return rgb_to_y(a[crop]), rgb_to_y(b[crop])


def psnr_y(a: np.ndarray, b: np.ndarray, border: int) -> float:
    """PSNR (dB) between two uint8 RGB images on Y, ``border`` pixels cropped from each side; inf when equal."""
    ya, yb = _pair(a, b, border)
    mse = float(np.mean((ya - yb) ** 2))
    return math.inf if mse == 0 else 20.0 * math.log10(255.0 / math.sqrt(mse))


def _blur_valid(image: np.ndarray) -> np.ndarray:
    """Separable 11x11 Gaussian (sigma 1.5), keeping only positions where the window fits (the [5:-5] region)."""
    n = _WINDOW.size
    rows = np.zeros((image.shape[0] - n + 1, image.shape[1]))
    for i in range(n):
        rows += _WINDOW[i] * image[i : image.shape[0] - n + 1 + i]
    out = np.zeros((rows.shape[0], rows.shape[1] - n + 1))
    for i in range(n):
        out += _WINDOW[i] * rows[:, i : rows.shape[1] - n + 1 + i]
    return out


def ssim_y(a: np.ndarray, b: np.ndarray, border: int) -> float:
    """SSIM (Wang et al. 2004, Gaussian window) between two uint8 RGB images on Y after a ``border`` crop."""
    ya, yb = _pair(a, b, border)
    if min(ya.shape) < _WINDOW.size:
        raise ValueError(f"SSIM needs at least {_WINDOW.size}x{_WINDOW.size} pixels after the border crop")
    mu_a, mu_b = _blur_valid(ya), _blur_valid(yb)
    var_a = _blur_valid(ya * ya) - mu_a**2
    var_b = _blur_valid(yb * yb) - mu_b**2
    cov = _blur_valid(ya * yb) - mu_a * mu_b
    num = (2 * mu_a * mu_b + _C1) * (2 * cov + _C2)
    den = (mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2)
    return float(np.mean(num / den))
