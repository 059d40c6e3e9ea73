"""Colour conversion of the video path: matrices and ranges against textbook values and against FFmpeg's swscale,
chroma siting, pixel layouts, and the repacking of semi-planar and packed formats."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from av.video.format import VideoFormat

from hat_plugin.errors import VideoError
from hat_plugin.video.colour import ColourConverter, PixelLayout, output_colour, source_colour
from hat_plugin.video.frames import layout_of, new_frame, read_planes

CPU = torch.device("cpu")


def converter(layout: PixelLayout, matrix: int, full: bool, location: int = 0, w: int = 16, h: int = 8):
    colour = source_colour(layout, w, h, matrix=matrix, colour_range=2 if full else 1, chroma_location=location)
    return ColourConverter(layout, colour, w, h, CPU)


@pytest.mark.parametrize(
    ("matrix", "rgb", "expected"),
    [
        (6, (1, 0, 0), (81, 90, 240)),  # BT.601 limited: the classic 75 % bars' red at 100 %
        (1, (1, 0, 0), (63, 102, 240)),  # BT.709 limited
        (1, (0, 1, 0), (173, 42, 26)),
        (9, (0, 0, 1), (29, 240, 119)),  # BT.2020 non-constant luminance
        (1, (1, 1, 1), (235, 128, 128)),
        (1, (0, 0, 0), (16, 128, 128)),
    ],
)
def test_textbook_codes(matrix, rgb, expected):
    conv = converter(PixelLayout("yuv", 8, 1, 1), matrix, full=False)
    image = torch.tensor(rgb, dtype=torch.float32)[:, None, None].expand(3, 8, 16)
    planes = conv.from_rgb(image)
    assert tuple(int(p[0, 0]) for p in planes) == expected
    assert all(np.all(p == p[0, 0]) for p in planes)
    back = conv.to_rgb(planes)[0, :, 0, 0].numpy()
    assert np.allclose(back, rgb, atol=2.5 / 255)


@pytest.mark.parametrize(
    ("bits", "matrix", "swscale", "full"),
    [(8, 1, "ITU709", False), (8, 6, "ITU601", False), (10, 1, "ITU709", True), (10, 6, "ITU601", False)],
)
def test_yuv_to_rgb_agrees_with_swscale(bits, matrix, swscale, full):
    """On 4:4:4 (no chroma resampling) our float conversion and swscale's fixed-point one agree within one
    8-bit level, over random codes, for both matrices, both ranges and both depths."""
    layout = PixelLayout("yuv", bits, 0, 0)
    conv = converter(layout, matrix, full, w=64, h=48)
    rng = np.random.default_rng(bits + matrix)
    top = (1 << bits) - 1
    low, high = (0, top) if full else (16 << (bits - 8), 235 << (bits - 8))
    margin = (high - low) // 5
    planes = [rng.integers(low + margin, high - margin, (48, 64)).astype(layout.dtype) for _ in range(3)]
    ours = conv.to_rgb(planes)[0].permute(1, 2, 0).numpy()
    frame = new_frame(planes, layout, 64, 48)
    theirs = frame.reformat(format="rgb48le", src_colorspace=swscale, src_color_range="JPEG" if full else "MPEG")
    theirs_rgb = theirs.to_ndarray() / 65535.0
    inside = ((ours > 0.002) & (ours < 0.998)).all(axis=-1)  # swscale clips differently at the edges of the cube
    assert inside.mean() > 0.5
    assert np.abs(ours - theirs_rgb)[inside].max() <= 1.05 / 255


def test_rgb_round_trip_of_a_smooth_picture_is_close_and_siting_matters():
    """A smooth picture through 4:2:0 and back comes out close when the siting is the declared one, and clearly
    worse when the chroma is read with another siting: the declared siting is really used."""
    yy, xx = np.mgrid[0:48, 0:64] / 64.0
    image = np.stack([0.5 + 0.4 * np.sin(xx * 9), 0.5 + 0.4 * np.cos(yy * 7), 0.5 + 0.3 * np.sin(xx * 5 + yy * 3)])
    rgb = torch.tensor(image, dtype=torch.float32)[None]
    layout = PixelLayout("yuv", 10, 1, 1)
    errors = {}
    for read_as in (1, 2, 3):
        write = converter(layout, 1, False, location=1, w=64, h=48)
        read = converter(layout, 1, False, location=read_as, w=64, h=48)
        errors[read_as] = (read.to_rgb(write.from_rgb(rgb)) - rgb).abs().mean().item()
    assert errors[1] < 0.004
    assert errors[2] > 1.5 * errors[1] and errors[3] > 1.5 * errors[1]


def test_co_sited_chroma_samples_land_on_their_luma_columns():
    """With left siting chroma sample i sits on luma column 2i: upsampling puts it there unchanged and the column
    between gets the mean; with center siting the samples sit between columns."""
    layout = PixelLayout("yuv", 8, 1, 0)  # 4:2:2: horizontal subsampling only
    y = np.full((2, 8), 126, np.uint8)
    u = np.array([[100, 140, 100, 140]] * 2, np.uint8)
    v = np.full((2, 4), 128, np.uint8)
    left = converter(layout, 1, False, location=1, w=8, h=2)
    center = converter(layout, 1, False, location=2, w=8, h=2)
    b_left = left.to_rgb([y, u, v])[0, 2, 0].numpy()
    b_center = center.to_rgb([y, u, v])[0, 2, 0].numpy()
    assert b_left[0] < b_left[1] < b_left[2] and b_left[2] > b_left[3] > b_left[4]  # extremes on even columns
    assert b_left[1] == pytest.approx((b_left[0] + b_left[2]) / 2, abs=1e-5)
    assert b_center[1] == pytest.approx(0.75 * b_left[0] + 0.25 * b_left[2], abs=1e-5)


@pytest.mark.parametrize("matrix", [10, 14, 8])
def test_unsupported_matrices_are_refused(matrix):
    with pytest.raises(VideoError, match="not supported"):
        source_colour(PixelLayout("yuv", 8, 1, 1), 64, 48, matrix=matrix, colour_range=1, chroma_location=1)


def test_unspecified_values_follow_player_conventions():
    sd = source_colour(PixelLayout("yuv", 8, 1, 1), 720, 576, matrix=2, colour_range=0, chroma_location=0)
    hd = source_colour(PixelLayout("yuv", 8, 1, 1), 1920, 1080, matrix=2, colour_range=0, chroma_location=0)
    jpeg = source_colour(
        PixelLayout("yuv", 8, 1, 1), 640, 480, matrix=2, colour_range=0, chroma_location=0, jpeg_range=True
    )
    assert (sd.matrix, sd.full_range, sd.chroma_location) == (6, False, 1)
    assert (hd.matrix, hd.full_range) == (1, False)
    assert (jpeg.full_range, jpeg.chroma_location) == (True, 2)
    rgb_out = output_colour(hd, PixelLayout("yuv", 8, 1, 1), PixelLayout("rgb", 8))
    assert rgb_out.matrix == 0 and rgb_out.full_range
    grey_to_yuv = output_colour(
        source_colour(PixelLayout("gray", 8), 64, 48, matrix=2, colour_range=0, chroma_location=0),
        PixelLayout("gray", 8),
        PixelLayout("yuv", 8, 1, 1),
    )
    assert grey_to_yuv.matrix == 6 or grey_to_yuv.matrix == 1


@pytest.mark.parametrize(
    ("name", "planar"),
    [
        ("yuv420p", "yuv420p"),
        ("yuvj420p", "yuv420p"),
        ("nv12", "yuv420p"),
        ("p010le", "yuv420p10le"),
        ("yuyv422", "yuv422p"),
        ("rgb24", "gbrp"),
        ("rgb48le", "gbrp16le"),
        ("gray10le", "gray10le"),
        ("yuva444p", "yuv444p"),
        ("yuv420p10be", "yuv420p10le"),
    ],
)
def test_pixel_formats_map_to_planar_layouts(name, planar):
    layout, jpeg = layout_of(VideoFormat(name))
    assert layout.pix_fmt == planar
    assert jpeg == name.startswith("yuvj")


@pytest.mark.parametrize("name", ["gbrpf32le", "bayer_rggb8", "xyz12le"])
def test_exotic_pixel_formats_are_refused(name):
    with pytest.raises(VideoError):
        layout_of(VideoFormat(name))


@pytest.mark.parametrize(("packed", "planar"), [("nv12", "yuv420p"), ("p010le", "yuv420p10le"), ("yuyv422", "yuv422p")])
def test_repacking_is_lossless(packed, planar):
    """Semi-planar and packed frames are repacked by FFmpeg without touching a sample value or the range."""
    layout, _ = layout_of(VideoFormat(planar))
    rng = np.random.default_rng(3)
    top = (1 << layout.bits) - 1
    planes = [rng.integers(0, top, layout.plane_shape(i, 34, 22)).astype(layout.dtype) for i in range(3)]
    frame = new_frame(planes, layout, 34, 22)
    frame.color_range = 1
    back = read_planes(frame.reformat(format=packed), layout)
    for index, (a, b) in enumerate(zip(planes, back, strict=True)):
        where = np.argwhere(a != b)
        assert where.size == 0, (
            f"plane {index}: {len(where)} samples differ, e.g. at {where[:4].tolist()}: "
            f"{a[a != b][:4]} -> {b[a != b][:4]}"
        )


def test_grey_video_round_trips_through_rgb():
    layout = PixelLayout("gray", 8)
    conv = converter(layout, 2, full=True)
    plane = np.arange(128, dtype=np.uint8).reshape(8, 16)
    rgb = conv.to_rgb([plane])
    assert torch.equal(rgb[0, 0], rgb[0, 1]) and torch.equal(rgb[0, 1], rgb[0, 2])
    assert np.array_equal(conv.from_rgb(rgb)[0], plane)


def test_ten_bit_codes_survive_a_round_trip_on_444():
    layout = PixelLayout("yuv", 10, 0, 0)
    conv = converter(layout, 1, False)
    rng = np.random.default_rng(5)
    planes = conv.from_rgb(torch.tensor(rng.uniform(0.1, 0.9, (1, 3, 8, 16)), dtype=torch.float32))
    back = conv.from_rgb(conv.to_rgb(planes))
    assert all(back_plane.dtype == np.uint16 for back_plane in back)
    assert max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(planes, back, strict=True)) <= 1


def test_av_is_the_pyav_with_the_encoders_the_video_path_uses():
    for encoder in ("libx264", "libx265", "libsvtav1", "ffv1", "prores_ks"):
        assert av.codec.Codec(encoder, "w").is_encoder
