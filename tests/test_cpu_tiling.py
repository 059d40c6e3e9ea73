"""The CPU's automatic tile: never so big that every block's buffers are page-faulted in afresh (the allocator
does not reuse buffers above 32 MiB), and the one that leaves the network the least work for the image."""

from __future__ import annotations

from pathlib import Path

import pytest

import hat_plugin.engine as engine_module
from hat_plugin import OptionError, Upscaler
from hat_plugin.checkpoint import build_model
from hat_plugin.config import PRESETS
from hat_plugin.limits import memory_size
from hat_plugin.tiling import plan_tiles, tile_layout

MIB = 1 << 20
GIB = 1 << 30


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
def test_auto_tile_does_the_least_work(hat_s: Upscaler, size: tuple[int, int], monkeypatch) -> None:
    """With memory to spare (64 GiB free, whatever this machine has now), the least work up to the fault limit."""
    monkeypatch.setattr(engine_module, "free_memory", lambda device: 64 * GIB)
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


def _estimated_peak(up: Upscaler, h: int, w: int, resident: int) -> int:
    """What the engine expects a CPU run of an ``h`` x ``w`` image to reach: the process now, the image's float32
    input and result, and one tile's forward (``_bytes_per_pixel`` times the tile the grid really uses)."""
    tile_h, tile_w, _ = tile_layout(h, w, up._auto_tile(h, w), up.overlap, up.window)
    image = h * w * 3 * 4 * (1 + up.scale**2)
    return resident + image + up._bytes_per_pixel() * tile_h * tile_w


@pytest.mark.parametrize("cap", ["1.5G", "1.2G", "1G"])
def test_a_memory_cap_gives_a_smaller_tile_within_it(
    hat_s: Upscaler, monkeypatch: pytest.MonkeyPatch, cap: str
) -> None:
    resident = 600 * MIB
    monkeypatch.setattr(engine_module, "free_memory", lambda device: 64 * GIB)
    monkeypatch.setattr(engine_module, "resident_memory", lambda: resident)
    h = w = 1024
    free_tile = hat_s._auto_tile(h, w)
    capped = Upscaler(hat_s.model, device="cpu", precision="fp32", max_memory=cap)
    tile = capped._auto_tile(h, w)
    assert tile < free_tile
    assert _estimated_peak(capped, h, w, resident) <= memory_size(cap)
    smaller = Upscaler(hat_s.model, device="cpu", precision="fp32", max_memory=memory_size(cap) // 2)
    assert smaller._auto_tile(h, w) <= tile


def test_little_free_memory_gives_a_smaller_tile(hat_s: Upscaler, monkeypatch: pytest.MonkeyPatch) -> None:
    h = w = 1024
    monkeypatch.setattr(engine_module, "free_memory", lambda device: 64 * GIB)
    roomy = hat_s._auto_tile(h, w)
    monkeypatch.setattr(engine_module, "free_memory", lambda device: 64 * GIB)
    tight = hat_s._auto_tile(h, w)
    assert tight < roomy
    tile_h, tile_w, _ = tile_layout(h, w, tight, hat_s.overlap, hat_s.window)
    image = h * w * 3 * 4 * (1 + hat_s.scale**2)
    assert hat_s._bytes_per_pixel() * tile_h * tile_w <= 2 * GIB * engine_module._CPU_FREE_SHARE - image


def test_max_memory_takes_sizes_and_refuses_nonsense(hat_s: Upscaler) -> None:
    assert memory_size("4G") == 4 * GIB and memory_size("512M") == 512 * MIB and memory_size("1.5GiB") == 1536 * MIB
    assert memory_size(0) == 0 and memory_size("2gb") == 2 * GIB
    for bad in ("lots", "-1G", True):
        with pytest.raises(OptionError, match="max_memory"):
            Upscaler(hat_s.model, device="cpu", precision="fp32", max_memory=bad)


def test_the_cli_takes_max_memory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from hat_plugin.cli import EXIT_OK, EXIT_USAGE, main

    Image.new("RGB", (40, 30), (20, 130, 90)).save(tmp_path / "in.png")
    argv = [str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--model", "hat-tiny-x4", "--device", "cpu"]
    assert main([*argv, "--max-memory", "4G"]) == EXIT_OK
    assert any((tmp_path / "out").iterdir())
    capsys.readouterr()
    assert main([*argv, "--max-memory", "lots"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--max-memory" in err and "a size in bytes such as 4G" in err
