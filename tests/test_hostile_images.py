"""Hostile and careless image files against ``read_image``: decompression bombs (tiny files whose headers claim huge
sizes, compressed data that expands past its header), huge sparse files, pipes and devices, animations and
multi-page files, 16-bit PNGs with sBIT or a damaged ICC profile, grey + alpha to BMP.

Every bomb is read in a subprocess under a 3 GB address-space cap (``hostile_files.read_all_limited``): if a guard
regresses, that process fails with MemoryError instead of this one taking the machine down.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import time
import warnings
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import png
import pytest
import tifffile
from hostile_files import (
    SMALL,
    animation,
    gif_claiming,
    jpeg_claiming,
    png_file,
    read_all_limited,
    tiff_file,
    zlib_bomb,
)
from PIL import Image as PILImage

from hat_plugin import limits
from hat_plugin.errors import ImageError
from hat_plugin.images import Image, read_image, write_image

HUGE = 60000  # 3.6 gigapixels: over the default limit on any machine with less than ~1 TB of memory

BOMBS = {
    "png8-12000": png_file(12000, 12000),
    "png8-huge": png_file(HUGE, HUGE),
    "png16-20000": png_file(20000, 20000, depth=16),
    "png16-huge": png_file(HUGE, HUGE, depth=16, colour=6),
    "png16-zlib-bomb": png_file(64, 64, depth=16, idat=zlib_bomb(64 << 20)),
    "tiff16-huge": tiff_file(HUGE, HUGE),
    "tiff8-huge": tiff_file(HUGE, HUGE, bits=8, samples=3),
    "tiff16-zlib-bomb": tiff_file(64, 64, compression=8, strip=zlib_bomb(64 << 20)),
    "tiff16-packbits-bomb": tiff_file(64, 64, compression=32773, strip=b"\x81\x00" * (256 << 10)),
    "jpeg-huge": jpeg_claiming(HUGE, HUGE),
    "gif-huge": gif_claiming(65535, 65535),
}
EXPANDS = "expands? beyond the size its header declares"


@pytest.fixture(scope="module")
def bomb_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Each bomb read with an explicit 50 MP limit and with the machine's default, in capped subprocesses."""
    folder = tmp_path_factory.mktemp("bombs")
    paths = {}
    for key, data in BOMBS.items():
        paths[key] = folder / f"{key}.{key.split('-')[0].rstrip('0123456789')}"
        paths[key].write_bytes(data)
    assert max(p.stat().st_size for p in paths.values()) < 2 << 20, "bombs must be tiny files"
    return {"50M": read_all_limited(paths, 50_000_000), "default": read_all_limited(paths, None)}


@pytest.mark.parametrize("key", [k for k in BOMBS if "bomb" not in k and k != "png8-12000"])
@pytest.mark.parametrize("limit", ["50M", "default"])
def test_huge_claimed_size_is_refused_from_the_header(bomb_results, key, limit):
    result = bomb_results[limit][key]
    assert result.startswith("ImageError: "), result
    assert "more than the limit of" in result and "raise the limit: max_pixels" in result, result
    assert "MemoryError" not in result and "DecompressionBomb" not in result


@pytest.mark.parametrize("key", ["png8-12000", "png16-20000"])
def test_the_issues_bombs_are_refused_at_50_megapixels(bomb_results, key):
    """The two files of the report (a 12000x12000 8-bit PNG, a 20000x20000 16-bit one) at a 50 MP limit."""
    result = bomb_results["50M"][key]
    assert result.startswith("ImageError: ") and "more than the limit of 50,000,000" in result, result


@pytest.mark.parametrize("key", ["png16-zlib-bomb", "tiff16-zlib-bomb", "tiff16-packbits-bomb"])
def test_compressed_data_expanding_past_its_header_is_refused(bomb_results, key):
    for limit in ("50M", "default"):
        result = bomb_results[limit][key]
        assert result.startswith("ImageError: ") and "decompression bomb" in result, result


