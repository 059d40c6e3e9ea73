"""Splitting an image into equal, overlapping tiles and blending the upscaled tiles back without seams.

All tiles of one image have the same size (the last row and column are aligned to the image edge), so they can
be batched and share one set of cached attention masks. Where two tiles overlap, their outputs are cross-faded
with complementary raised-cosine ramps over the middle of the overlap: the weights of overlapping tiles sum to
one everywhere, and each tile's outer pixels, which saw the least context, are not used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Blender", "PlacedWeights", "Tile", "TileGrid", "place_weights", "plan_tiles", "tile_layout"]


def _axis(length: int, tile: int, overlap: int, multiple: int) -> tuple[int, list[int]]:
    """Tile size and start offsets along one axis.

    Uses the fewest tiles of at most ``tile`` pixels that overlap by at least ``overlap``, then shrinks them to
    spread the overlap evenly (rounded up to ``multiple``), so no tile repeats work needlessly at the edge.
    """
    if length <= tile:
        return length, [0]
    overlap = min(overlap, tile // 2)
    count = math.ceil((length - overlap) / (tile - overlap))
    size = min(tile, -(-math.ceil((length + (count - 1) * overlap) / count) // multiple) * multiple)
    starts = [(i * (length - size)) // (count - 1) for i in range(count)]
    return size, starts


def _ramp_weights(size: int, starts: list[int], index: int, scale: int) -> Tensor:
    """1-D blend weights (output pixels) of tile ``index`` along one axis."""
    w = torch.ones(size * scale, dtype=torch.float32)
    start, end = starts[index], starts[index] + size
    if index > 0:
        shared = (starts[index - 1] + size - start) * scale
        w[:shared] *= _ramp(shared)
    if index < len(starts) - 1:
        shared = (end - starts[index + 1]) * scale
        w[len(w) - shared :] *= _ramp(shared).flip(0)
    return w


def _ramp(n: int) -> Tensor:
    """Weights rising from 0 to 1 across an overlap of ``n`` samples; ``r(i) + r(n-1-i) == 1``.

    The outer quarter of the overlap (the tile's border, computed with the least context) gets weight 0, the
    middle half a raised-cosine cross-fade, the inner quarter 1.
    """
    margin = n // 4
    t = ((torch.arange(n, dtype=torch.float64) - margin + 0.5) / max(n - 2 * margin, 1)).clamp(0, 1)
    return (0.5 - 0.5 * torch.cos(math.pi * t)).float()


@dataclass(frozen=True)
class Tile:
    """One tile: its input rectangle and its blend weights ``(h*scale, w*scale)``."""

    top: int
    left: int
    height: int
    width: int
    weight: Tensor


@dataclass(frozen=True)
class TileGrid:
    """The tiles covering an image, all of the same size, and the sum of their weights (to normalise)."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    scale: int
    tiles: tuple[Tile, ...]
    total: tuple[Tensor, Tensor]
    """Sum of the weights along rows and along columns: tile weights are outer products of 1-D ramps, so their
    sum over the grid is the outer product of these two (no full-size map is kept)."""


@dataclass(frozen=True)
class PlacedWeights:
    """A grid's blend weights copied to the device the blending happens on (made once per grid and device)."""

    tiles: tuple[Tensor, ...]
    rows: Tensor
    """``(H*s, 1)`` total of the weights along rows."""
    cols: Tensor
    """``(1, W*s)`` total along columns."""


def place_weights(grid: TileGrid, device: torch.device) -> PlacedWeights:
    """Copy ``grid``'s weights to ``device``; the caller keeps the result for as long as it uses the grid."""
    return PlacedWeights(
        tuple(t.weight.to(device) for t in grid.tiles),
        grid.total[0].to(device).view(-1, 1),
        grid.total[1].to(device).view(1, -1),
    )


def plan_tiles(
    height: int, width: int, tile: int, overlap: int, scale: int, multiple: int = 1, feather: bool = True
) -> TileGrid:
    """Equal tiles of at most ``tile`` input pixels (a multiple of ``multiple``) overlapping by at least
    ``overlap`` pixels. The engine keeps the plan of each input size, so a video's frames all share one.

    With ``feather=False`` each output pixel is taken from a single tile (the middle of each overlap is the
    cut), the crop-only stitching of the official script; kept for comparisons.
    """
    tile_h, rows = _axis(height, tile, overlap, multiple)
    tile_w, cols = _axis(width, tile, overlap, multiple)
    if feather:
        wy = [_ramp_weights(tile_h, rows, i, scale) for i in range(len(rows))]
        wx = [_ramp_weights(tile_w, cols, j, scale) for j in range(len(cols))]
    else:
        wy = [_crop_weights(tile_h, rows, i, scale) for i in range(len(rows))]
        wx = [_crop_weights(tile_w, cols, j, scale) for j in range(len(cols))]
    tiles = tuple(
        Tile(top, left, tile_h, tile_w, torch.outer(wy[i], wx[j]))
        for i, top in enumerate(rows)
        for j, left in enumerate(cols)
    )
    return TileGrid(
        height,
        width,
        tile_h,
        tile_w,
        scale,
        tiles,
        (_axis_total(wy, rows, height, scale), _axis_total(wx, cols, width, scale)),
    )


def tile_layout(height: int, width: int, tile: int, overlap: int, multiple: int = 1) -> tuple[int, int, int]:
    """``(tile_h, tile_w, count)`` that ``plan_tiles`` would use, without building the grid (weights)."""
    tile_h, rows = _axis(height, tile, overlap, multiple)
    tile_w, cols = _axis(width, tile, overlap, multiple)
    return tile_h, tile_w, len(rows) * len(cols)


def _axis_total(weights: list[Tensor], starts: list[int], length: int, scale: int) -> Tensor:
    total = torch.zeros(length * scale)
    for w, start in zip(weights, starts, strict=True):
        total[start * scale : start * scale + len(w)] += w
    return total


def _crop_weights(size: int, starts: list[int], index: int, scale: int) -> Tensor:
    """0/1 weights: a tile owns the pixels up to the middle of each overlap with its neighbours."""
    w = torch.zeros(size * scale, dtype=torch.float32)
    lo = 0 if index == 0 else (starts[index - 1] + size + starts[index]) // 2 - starts[index]
    hi = size if index == len(starts) - 1 else (starts[index] + size + starts[index + 1]) // 2 - starts[index]
    w[lo * scale : hi * scale] = 1.0
    return w


class Blender:
    """Accumulates weighted tile outputs into the full-size result."""

    def __init__(
        self, grid: TileGrid, batch: int, channels: int, device: torch.device, weights: PlacedWeights | None = None
    ) -> None:
        s = grid.scale
        self.grid = grid
        self.device = device
        self.out = torch.zeros(batch, channels, grid.height * s, grid.width * s, device=device)
        self.weights = weights if weights is not None else place_weights(grid, device)

    def add(self, index: int, item: int, tile_out: Tensor) -> None:
        """Blend the upscaled ``tile_out`` ``(C, th*s, tw*s)`` of tile ``index`` into batch item ``item``."""
        tile, s = self.grid.tiles[index], self.grid.scale
        rows = slice(tile.top * s, (tile.top + tile.height) * s)
        cols = slice(tile.left * s, (tile.left + tile.width) * s)
        self.out[item, :, rows, cols] += tile_out.to(self.device, torch.float32) * self.weights.tiles[index]

    def result(self) -> Tensor:
        """The blended image ``(B, C, H*s, W*s)`` (weights normalised to sum to one)."""
        return self.out.div_(self.weights.rows).div_(self.weights.cols)
