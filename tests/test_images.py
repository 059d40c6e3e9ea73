"""Reading and writing image files (hat_plugin.images): modes, depth, orientation, metadata, atomic writes.

Inputs are made with Pillow, pypng and tifffile directly, and outputs are checked with them too, so the module is
judged by independent readers, not by itself.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from hat_plugin.errors import ImageError, OutputError
from hat_plugin.images import Image, extension_for, is_image_name, output_format, read_image, write_image

H, W = 13, 20
RNG = np.random.default_rng(7)


def rgb8() -> np.ndarray:
    return RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_bytes(orientation: int) -> bytes:
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"  # Make
    return exif.tobytes()


def png16_info(path) -> dict:
    _, _, rows, info = png.Reader(filename=str(path)).read()
    list(rows)
    return info


def leftovers(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


# ------------------------------------------------------------------------------------------------ reading


@pytest.mark.parametrize(
    ("mode", "shape"),
    [("RGB", (H, W, 3)), ("RGBA", (H, W, 4)), ("L", (H, W)), ("LA", (H, W, 2))],
)
def test_8bit_png_modes_read_exactly(tmp_path, mode, shape):
    pixels = RNG.integers(0, 256, shape, dtype=np.uint8)
    PILImage.fromarray(pixels, mode).save(tmp_path / "in.png")
    image = read_image(tmp_path / "in.png")
    assert image.pixels.dtype == np.uint8
    np.testing.assert_array_equal(image.pixels, pixels)
    assert image.format == "PNG"


def test_16bit_rgb_png_keeps_every_bit(tmp_path):
    pixels = RNG.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    with open(tmp_path / "in.png", "wb") as f:
        png.Writer(W, H, greyscale=False, bitdepth=16).write(f, pixels.reshape(H, -1))
    image = read_image(tmp_path / "in.png")
    assert image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, pixels)


def test_16bit_grey_png_from_pillow(tmp_path):
    pixels = RNG.integers(0, 65536, (H, W), dtype=np.uint16)
    PILImage.fromarray(pixels).save(tmp_path / "in.png")
    image = read_image(tmp_path / "in.png")
    assert image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, pixels)


def test_16bit_grey_alpha_png(tmp_path):
    pixels = RNG.integers(0, 65536, (H, W, 2), dtype=np.uint16)
    with open(tmp_path / "in.png", "wb") as f:
        png.Writer(W, H, greyscale=True, alpha=True, bitdepth=16).write(f, pixels.reshape(H, -1))
    np.testing.assert_array_equal(read_image(tmp_path / "in.png").pixels, pixels)


def test_palette_with_and_without_transparency(tmp_path):
    indices = RNG.integers(0, 4, (H, W), dtype=np.uint8)
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9]
    im = PILImage.fromarray(indices, "P")
    im.putpalette(palette)
    im.save(tmp_path / "opaque.png")
    im.save(tmp_path / "clear.png", transparency=3)
    opaque = read_image(tmp_path / "opaque.png").pixels
    clear = read_image(tmp_path / "clear.png").pixels
    assert opaque.shape == (H, W, 3)
    np.testing.assert_array_equal(opaque, np.asarray(palette, np.uint8).reshape(4, 3)[indices])
    assert clear.shape == (H, W, 4)
    np.testing.assert_array_equal(clear[..., 3], np.where(indices == 3, 0, 255))


def test_one_bit_reads_as_grey(tmp_path):
    bits = RNG.integers(0, 2, (H, W)).astype(bool)
    PILImage.fromarray(bits).save(tmp_path / "in.png")
    pixels = read_image(tmp_path / "in.png").pixels
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, np.where(bits, 255, 0))


def test_cmyk_jpeg_becomes_rgb_without_its_cmyk_profile(tmp_path):
    cmyk = PILImage.fromarray(RNG.integers(0, 256, (H, W, 4), dtype=np.uint8), "CMYK")
    cmyk.save(tmp_path / "in.jpg", quality=95)
    image = read_image(tmp_path / "in.jpg")
    assert image.pixels.shape == (H, W, 3)
    reference = np.asarray(PILImage.open(tmp_path / "in.jpg").convert("RGB"))
    np.testing.assert_array_equal(image.pixels, reference)
    assert image.icc_profile is None


def test_cmyk_with_unusable_profile_warns_and_converts_plainly(tmp_path):
    cmyk = PILImage.fromarray(RNG.integers(0, 256, (H, W, 4), dtype=np.uint8), "CMYK")
    cmyk.save(tmp_path / "in.jpg", icc_profile=b"not a profile" * 20)
    with pytest.warns(UserWarning, match="ICC profile is unusable"):
        image = read_image(tmp_path / "in.jpg")
    assert image.pixels.shape == (H, W, 3)
    assert image.icc_profile is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_like_pillow_and_reset(tmp_path, orientation):
    PILImage.fromarray(rgb8()).save(tmp_path / "in.png", exif=exif_bytes(orientation))
    image = read_image(tmp_path / "in.png")
    expected = np.asarray(ImageOps.exif_transpose(PILImage.open(tmp_path / "in.png")))
    np.testing.assert_array_equal(image.pixels, expected)
    exif = PILImage.Exif()
    assert image.exif is not None
    exif.load(image.exif)
    assert exif[0x0112] == 1
    assert exif[0x010F] == "TestCam"


def test_exif_orientation_on_16bit_png(tmp_path):
    pixels = RNG.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    plain = io.BytesIO()
    png.Writer(W, H, greyscale=False, bitdepth=16).write(plain, pixels.reshape(H, -1))
    chunks = list(png.Reader(bytes=plain.getvalue()).chunks())
    with open(tmp_path / "in.png", "wb") as f:
        png.write_chunks(f, chunks[:1] + [(b"eXIf", exif_bytes(6))] + chunks[1:])
    image = read_image(tmp_path / "in.png")
    np.testing.assert_array_equal(image.pixels, np.rot90(pixels, -1))  # 6 = rotate 90 degrees clockwise


def test_deep_tiff_rgb_float_and_associated_alpha(tmp_path):
    deep = RNG.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "deep.tif", deep, photometric="rgb", compression="zlib")
    np.testing.assert_array_equal(read_image(tmp_path / "deep.tif").pixels, deep)

    floats = RNG.random((H, W), dtype=np.float32)
    tifffile.imwrite(tmp_path / "float.tif", floats, photometric="minisblack")
    read = read_image(tmp_path / "float.tif").pixels
    assert read.dtype == np.float32
    np.testing.assert_array_equal(read, floats)

    straight = np.dstack([np.full((H, W, 3), 0.5, np.float32), np.full((H, W), 0.5, np.float32)])
    premultiplied = straight.copy()
    premultiplied[..., :3] *= 0.5
    tifffile.imwrite(tmp_path / "assoc.tif", premultiplied, photometric="rgb", extrasamples=["assocalpha"])
    np.testing.assert_allclose(read_image(tmp_path / "assoc.tif").pixels, straight, atol=1e-6)


def test_16bit_grey_lzw_tiff(tmp_path):
    """tifffile needs the optional imagecodecs for LZW; Pillow reads 16-bit grey LZW exactly."""
    pixels = RNG.integers(0, 65536, (H, W), dtype=np.uint16)
    PILImage.fromarray(pixels).save(tmp_path / "in.tif", compression="tiff_lzw")
    image = read_image(tmp_path / "in.tif")
    assert image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, pixels)


def test_8bit_tiff_goes_through_pillow(tmp_path):
    pixels = rgb8()
    PILImage.fromarray(pixels).save(tmp_path / "in.tif", compression="tiff_lzw")
    np.testing.assert_array_equal(read_image(tmp_path / "in.tif").pixels, pixels)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("junk.png", b"this is not an image at all", "not an image"),
        ("empty.jpg", b"", "not an image"),
        ("broken.png", b"\x89PNG\r\n\x1a\n then garbage", "not an image"),
        ("missing.png", None, "file not found"),
    ],
)
def test_unreadable_files_raise_image_error_naming_the_file(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageError, match=message) as info:
        read_image(tmp_path / name)
    assert name in str(info.value)


def test_truncated_png_is_an_image_error(tmp_path):
    PILImage.fromarray(rgb8()).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.png: not a readable image .*truncated"):
        read_image(tmp_path / "cut.png")


def test_folder_is_an_image_error(tmp_path):
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageError, match="is a folder"):
        read_image(tmp_path / "dir.png")


# ------------------------------------------------------------------------------------------------ writing


def test_16bit_png_written_as_16bit_with_icc_and_exif(tmp_path):
    pixels = RNG.integers(0, 65536, (H, W, 4), dtype=np.uint16)
    icc = srgb_icc()
    write_image(tmp_path / "out.png", Image(pixels, icc_profile=icc, exif=exif_bytes(1)))
    assert png16_info(tmp_path / "out.png")["bitdepth"] == 16
    _, _, rows, _ = png.Reader(filename=str(tmp_path / "out.png")).asDirect()
    np.testing.assert_array_equal(np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(H, W, 4), pixels)
    with PILImage.open(tmp_path / "out.png") as im:
        assert im.info["icc_profile"] == icc
        assert im.getexif()[0x010F] == "TestCam"


def test_16bit_grey_png_round_trip(tmp_path):
    pixels = RNG.integers(0, 65536, (H, W), dtype=np.uint16)
    write_image(tmp_path / "out.png", Image(pixels))
    with PILImage.open(tmp_path / "out.png") as im:
        assert im.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(im), pixels)


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "tif"])
def test_icc_profile_carried(tmp_path, ext):
    icc = srgb_icc()
    write_image(tmp_path / f"out.{ext}", Image(rgb8(), icc_profile=icc))
    if ext == "tif":
        with tifffile.TiffFile(tmp_path / "out.tif") as tif:
            assert bytes(tif.pages.first.tags.valueof(34675)) == icc
    else:
        with PILImage.open(tmp_path / f"out.{ext}") as im:
            assert im.info["icc_profile"] == icc


def test_grey_profile_not_put_on_colour_output(tmp_path):
    rgb_profile = srgb_icc()
    write_image(tmp_path / "out.png", Image(rgb8()[..., 0], icc_profile=rgb_profile))
    with PILImage.open(tmp_path / "out.png") as im:
        assert "icc_profile" not in im.info


@pytest.mark.parametrize("ext", ["png", "jpg", "webp"])
def test_exif_carried_and_dimensions_updated(tmp_path, ext):
    exif = PILImage.Exif()
    exif[0x010F] = "TestCam"
    exif.get_ifd(0x8769)[0xA002] = W // 2
    exif.get_ifd(0x8769)[0xA003] = H // 2
    write_image(tmp_path / f"out.{ext}", Image(rgb8(), exif=exif.tobytes()))
    with PILImage.open(tmp_path / f"out.{ext}") as im:
        written = im.getexif()
        assert written[0x010F] == "TestCam"
        assert written.get_ifd(0x8769)[0xA002] == W
        assert written.get_ifd(0x8769)[0xA003] == H


def test_16bit_to_jpeg_falls_back_to_8bit_with_warning(tmp_path):
    pixels = np.full((H, W, 3), 65535, np.uint16)
    with pytest.warns(UserWarning, match="8 bits"):
        write_image(tmp_path / "out.jpg", Image(pixels))
    with PILImage.open(tmp_path / "out.jpg") as im:
        assert im.mode == "RGB"
        assert np.asarray(im).min() >= 250


def test_rgba_to_jpeg_is_flattened_onto_white(tmp_path):
    pixels = np.zeros((H, W, 4), np.uint8)
    pixels[:, : W // 2] = (0, 0, 0, 255)  # opaque black left half, fully transparent right half
    with pytest.warns(UserWarning, match="flattening onto white"):
        write_image(tmp_path / "out.jpg", Image(pixels), quality=100)
    with PILImage.open(tmp_path / "out.jpg") as im:
        out = np.asarray(im).astype(int)
    assert out[:, :4].max() < 10
    assert out[:, -4:].min() > 245


def test_float_tiff_and_webp_lossless(tmp_path):
    floats = RNG.random((H, W, 3), dtype=np.float32)
    write_image(tmp_path / "out.tiff", Image(floats))
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tiff"), floats)
    pixels = RNG.integers(0, 256, (H, W, 4), dtype=np.uint8)
    write_image(tmp_path / "out.webp", Image(pixels), quality=100)
    with PILImage.open(tmp_path / "out.webp") as im:
        np.testing.assert_array_equal(np.asarray(im), pixels)


def test_format_argument_and_names():
    assert output_format("a.JPEG") == "JPEG"
    assert output_format("a.png", "jpg") == "JPEG"
    assert output_format(None, ".tif") == "TIFF"
    assert extension_for("jpeg") == ".jpg"
    assert is_image_name("x.GIF") and is_image_name("x.tiff") and not is_image_name("notes.txt")
    with pytest.raises(OutputError, match="cannot write format 'gif'"):
        output_format("a.png", "gif")
    with pytest.raises(OutputError, match="cannot tell the output format"):
        output_format("a.txt")


def test_write_into_missing_folder_creates_it(tmp_path):
    write_image(tmp_path / "new" / "deeper" / "out.png", Image(rgb8()))
    assert (tmp_path / "new" / "deeper" / "out.png").is_file()


def test_failed_rename_leaves_no_temp_file_and_keeps_target(tmp_path):
    target = tmp_path / "out.png"
    target.mkdir()
    (target / "keep").write_text("x")
    with pytest.raises(OutputError, match="out.png"):
        write_image(target, Image(rgb8()))
    assert leftovers(tmp_path) == []
    assert (target / "keep").read_text() == "x"


def test_blocked_folder_is_an_output_error(tmp_path):
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(OutputError, match="a file is in the way"):
        write_image(tmp_path / "file" / "out.png", Image(rgb8()))


def test_full_disk_mid_write_leaves_no_file(tmp_path):
    """A write that fails part way (file size limit, like a full disk) keeps neither the temp nor the target."""
    script = textwrap.dedent(
        f"""
        import resource, signal, numpy as np
        from hat_plugin.images import Image, write_image
        from hat_plugin.errors import OutputError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
        noise = np.random.default_rng(0).integers(0, 65536, (64, 64, 3), dtype=np.uint16)
        try:
            write_image({str(tmp_path / "big.png")!r}, Image(noise))
        except OutputError as exc:
            print("OutputError:", exc)
        """
    )
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert "OutputError: cannot write" in done.stdout, done.stderr
    assert os.listdir(tmp_path) == []


def test_png16_iccp_chunk_is_valid(tmp_path):
    icc = srgb_icc()
    write_image(tmp_path / "out.png", Image(RNG.integers(0, 65536, (H, W, 3), dtype=np.uint16), icc_profile=icc))
    chunks = dict(png.Reader(filename=str(tmp_path / "out.png")).chunks())
    name, rest = chunks[b"iCCP"].split(b"\0", 1)
    assert 1 <= len(name) <= 79 and rest[0] == 0
    assert zlib.decompress(rest[1:]) == icc