def test_pillow_bomb_warning_zone_gives_our_error_or_the_image(tmp_path):
    """Between Pillow's MAX_IMAGE_PIXELS (89 MP, where it only warns) and our limit, Pillow's warning must not
    reach the user (warnings are errors in the subprocess): our limit alone decides."""
    width, height = 10000, 9000  # 90 MP, just over Pillow's warning threshold
    rows = zlib.compress(bytes(height * (1 + width // 8)), 9)  # 1-bit, all black
    path = tmp_path / "big.png"
    path.write_bytes(png_file(width, height, depth=1, idat=rows))
    assert width * height > PILImage.MAX_IMAGE_PIXELS
    results = read_all_limited({"under": path}, 50_000_000) | {"over": read_all_limited({"x": path}, 0)["x"]}
    assert results["under"].startswith("ImageError: ") and "more than the limit" in results["under"]
    assert results["over"] == f"ok ({height}, {width})", results["over"]


def test_huge_sparse_file_is_refused_without_being_read(tmp_path):
    """A 3 GB sparse file: only its header is read, in a process that could not even hold it."""
    junk, png_like = tmp_path / "junk.png", tmp_path / "real.png"
    for path, head in ((junk, b""), (png_like, png_file(100, 100)[:33])):
        with open(path, "wb") as file:
            file.write(head)
            file.truncate(3 << 30)
    started = time.monotonic()
    results = read_all_limited({"junk": junk, "png": png_like}, 1_000_000, memory=2 << 30)
    assert time.monotonic() - started < 60
    assert results["junk"].startswith("ImageError: ") and str(junk) in results["junk"]
    assert "the file is 3.2 GB, more than an image (is it one?) can need" in results["junk"]
    assert "more than an image within the pixel limit can need" in results["png"]
    results = read_all_limited({"junk": junk}, None, memory=2 << 30)  # default limit: the type decides quickly
    assert results["junk"].startswith("ImageError: "), results


def test_pixel_limit_rule():
    per_pixel = limits.bytes_per_pixel(4)
    assert per_pixel == limits.INPUT_BYTES_PER_PIXEL + 16 * limits.OUTPUT_BYTES_PER_PIXEL
    assert limits.bytes_per_pixel(4, alpha=True) > per_pixel > limits.bytes_per_pixel(2)
    assert limits.default_max_pixels(4, available=64 << 30) == (64 << 30) // per_pixel
    assert limits.default_max_pixels(4, available=1 << 20) == limits.MIN_DEFAULT_PIXELS
    assert limits.default_max_pixels(2, 64 << 30) > limits.default_max_pixels(4, 64 << 30)
    assert limits.available_memory() > 0
    assert limits.max_file_bytes(0) == 0
    with pytest.raises(ImageError, match="claims an empty size"):
        limits.check_pixels(0, 5, 100)
    limits.check_pixels(10, 10, 100)
    limits.check_pixels(10**6, 10**6, 0)  # 0: no limit
    with pytest.raises(ImageError, match="more than the limit of 99"):
        limits.check_pixels(10, 10, 99)


# ------------------------------------------------------------------------------------- pipes and devices


def _read_with_deadline(path, seconds: float = 10):
    """read_image in a thread; the test fails (instead of hanging) if it does not return in time."""
    outcome: list[BaseException | object] = []
    thread = threading.Thread(target=lambda: outcome.append(_capture(path)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"read_image({path}) hung"
    return outcome[0]


def _capture(path):
    try:
        return read_image(path)
    except BaseException as exc:
        return exc


@pytest.mark.parametrize("kind", ["fifo", "fifo-with-writer", "dev-zero", "folder"])
def test_non_regular_files_are_refused_without_hanging(tmp_path, kind):
    if kind == "dev-zero":
        path = "/dev/zero"
    elif kind == "folder":
        path = tmp_path / "photo.png"
        path.mkdir()
    else:
        path = tmp_path / "x.png"
        os.mkfifo(path)
        if kind == "fifo-with-writer":  # an endless stream behind the pipe must not be read either
            threading.Thread(target=_feed, args=(path,), daemon=True).start()
    result = _read_with_deadline(path)
    assert isinstance(result, ImageError), result
    assert str(path) in str(result)
    assert ("is a folder" if kind == "folder" else "not a regular file") in str(result)


def _feed(path) -> None:
    try:
        with open(path, "wb") as pipe:
            while True:
                pipe.write(png_file(8, 8))
    except OSError:
        pass


# ------------------------------------------------------------------------------- animations and pages


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "TIFF"])
def test_multi_frame_files_are_refused_naming_the_frame_count(tmp_path, fmt):
    path = tmp_path / f"anim.{fmt.lower()}"
    path.write_bytes(animation(fmt, frames=3))
    with pytest.raises(ImageError, match=r"holds 3 frames .*extract the frames first") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_deep_multi_page_tiff_is_refused_but_a_reduced_preview_page_is_not(tmp_path):
    pages, preview = tmp_path / "pages.tif", tmp_path / "preview.tif"
    frame = np.arange(8 * 8, dtype=np.uint16).reshape(8, 8) * 999
    with tifffile.TiffWriter(pages) as tif:
        tif.write(frame)
        tif.write(frame)
    with tifffile.TiffWriter(preview) as tif:
        tif.write(frame)
        tif.write(frame[::2, ::2], subfiletype=1)  # a reduced-resolution preview of the same picture
    with pytest.raises(ImageError, match="holds 2 frames"):
        read_image(pages)
    np.testing.assert_array_equal(read_image(preview).pixels, frame)


def test_single_frame_gif_and_png_still_read(tmp_path):
    for fmt in ("GIF", "PNG"):
        path = tmp_path / f"one.{fmt.lower()}"
        path.write_bytes(animation(fmt, frames=1))
        assert read_image(path).pixels.shape[:2] == (8, 8)


# ------------------------------------------------------------------------------------------ 16-bit PNG


def _png16(pixels: np.ndarray, extra: list[tuple[bytes, bytes]]) -> bytes:
    """A 16-bit grey PNG of ``pixels`` with ``extra`` chunks inserted right after IHDR."""
    plain = io.BytesIO()
    png.Writer(pixels.shape[1], pixels.shape[0], greyscale=True, bitdepth=16).write_array(plain, pixels.reshape(-1))
    chunks = list(png.Reader(bytes=plain.getvalue()).chunks())
    out = io.BytesIO()
    png.write_chunks(out, chunks[:1] + extra + chunks[1:])
    return out.getvalue()


def test_png16_with_sbit_keeps_every_stored_bit(tmp_path):
    """pypng returns rows as lists and shifts samples down when sBIT is present; the stored 16 bits are kept."""
    pixels = (np.arange(6 * 7, dtype=np.uint16).reshape(6, 7) * 1543 + 7).astype(np.uint16)
    path = tmp_path / "sbit.png"
    path.write_bytes(_png16(pixels, [(b"sBIT", bytes([12]))]))
    image = read_image(path)
    assert image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, pixels)


def test_png16_with_damaged_icc_drops_it_with_a_warning(tmp_path):
    """A profile that does not inflate is left out (as Pillow does for 8-bit files); one that inflates past the
    metadata limit is a bomb, refused for either depth (see the one-rule tests below)."""
    pixels = np.full((4, 5), 40000, np.uint16)
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(_png16(pixels, [(b"iCCP", b"ICC profile\0\0" + b"not zlib data at all")]))
    with pytest.warns(UserWarning, match="ICC profile is damaged; it is left out"):
        image = read_image(damaged)
    assert image.icc_profile is None
    np.testing.assert_array_equal(image.pixels, pixels)
    huge = tmp_path / "huge-icc.png"
    huge.write_bytes(_png16(pixels, [(b"iCCP", b"ICC profile\0\0" + zlib_bomb(64 << 20))]))
    with pytest.raises(ImageError, match="iCCP metadata expands to more than 1 MiB"):
        read_image(huge)
    with warnings.catch_warnings():  # the same 8-bit file: Pillow drops the profile too
        warnings.simplefilter("ignore")
        eight = tmp_path / "eight.png"
        eight.write_bytes(png_file(4, 5, idat=zlib.compress(bytes(5 * 5)), extra=[(b"iCCP", b"x\0\0junk")]))
        assert read_image(eight).icc_profile is None


def test_png16_truncated_rows_are_an_image_error(tmp_path):
    path = tmp_path / "short.png"
    path.write_bytes(png_file(8, 8, depth=16, idat=zlib.compress(bytes(3 * 17))))
    with pytest.raises(ImageError, match=str(path)):
        read_image(path)


# -------------------------------------------------------------------------------------------- writing


def test_grey_alpha_to_bmp_warns_and_flattens_onto_white(tmp_path):
    pixels = np.zeros((4, 5, 2), np.uint8)
    pixels[..., 0] = 100
    pixels[..., 1] = [0, 64, 128, 192, 255]
    with pytest.warns(UserWarning, match="BMP as written here has no transparency"):
        write_image(tmp_path / "ga.bmp", Image(pixels))
    back = read_image(tmp_path / "ga.bmp").pixels
    alpha = pixels[0, :, 1] / 255
    expected = np.round(100 * alpha + 255 * (1 - alpha))
    assert back.shape == (4, 5)  # grey, no alpha left to lose silently
    np.testing.assert_array_equal(back[0], expected)  # transparent -> white, opaque -> the grey


def test_image_read_from_a_file_given_as_read_only_stays_correct(tmp_path):
    """The guarded reader returns the same pixels as before for an ordinary file (no behaviour change)."""
    path = tmp_path / "plain.png"
    PILImage.fromarray(SMALL).save(path)
    os.chmod(path, 0o444)
    np.testing.assert_array_equal(read_image(path).pixels, SMALL)


# ------------------------------------------------------------------ one rule for 8-bit and 16-bit PNGs


def _png_with(depth: int, extra: Sequence[tuple[bytes, bytes]] = (), damaged: bytes | None = None) -> bytes:
    """An 8x8 RGB PNG of ``depth`` bits with ``extra`` chunks before its pixels; ``damaged`` names a chunk whose
    checksum is made wrong."""
    from hostile_files import png_chunk

    rows = bytes(8 * (1 + 8 * 3 * depth // 8))
    chunks = [(b"IHDR", struct.pack("!2I5B", 8, 8, depth, 2, 0, 0, 0)), *extra]
    chunks += [(b"IDAT", zlib.compress(rows)), (b"IEND", b"")]
    out = b"\x89PNG\r\n\x1a\n"
    for kind, body in chunks:
        chunk = png_chunk(kind, body)
        out += chunk[:-1] + bytes([chunk[-1] ^ 1]) if kind == damaged else chunk
    return out


PNG_RULES: dict[str, tuple[dict[str, Any], str]] = {
    "crc-tEXt": (
        {"extra": [(b"tEXt", b"key\0value")], "damaged": b"tEXt"},
        "its tEXt chunk does not match its checksum",
    ),
    "crc-IDAT": ({"damaged": b"IDAT"}, "its IDAT chunk does not match its checksum"),
    "crc-IHDR": ({"damaged": b"IHDR"}, "its IHDR chunk does not match its checksum"),
    "zTXt-bomb": ({"extra": [(b"zTXt", b"k\0\0" + zlib_bomb(64 << 20))]}, "zTXt metadata expands to more than 1 MiB"),
    "iTXt-bomb": ({"extra": [(b"iTXt", b"k\0\1\0\0\0" + zlib_bomb(64 << 20))]}, "iTXt metadata expands to more"),
    "iCCP-bomb": ({"extra": [(b"iCCP", b"p\0\0" + zlib_bomb(64 << 20))]}, "iCCP metadata expands to more than 1 MiB"),
    "many-zTXt": ({"extra": [(b"zTXt", b"k\0\0" + zlib.compress(bytes(1 << 20)))] * 70}, "zTXt metadata expands"),
}


@pytest.fixture(scope="module")
def png_rule_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("png-rules")
    paths = {}
    for key, (options, _) in PNG_RULES.items():
        for depth in (8, 16):
            paths[f"{key}-{depth}"] = folder / f"{key}-{depth}.png"
            paths[f"{key}-{depth}"].write_bytes(_png_with(depth, **options))
    return read_all_limited(paths, 50_000_000)


@pytest.mark.parametrize("key", PNG_RULES)
def test_8_and_16_bit_pngs_follow_one_rule_for_checksums_and_metadata_bombs(png_rule_results, key):
    expected = PNG_RULES[key][1]
    for depth in (8, 16):
        result = png_rule_results[f"{key}-{depth}"]
        assert result.startswith("ImageError: ") and expected in result, (depth, result)
        assert "ChunkError" not in result and "MAX_TEXT_CHUNK" not in result


def test_big_uncompressed_metadata_is_accepted_by_both_depths(tmp_path):
    for depth in (8, 16):
        path = tmp_path / f"exif-{depth}.png"
        path.write_bytes(_png_with(depth, extra=[(b"eXIf", b"MM\0*" + bytes(4 << 20))]))
        assert read_image(path).pixels.shape == (8, 8, 3)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("samples", [5, 6])
def test_tiff_with_more_than_colour_and_alpha_says_how_many_channels(tmp_path, bits, samples):
    path = tmp_path / f"multi-{bits}-{samples}.tif"
    path.write_bytes(tiff_file(8, 8, bits=bits, samples=samples, strip=bytes(8 * 8 * samples * bits // 8)))
    with pytest.raises(
        ImageError, match=f"the TIFF has {samples} channels per pixel \\(3 colour and {samples - 3} extra\\)"
    ):
        read_image(path)
