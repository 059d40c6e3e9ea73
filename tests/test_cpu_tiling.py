"""The CPU's automatic tile: never so big that every block's buffers are page-faulted in afresh (the allocator
does not reuse buffers above 32 MiB), and the one that leaves the network the least work for the image."""

from __future__ import annotations

import pytest

from hat_plugin import Upscaler
from hat_plugin.checkpoint import build_model
from hat_plugin.config import PRESETS
from hat_plugin.tiling import plan_tiles, tile_layout

MIB = 1 << 20


@pytest.fixture(scope="module")
def hat_s() -> Upscaler:
    return Upscaler(build_model(PRESETS["HAT-S_SRx4"]), device="cpu", precision="fp32")


@pytest.mark.parametrize("size", [(300, 300), (512, 512), (1024, 1024), (1080, 1920), (4000, 3000)])
def test_auto_tile_keeps_block_buffers_reusable(hat_s: Upscaler, size: tuple[int, int]) -> None:
    tile = hat_s._auto_tile(*size)
    stream_bytes = tile * tile * hat_s.config.embed_dim * 4  # one (1, T, T, C) float32 activation
    assert stream_bytes <= 32 * MIB
    assert tile % hat_s.window == 0


@pytest.mark.parametrize("size", [(512, 512), (1024, 1024), (1080, 1920)])
def test_auto_tile_does_the_least_work(hat_s: Upscaler, size: tuple[int, int]) -> None:
    h, w = size
    tile = hat_s._auto_tile(h, w)
    th, tw, count = tile_layout(h, w, tile, hat_s.overlap, hat_s.window)
    work = th * tw * count
    limit = hat_s._fault_free_side()
    for other in range(2 * hat_s.window, limit + 1, hat_s.window):
        oh, ow, n = tile_layout(h, w, other, hat_s.overlap, hat_s.window)
        assert work <= oh * ow * n
    assert work < 128 * 128 * tile_layout(h, w, 128, hat_s.overlap, hat_s.window)[2]  # the old fixed advice
    assert max(th, tw) == tile  # reported as the size the grid really uses


def test_small_image_is_one_tile(hat_s: Upscaler) -> None:
    assert hat_s._auto_tile(200, 150) == 200


def test_tile_layout_matches_the_grid() -> None:
    for h, w, tile in [(512, 512, 192), (1080, 1920, 224), (100, 700, 64)]:
        grid = plan_tiles(h, w, tile, 16, 4, 16)
        assert tile_layout(h, w, tile, 16, 16) == (grid.tile_h, grid.tile_w, len(grid.tiles))
