"""Bicubic interpolation as a network: the baseline LAM compares models against (each output pixel reads 4x4
input pixels, so its attribution is as local as can be)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Bicubic"]


class Bicubic(nn.Module):
    """``(B, C, H, W)`` -> ``(B, C, H * scale, W * scale)`` by PyTorch's bicubic interpolation (a = -0.75,
    pixel centres aligned as ``align_corners=False``, edges clamped)."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = int(scale)

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
