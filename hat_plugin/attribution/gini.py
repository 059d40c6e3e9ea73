"""The Gini coefficient of an attribution map and the Diffusion Index derived from it.

As the official LAM code computes it: values shifted up if any is negative, ``1e-7`` added to every value
(so an all-zero map is perfectly equal, not 0/0), sorted ascending, then
``G = sum((2 i - n - 1) x_i) / (n sum(x))`` for ``i = 1..n``. ``DI = (1 - G) * 100``: near 0 when a few
pixels carry all the attribution, near 100 when every pixel carries the same.
"""

from __future__ import annotations

import numpy as np

__all__ = ["diffusion_index", "gini"]

GINI_OFFSET = 1e-7


def gini(values: np.ndarray) -> float:
    """Gini coefficient of all the values of ``values`` (any shape; not modified), computed in float64."""
    flat = np.array(values, dtype=np.float64).ravel()
    if flat.size == 0:
        raise ValueError("the Gini coefficient of no values is undefined")
    lowest = flat.min()
    if lowest < 0:
        flat -= lowest
    flat += GINI_OFFSET
    flat.sort()
    n = flat.size
    weights = 2.0 * np.arange(1, n + 1, dtype=np.float64) - n - 1
    return float(np.dot(weights, flat) / (n * flat.sum()))


def diffusion_index(attribution_map: np.ndarray) -> float:
    """The Diffusion Index of a LAM map: ``(1 - gini(map)) * 100``."""
    return (1.0 - gini(attribution_map)) * 100.0
