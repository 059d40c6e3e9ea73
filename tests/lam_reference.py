"""A plain reference of LAM as the official code (X-Lowlevel-Vision/LAM_Demo) computes it, for tests only.

Written from reading that code, in the most literal form: float64 throughout, one path image at a time, the whole
image, 2-D kernels (no separable trick), the difference kernel applied directly (not by linearity), PyTorch's
reflect padding (OpenCV's BORDER_REFLECT_101) instead of our index mirroring, the objective on the whole output
cropped afterwards, the Gini coefficient by its textbook sum. Slow and simple on purpose: the product's batched
implementation (``hat_plugin.attribution``) must agree with it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def kernel_2d(size: int, sigma: float) -> np.ndarray:
    """The official isotropic kernel: offsets ``-size // 2 + 1 .. size // 2``, ``sigma + 1e-5``, sum 1."""
    offsets = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
    xx, yy = np.meshgrid(offsets, offsets)
    kernel = np.exp(-(xx**2 + yy**2) / (2.0 * (sigma + 1e-5) ** 2))
    return kernel / kernel.sum()


def filter_2d(image: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    """OpenCV ``filter2D`` of a ``(3, H, W)`` float64 image: correlation, anchor ``size // 2``, reflect-101."""
    size = kernel.shape[0]
    before, after = size // 2, size - 1 - size // 2
    padded = F.pad(image[None], (before, after, before, after), mode="reflect")
    weight = torch.from_numpy(kernel).to(torch.float64)[None, None].repeat(3, 1, 1, 1)
    return F.conv2d(padded, weight, groups=3)[0]


def objective(output: torch.Tensor, h: int, w: int, window: int) -> torch.Tensor:
    """``attr_grad``: gradient magnitude on the whole output, then the window's rows ``h..`` and columns ``w..``."""
    rows, cols = output.shape[2], output.shape[3]
    h_grad = (output[:, :, : rows - 1, :] - output[:, :, 1:, :]) ** 2
    w_grad = (output[:, :, :, : cols - 1] - output[:, :, :, 1:]) ** 2
    grad = (h_grad[:, :, :, :-1] + w_grad[:, :, :-1, :]) ** 0.5
    return grad[:, :, h : h + window, w : w + window].sum()


def gini(values: np.ndarray) -> float:
    array = np.array(values, dtype=np.float64).flatten()
    if array.min() < 0:
        array -= array.min()
    array += 1e-7
    array = np.sort(array)
    n = array.shape[0]
    return sum((2 * i - n - 1) * array[i - 1] for i in range(1, n + 1)) / (n * array.sum())


def reference_lam(
    model: nn.Module,
    image: np.ndarray,
    x: int,
    y: int,
    window: int = 16,
    steps: int = 50,
    sigma: float = 1.2,
    kernel_size: int = 9,
) -> tuple[np.ndarray, float]:
    """``(map, DI)`` for the window at output column ``x``, row ``y`` of the uint8 ``HxWx3`` ``image``."""
    model = model.double().eval()
    picture = torch.from_numpy(image.astype(np.float64) / 255.0).permute(2, 0, 1).contiguous()
    sigmas = np.linspace(sigma, 0.0, steps + 1)
    kernels = [kernel_2d(kernel_size, s) for s in sigmas]
    total = torch.zeros_like(picture)
    for i in range(steps):
        path_image = filter_2d(picture, kernels[i + 1])
        derivative = filter_2d(picture, (kernels[i + 1] - kernels[i]) * steps)
        path_image.requires_grad_(True)
        out = model(path_image[None])
        objective(out, y, x, window).backward()
        grad = path_image.grad
        assert grad is not None
        grad = torch.where(torch.isnan(grad), torch.zeros_like(grad), grad)
        total += grad * derivative
    mean = (total / steps).numpy()
    summed = np.abs(mean.sum(axis=0))
    amap = summed / summed.max()
    value = gini(amap)
    assert math.isfinite(value)
    return amap, (1.0 - value) * 100.0
