"""The LAM objective: how much edge there is in a window of the network's output.

Officially (``attr_grad`` of the LAM code): per channel, forward differences down and right,
``g[r, c] = sqrt((o[r, c] - o[r + 1, c])**2 + (o[r, c] - o[r, c + 1])**2)`` on the whole ``(H - 1) x (W - 1)``
grid where both neighbours exist, then the sum of ``g`` over rows ``[y, y + window)`` and columns
``[x, x + window)`` of that grid, over all channels. A window reaching past the grid is cut short by the slicing,
silently (``window_extent``).

The square root is taken over the whole grid, not only the window, and that matters: where both differences are
exactly 0 (anywhere in the output), the square root's derivative is 0 * inf = NaN, which backpropagates into the
input gradient; the official code then sets NaN gradient entries to 0. We compute it the same way.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["gradient_magnitude_sum", "window_extent"]


def window_extent(start: int, window: int, output_length: int) -> int:
    """How many rows (or columns) of the window lie on the gradient grid of an output of ``output_length``."""
    return max(0, min(start + window, output_length - 1) - start)


def gradient_magnitude_sum(output: Tensor, top: int, left: int, rows: int, cols: int) -> Tensor:
    """Sum over the batch, the channels and the ``rows x cols`` grid points from ``(top, left)`` of the gradient
    magnitude of ``output`` ``(B, C, H, W)``, the magnitude taken over the whole output (see the module docstring);
    needs ``top + rows < H`` and ``left + cols < W``."""
    here = output[:, :, :-1, :-1]
    down = here - output[:, :, 1:, :-1]
    right = here - output[:, :, :-1, 1:]
    magnitude = torch.sqrt(down * down + right * right)
    return magnitude[:, :, top : top + rows, left : left + cols].sum()
