"""Decoded frames <-> numpy planes: which pixel formats the video path takes, and how their samples are laid out.

Every frame is handled as planar, little-endian planes without alpha (``PixelLayout``): formats already like that
(``yuv420p``, ``yuv422p10le``, ``gbrp``, ``gray12le``, and ``yuvj*``/``yuva*``/``gbrap*`` whose first planes are
the same) are read in place; other memory layouts (``nv12``, ``p010le``, packed ``yuyv422`` or ``rgb24``,
palettes) are repacked losslessly by FFmpeg first, without changing the matrix or range.
"""

from __future__ import annotations

from collections.abc import Sequence

import av
import numpy as np
from av.video.format import VideoFormat

from ..errors import VideoError
from .colour import PixelLayout

__all__ = ["layout_of", "new_frame", "read_planes"]

_FORMAT_NAMES = frozenset(av.video.format.names)


def layout_of(fmt: VideoFormat) -> tuple[PixelLayout, bool]:
    """The planar layout a pixel format is handled in, and whether the format implies full range (``yuvj*``).

    Raises ``VideoError`` for formats the path cannot represent (float or Bayer samples, XYZ, > 16 bits).
    """
    name = fmt.name
    if fmt.is_bayer or "f16" in name or "f32" in name or name.startswith("xyz"):
        raise VideoError(f"the pixel format {name} is not supported (float, Bayer or XYZ samples)")
    colours = [c for c in fmt.components if not c.is_alpha]
    bits = max(8, max((c.bits for c in colours), default=8))
    if bits > 16:
        raise VideoError(f"the pixel format {name} has {bits}-bit samples; at most 16 are supported")
    if fmt.has_palette or fmt.is_rgb:
        layout = PixelLayout("rgb", bits)
    elif len(colours) == 1:
        layout = PixelLayout("gray", bits)
    elif len(colours) == 3 and colours[0].is_luma:
        probe = VideoFormat(name, 64, 64)
        sub_x = (64 // max(1, probe.chroma_width(64))).bit_length() - 1
        sub_y = (64 // max(1, probe.chroma_height(64))).bit_length() - 1
        if not PixelLayout.known("yuv", bits, sub_x, sub_y):
            raise VideoError(f"the pixel format {name} has a chroma subsampling that is not supported")
        layout = PixelLayout("yuv", bits, sub_x, sub_y)
    else:
        raise VideoError(f"the pixel format {name} is not supported")
    return _available(layout), name.startswith("yuvj")


def _available(layout: PixelLayout) -> PixelLayout:
    """The layout itself, or the next deeper one FFmpeg has a format for (e.g. 11-bit samples in 12-bit words)."""
    for bits in (layout.bits, 10, 12, 14, 16):
        candidate = PixelLayout(layout.family, max(bits, layout.bits), layout.sub_x, layout.sub_y)
        if candidate.pix_fmt in _FORMAT_NAMES:
            return candidate
    raise VideoError(f"no planar pixel format for {layout.family} {layout.bits}-bit samples")


def _reads_in_place(fmt: VideoFormat, layout: PixelLayout) -> bool:
    """Whether the frame's first planes already are ``layout``'s planes (same depth, one component each)."""
    if not (fmt.is_planar or len(fmt.components) == 1) or fmt.is_big_endian or fmt.has_palette or "msb" in fmt.name:
        return False
    colours = [c for c in fmt.components if not c.is_alpha]
    return (
        len(colours) == layout.num_planes
        and sorted(c.plane for c in colours) == list(range(layout.num_planes))
        and all(c.bits == layout.bits for c in colours)
    )


def read_planes(frame: av.VideoFrame, layout: PixelLayout) -> list[np.ndarray]:
    """The frame's samples as ``layout.num_planes`` contiguous arrays (copies, safe after the frame is freed)."""
    if not _reads_in_place(frame.format, layout):
        same_range = frame.color_range or None
        # one thread: swscale's sliced threads returned wrong rows now and then for p010le here (PyAV 19)
        frame = frame.reformat(format=layout.pix_fmt, src_color_range=same_range, dst_color_range=same_range, threads=1)
    dtype = layout.dtype
    planes = []
    for index in range(layout.num_planes):
        plane = frame.planes[index]
        rows, cols = layout.plane_shape(index, frame.width, frame.height)
        data = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // dtype.itemsize)
        planes.append(np.array(data[:rows, :cols]))
    return planes


def new_frame(planes: Sequence[np.ndarray], layout: PixelLayout, width: int, height: int) -> av.VideoFrame:
    """A frame in ``layout.pix_fmt`` holding ``planes`` (as ``ColourConverter.from_rgb`` returns them)."""
    frame = av.VideoFrame(width, height, layout.pix_fmt)
    dtype = layout.dtype
    for index, values in enumerate(planes):
        plane = frame.planes[index]
        rows, cols = layout.plane_shape(index, width, height)
        target = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // dtype.itemsize)
        target[:rows, :cols] = values
    return frame
