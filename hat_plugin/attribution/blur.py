"""The Gaussian blur path of LAM: the input seen through ever weaker blurs, from ``sigma`` down to none.

The official LAM code (``GaussianBlurPath``) builds ``steps + 1`` isotropic kernels with sigmas spaced linearly
from ``sigma`` to 0 and feeds the network ``steps`` images, the input blurred by kernels 1..steps (kernel 0, the
full ``sigma``, only enters the first derivative), with the path derivative of image ``i``
``blur(input, kernel[i + 1] - kernel[i]) * steps``. Blurs are correlations with the kernel anchored at index
``size // 2`` and the border mirrored without repeating the edge pixel (OpenCV's ``filter2D`` defaults,
``BORDER_REFLECT_101``).

Here the kernels are applied separably (an isotropic Gaussian is the outer product of a 1-D one with itself),
in float64, and only over the region of the image the network will see: the mirrored border comes from the whole
image, so a region's path images are exactly those of the whole image, cut out.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BlurPath", "gaussian_kernel_1d", "path_sigmas", "reflect_101"]

SIGMA_EPSILON = 1e-5
"""Added to every sigma before use (as the official kernel does), so sigma 0 is a unit impulse, not 0/0."""


def path_sigmas(sigma: float, steps: int) -> np.ndarray:
    """The ``steps + 1`` sigmas of the path, ``sigma`` first and 0 last (linearly spaced)."""
    return np.linspace(sigma, 0.0, steps + 1)


def gaussian_kernel_1d(size: int, sigma: float) -> np.ndarray:
    """The 1-D factor of the official isotropic kernel, normalised to sum 1 (float64, ``size`` taps).

    Taps sit at offsets ``-size // 2 + 1 .. size // 2`` (Python floor division), so an even size is one tap
    longer on the positive side; the 2-D kernel is ``outer(k, k)``, which is the official kernel exactly
    (its normalisation factorises too).
    """
    offsets = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
    taps = np.exp(-(offsets**2) / (2.0 * (sigma + SIGMA_EPSILON) ** 2))
    normalised: np.ndarray = taps / taps.sum()
    return normalised


def reflect_101(index: np.ndarray, length: int) -> np.ndarray:
    """Map any integer coordinates into ``[0, length)`` by mirroring without repeating the edge (``dcb|abcd|cba``),
    repeatedly for coordinates far outside, as OpenCV's ``BORDER_REFLECT_101``."""
    if length == 1:
        return np.zeros_like(index)
    period = 2 * length - 2
    folded = np.mod(index, period)
    mirrored: np.ndarray = np.where(folded < length, folded, period - folded)
    return mirrored


class BlurPath:
    """Path images and path derivatives of one image region, step by step.

    Args:
        image: ``(3, H, W)`` float64 tensor, the whole input image (any device; kept on it).
        box: ``(top, left, height, width)`` of the region the network sees.
        sigma, steps, kernel_size: the path (see the module docstring).
    """

    def __init__(self, image: Tensor, box: tuple[int, int, int, int], sigma: float, steps: int, kernel_size: int):
        top, left, height, width = box
        full_h, full_w = image.shape[-2:]
        before = kernel_size // 2
        after = kernel_size - 1 - before
        rows = torch.from_numpy(reflect_101(np.arange(top - before, top + height + after), full_h))
        cols = torch.from_numpy(reflect_101(np.arange(left - before, left + width + after), full_w))
        padded = image.to(torch.float64)[:, rows.to(image.device)][:, :, cols.to(image.device)]
        self._padded = padded.unsqueeze(1)  # (3, 1, H + k - 1, W + k - 1): channels as a batch
        kernels = np.stack([gaussian_kernel_1d(kernel_size, s) for s in path_sigmas(sigma, steps)])
        self._kernels = torch.from_numpy(kernels).to(image.device)
        self.steps = steps
        self.size = kernel_size

    def blurred(self, first: int, last: int) -> Tensor:
        """The region blurred by kernels ``first..last`` (inclusive): ``(last - first + 1, 3, H, W)`` float64."""
        taps = self._kernels[first : last + 1]
        count = taps.shape[0]
        vertical = F.conv2d(self._padded, taps.view(count, 1, self.size, 1))  # (3, count, H, W + k - 1)
        channels, _, height, width = vertical.shape
        grouped = vertical.reshape(1, channels * count, height, width)
        horizontal = taps.repeat(channels, 1).view(channels * count, 1, 1, self.size)
        out = F.conv2d(grouped, horizontal, groups=channels * count)
        return out.view(channels, count, height, -1).transpose(0, 1)

    def segment(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """Path images ``start..stop-1`` (``0 <= start < stop <= steps``) and their derivatives, float64
        ``(stop - start, 3, H, W)`` each: image ``i`` is the blur by kernel ``i + 1``, its derivative
        ``(blur_{i+1} - blur_i) * steps`` (the official difference kernel, applied by linearity)."""
        blurred = self.blurred(start, stop)
        images = blurred[1:]
        derivatives = (blurred[1:] - blurred[:-1]) * self.steps
        return images, derivatives
