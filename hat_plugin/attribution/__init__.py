"""LAM attribution maps and the Diffusion Index: which input pixels a super-resolution network used for a window of
its output (Gu & Dong, "Interpreting Super-Resolution Networks with Local Attribution Maps", CVPR 2021).

::

    from hat_plugin import attribution
    res = attribution.lam(model, lr_image, x, y, window=16, steps=50, sigma=1.2, kernel_size=9)
    res.map   # (H, W) float: |channel-summed attribution| / max, input size
    res.di    # Diffusion Index, (1 - Gini(map)) * 100
    rgb = attribution.render_heatmap(lr_image, res.map)   # the heat map over the input, uint8 RGB

Details, and how the official code's conventions map onto ours: ``docs/attribution.md``.
"""

from __future__ import annotations

from .bicubic import Bicubic
from .figure import lam_figure
from .gini import diffusion_index, gini
from .lam import LAMResult, lam
from .region import AUTO_MARGIN, FULL_IMAGE_LIMIT, Crop, CropPolicy, window_around
from .render import colorize, render_heatmap

__all__ = [
    "AUTO_MARGIN",
    "FULL_IMAGE_LIMIT",
    "Bicubic",
    "Crop",
    "CropPolicy",
    "LAMResult",
    "colorize",
    "diffusion_index",
    "gini",
    "lam",
    "lam_figure",
    "render_heatmap",
    "window_around",
]
