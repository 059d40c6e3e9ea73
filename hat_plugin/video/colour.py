"""Colour between a video's planes (YUV, planar RGB or grey) and the engine's RGB, by what the video declares.

YUV -> RGB uses the declared matrix (BT.601, BT.709, BT.2020 non-constant luminance, FCC, SMPTE 240M), range
(limited or full) and chroma siting (where the subsampled chroma samples sit relative to the luma grid); RGB -> YUV
uses the same, so a 10-bit BT.709 limited-range 4:2:0 source comes back as exactly that. Chroma is upsampled with
linear interpolation at the declared sample positions and downsampled with the matching triangle filter. The
work is done in PyTorch on the engine's device, one frame at a time, in float32; values are rounded to the nearest
code (ties to even, the rule of ``hat_plugin.pixels``).

Numbers follow FFmpeg's enumerations (``AVColorSpace``, ``AVColorRange``, ``AVChromaLocation``), which is what
PyAV reports and writes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import VideoError

__all__ = [
    "Colour",
    "ColourConverter",
    "PixelLayout",
    "describe_matrix",
    "output_colour",
    "source_colour",
]

# AVColorSpace values
RGB, BT709, UNSPECIFIED, FCC, BT470BG, SMPTE170M, SMPTE240M, BT2020_NCL = 0, 1, 2, 4, 5, 6, 7, 9
# AVColorRange values
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2
# AVChromaLocation values
LOC_UNSPECIFIED, LOC_LEFT, LOC_CENTER, LOC_TOPLEFT, LOC_TOP, LOC_BOTTOMLEFT, LOC_BOTTOM = 0, 1, 2, 3, 4, 5, 6

_KR_KB: dict[int, tuple[float, float]] = {
    BT709: (0.2126, 0.0722),
    FCC: (0.30, 0.11),
    BT470BG: (0.299, 0.114),
    SMPTE170M: (0.299, 0.114),
    SMPTE240M: (0.212, 0.087),
    BT2020_NCL: (0.2627, 0.0593),
}
_MATRIX_NAMES = {
    RGB: "RGB",
    BT709: "BT.709",
    FCC: "FCC",
    BT470BG: "BT.601",
    SMPTE170M: "BT.601",
    SMPTE240M: "SMPTE 240M",
    BT2020_NCL: "BT.2020",
}
_UNSUPPORTED_MATRICES = {
    8: "YCgCo",
    10: "BT.2020 constant luminance",
    11: "SMPTE 2085",
    12: "chromaticity-derived non-constant luminance",
    13: "chromaticity-derived constant luminance",
    14: "ICtCp",
}
# chroma location -> (horizontal, vertical) position of a chroma sample in its block of luma samples
_SITING = {
    LOC_LEFT: ("start", "middle"),
    LOC_CENTER: ("middle", "middle"),
    LOC_TOPLEFT: ("start", "start"),
    LOC_TOP: ("middle", "start"),
    LOC_BOTTOMLEFT: ("start", "end"),
    LOC_BOTTOM: ("middle", "end"),
}
_SITING_NAMES = {1: "left", 2: "center", 3: "top-left", 4: "top", 5: "bottom-left", 6: "bottom"}
_SUBSAMPLING_NAMES = {(1, 1): "420", (1, 0): "422", (0, 0): "444", (2, 0): "411", (2, 2): "410", (0, 1): "440"}


def describe_matrix(matrix: int) -> str:
    """A colour matrix number as people name it (``BT.709``), or ``matrix N`` when it has no common name."""
    return _MATRIX_NAMES.get(matrix) or _UNSUPPORTED_MATRICES.get(matrix) or f"matrix {matrix}"


@dataclass(frozen=True)
class PixelLayout:
    """How a frame's samples are stored once normalised: planar, little-endian, no alpha.

    ``family`` is ``yuv`` (Y, U, V planes), ``rgb`` (G, B, R planes, FFmpeg's ``gbrp``) or ``gray`` (one plane);
    ``bits`` 8 to 16 (8-bit samples are bytes, deeper ones 16-bit words); ``sub_x``/``sub_y`` the log2 chroma
    subsampling (1, 1 for 4:2:0).
    """

    family: str
    bits: int
    sub_x: int = 0
    sub_y: int = 0

    @property
    def pix_fmt(self) -> str:
        """The FFmpeg pixel format name of this layout (``yuv420p10le``, ``gbrp``, ``gray12le``)."""
        depth = "" if self.bits == 8 else f"{self.bits}le"
        if self.family == "gray":
            return f"gray{depth}"
        if self.family == "rgb":
            return f"gbrp{depth}"
        return f"yuv{_SUBSAMPLING_NAMES[(self.sub_x, self.sub_y)]}p{depth}"

    @property
    def dtype(self) -> np.dtype[np.uint8] | np.dtype[np.uint16]:
        """The numpy type of one sample."""
        return np.dtype(np.uint8) if self.bits == 8 else np.dtype(np.uint16)

    @property
    def num_planes(self) -> int:
        """1 for grey, 3 otherwise."""
        return 1 if self.family == "gray" else 3

    @property
    def chroma_name(self) -> str:
        """``4:2:0``, ``4:2:2``, ``4:4:4``, ... (``4:4:4`` for RGB and grey, which have no subsampled planes)."""
        digits = _SUBSAMPLING_NAMES[(self.sub_x, self.sub_y)]
        return f"{digits[0]}:{digits[1]}:{digits[2]}"

    def plane_shape(self, index: int, width: int, height: int) -> tuple[int, int]:
        """``(rows, columns)`` of plane ``index`` for a ``width`` x ``height`` frame (chroma rounded up)."""
        if index == 0 or self.family != "yuv":
            return height, width
        return -(-height >> self.sub_y), -(-width >> self.sub_x)

    @staticmethod
    def known(family: str, bits: int, sub_x: int = 0, sub_y: int = 0) -> bool:
        """Whether this combination is one the converter handles."""
        return family in ("yuv", "rgb", "gray") and 8 <= bits <= 16 and (sub_x, sub_y) in _SUBSAMPLING_NAMES


@dataclass(frozen=True)
class Colour:
    """The colour description of a video stream, with every unspecified value already decided."""

    matrix: int
    full_range: bool
    chroma_location: int
    primaries: int = UNSPECIFIED
    transfer: int = UNSPECIFIED

    def describe(self, layout: PixelLayout) -> str:
        """E.g. ``BT.709, limited range, 4:2:0 chroma left``: what a user checks against their player."""
        parts = [] if layout.family != "yuv" else [describe_matrix(self.matrix)]
        parts.append("full range" if self.full_range else "limited range")
        if layout.family == "yuv" and (layout.sub_x or layout.sub_y):
            parts.append(f"{layout.chroma_name} chroma {_SITING_NAMES[self.chroma_location]}")
        elif layout.family == "yuv":
            parts.append(layout.chroma_name)
        return ", ".join(parts)


def source_colour(
    layout: PixelLayout,
    width: int,
    height: int,
    *,
    matrix: int,
    colour_range: int,
    chroma_location: int,
    primaries: int = UNSPECIFIED,
    transfer: int = UNSPECIFIED,
    jpeg_range: bool = False,
) -> Colour:
    """Decide a source's colour from what it declares, filling gaps the way players do.

    An unspecified matrix is BT.709 for HD sizes (wider than 1024 or taller than 576) and BT.601 below; an
    unspecified range is limited for YUV (full for the ``yuvj`` formats, ``jpeg_range``) and full for RGB and grey;
    unspecified chroma siting is left (MPEG-2, H.264, HEVC) or center for JPEG-style sources.
    Raises ``VideoError`` for matrices the conversion does not implement (constant-luminance BT.2020, ICtCp, YCgCo).
    """
    if layout.family == "rgb":
        matrix = RGB
    elif matrix in _UNSUPPORTED_MATRICES:
        raise VideoError(
            f"the colour matrix {_UNSUPPORTED_MATRICES[matrix]} is not supported; convert the video to BT.709 or "
            "BT.2020 (non-constant luminance) first"
        )
    elif matrix not in _KR_KB:
        matrix = BT709 if width > 1024 or height > 576 else SMPTE170M
    full = colour_range == RANGE_FULL
    if colour_range == RANGE_UNSPECIFIED:
        full = jpeg_range or layout.family != "yuv"
    if chroma_location not in _SITING:
        chroma_location = LOC_CENTER if jpeg_range else LOC_LEFT
    return Colour(matrix, full, chroma_location, primaries, transfer)


def output_colour(source: Colour, source_layout: PixelLayout, layout: PixelLayout) -> Colour:
    """The output's colour: the source's, except where the output family needs a matrix the source lacked (an
    RGB or grey source written as YUV gets BT.709, limited range)."""
    if layout.family == "rgb":
        return Colour(RGB, True, source.chroma_location, source.primaries, source.transfer)
    if layout.family == source_layout.family or source_layout.family == "yuv":
        return source
    matrix = source.matrix if source.matrix in _KR_KB else BT709
    return Colour(matrix, layout.family == "gray" and source.full_range, LOC_LEFT, source.primaries, source.transfer)


# ------------------------------------------------------------------------------------------------ resampling


def _offset(position: str, factor: int) -> float:
    """Where a chroma sample sits inside its block of ``factor`` luma samples, in luma sample units."""
    return {"start": 0.0, "middle": (factor - 1) / 2, "end": float(factor - 1)}[position]


def _upsample_taps(luma: int, sub: int, position: str) -> tuple[Tensor, Tensor, Tensor]:
    """For each luma position, the two chroma samples around it and the weight of the second (linear)."""
    factor = 1 << sub
    chroma = -(-luma >> sub)
    where = (torch.arange(luma, dtype=torch.float64) - _offset(position, factor)) / factor
    first = torch.floor(where)
    weight = (where - first).float()
    lo = first.long().clamp(0, chroma - 1)
    hi = (first.long() + 1).clamp(0, chroma - 1)
    return lo, hi, weight


def _downsample_taps(luma: int, sub: int, position: str) -> tuple[Tensor, Tensor]:
    """For each chroma sample, the ``2 * factor`` luma samples under a triangle filter centred on it (edges
    repeated) and their normalised weights: the linear filter that matches ``_upsample_taps``."""
    factor = 1 << sub
    chroma = -(-luma >> sub)
    centre = torch.arange(chroma, dtype=torch.float64) * factor + _offset(position, factor)
    first = torch.floor(centre - factor) + 1
    taps = first[:, None] + torch.arange(2 * factor, dtype=torch.float64)[None, :]
    weights = (1 - (taps - centre[:, None]).abs() / factor).clamp_min(0)
    weights = weights / weights.sum(dim=1, keepdim=True)
    return taps.long().clamp(0, luma - 1), weights.float()


class _DownAxis:
    """One axis of the chroma downsample as a sum of strided slices (one per non-zero tap of
    ``_downsample_taps``) over a plane whose edges are repeated into padding: the same products, summed in the
    same order, as gathering the clamped taps, without a full-size gather per tap."""

    def __init__(self, luma: int, sub: int, position: str) -> None:
        factor = 1 << sub
        first = math.floor(_offset(position, factor) - factor) + 1
        weights = _downsample_taps(luma, sub, position)[1][0].tolist()
        self.luma, self.count, self.step = luma, -(-luma >> sub), factor
        last = first + factor * (self.count - 1) + len(weights) - 1
        self.before, self.after = max(0, -first), max(0, last - (luma - 1))
        self.taps = [(first + self.before + k, weight) for k, weight in enumerate(weights) if weight != 0]

    @property
    def padded(self) -> int:
        """The padded length of this axis."""
        return self.before + self.luma + self.after

    def interior(self, buffer: Tensor, dim: int) -> Tensor:
        """The unpadded part of ``buffer`` along ``dim``."""
        return buffer.narrow(dim, self.before, self.luma)

    def reduce(self, buffer: Tensor, dim: int, out: Tensor) -> Tensor:
        """Fill ``buffer``'s padding along ``dim`` from its edges, then write the filtered samples into ``out``."""
        if self.before:
            buffer.narrow(dim, 0, self.before).copy_(buffer.narrow(dim, self.before, 1).expand_as(
                buffer.narrow(dim, 0, self.before)))  # fmt: skip
        if self.after:
            edge = self.before + self.luma - 1
            tail = buffer.narrow(dim, edge + 1, self.after)
            tail.copy_(buffer.narrow(dim, edge, 1).expand_as(tail))
        product = torch.empty_like(out)
        for number, (start, weight) in enumerate(self.taps):
            span = slice(start, start + self.step * (self.count - 1) + 1, self.step)
            part = buffer[(..., span) + (slice(None),) * (-1 - dim)]
            torch.mul(part, weight, out=out if number == 0 else product)
            if number:
                out.add_(product)
        return out


class _Resampler:
    """Chroma planes between their own size and the luma size, for one frame size and siting (taps made once)."""

    def __init__(self, width: int, height: int, sub_x: int, sub_y: int, location: int, device: torch.device) -> None:
        horizontal, vertical = _SITING[location]
        self.width, self.height = width, height
        self.up_x = tuple(t.to(device) for t in _upsample_taps(width, sub_x, horizontal)) if sub_x else None
        self.up_y = tuple(t.to(device) for t in _upsample_taps(height, sub_y, vertical)) if sub_y else None
        self.down_x = _DownAxis(width, sub_x, horizontal) if sub_x else None
        self.down_y = _DownAxis(height, sub_y, vertical) if sub_y else None

    def up(self, plane: Tensor) -> Tensor:
        """``(..., rows, cols)`` chroma -> luma size."""
        if self.up_y is not None:
            lo, hi, w = self.up_y
            plane = torch.lerp(plane.index_select(-2, lo), plane.index_select(-2, hi), w[:, None])
        if self.up_x is not None:
            lo, hi, w = self.up_x
            plane = torch.lerp(plane.index_select(-1, lo), plane.index_select(-1, hi), w)
        return plane


# ------------------------------------------------------------------------------------------------ conversion


# rows x columns of the bands ``from_rgb`` works in (so that a band's planes stay in the CPU's caches; 2**17 was
# the fastest of 2**13 to a whole 5-MP frame on an AVX2 EPYC)
_BAND = 1 << 17


class ColourConverter:
    """Planes of one frame size and layout <-> RGB floats in [0, 1], on ``device``.

    ``to_rgb`` takes the planes of a decoded frame (numpy, as ``PixelLayout`` describes them) and returns a
    ``(1, 3, H, W)`` float32 tensor on ``device``; ``from_rgb`` takes such a tensor (the engine's output) and
    returns the planes to encode. ``rgb`` and ``planes`` are the same on tensors already on the device (a
    ``frame_upscaler.PlaneFormat``, for the frame upscaler's staging). One converter serves every frame of a video.
    """

    def __init__(self, layout: PixelLayout, colour: Colour, width: int, height: int, device: torch.device) -> None:
        self.layout, self.colour = layout, colour
        self.width, self.height = width, height
        self.device = device
        top = (1 << layout.bits) - 1
        self.top = top
        shift = layout.bits - 8
        if colour.full_range:
            self.y_offset, self.y_scale = 0.0, float(top)
            self.c_offset, self.c_scale = float(1 << (layout.bits - 1)), float(top)
        else:
            self.y_offset, self.y_scale = float(16 << shift), float(219 << shift)
            self.c_offset, self.c_scale = float(128 << shift), float(224 << shift)
        kr, kb = _KR_KB.get(colour.matrix, _KR_KB[BT709])
        self.kr, self.kb, self.kg = kr, kb, 1.0 - kr - kb
        subsampled = layout.family == "yuv" and (layout.sub_x or layout.sub_y)
        self.resampler = (
            _Resampler(width, height, layout.sub_x, layout.sub_y, colour.chroma_location, device)
            if subsampled
            else None
        )

    # ---- planes -> RGB -------------------------------------------------------------------------------------

    @property
    def dtype(self) -> np.dtype[np.uint8] | np.dtype[np.uint16]:
        """The numpy type of one sample of the planes."""
        return self.layout.dtype

    def to_rgb(self, planes: Sequence[np.ndarray]) -> Tensor:
        """Decoded planes -> ``(1, 3, H, W)`` float32 RGB in [0, 1] on the device."""
        return self.rgb([self._upload(plane) for plane in planes])

    def rgb(self, planes: Sequence[Tensor]) -> Tensor:
        """The planes' samples on the device (16-bit ones as int32) -> ``(1, 3, H, W)`` float32 RGB in [0, 1]."""
        values = [plane.to(torch.float32) for plane in planes]
        if self.layout.family == "gray":
            y = (values[0] - self.y_offset) / self.y_scale
            rgb = y.expand(3, -1, -1)
        elif self.layout.family == "rgb":
            g, b, r = ((v - self.y_offset) / self.y_scale for v in values)
            rgb = torch.stack([r, g, b])
        else:
            y = (values[0] - self.y_offset) / self.y_scale
            chroma = (torch.stack(values[1:]) - self.c_offset) / self.c_scale
            if self.resampler is not None:
                chroma = self.resampler.up(chroma)
            cb, cr = chroma[0], chroma[1]
            r = y + (2 - 2 * self.kr) * cr
            b = y + (2 - 2 * self.kb) * cb
            g = (y - self.kr * r - self.kb * b) / self.kg
            rgb = torch.stack([r, g, b])
        return rgb.clamp(0.0, 1.0).unsqueeze(0).contiguous()

    def _upload(self, plane: np.ndarray) -> Tensor:
        data = torch.from_numpy(plane if plane.dtype == np.uint8 else plane.astype(np.int32))
        return data.to(self.device)

    # ---- RGB -> planes -------------------------------------------------------------------------------------

    def from_rgb(self, rgb: Tensor) -> list[np.ndarray]:
        """``(1, 3, H, W)`` or ``(3, H, W)`` RGB in [0, 1] -> the planes of this layout, as numpy arrays."""
        return [self._numpy(codes) for codes in self.planes(rgb)]

    def planes(self, rgb: Tensor) -> list[Tensor]:
        """``(1, 3, H, W)`` or ``(3, H, W)`` RGB in [0, 1] -> the planes' codes on the device (uint8, or int32 for
        deeper samples).

        The full-size work goes in bands of rows that stay in the CPU's cache, each step writing into a buffer
        made for it (the input is never changed), in the order and with the rounding of the plain expressions
        ``kr * r + kg * g + kb * b`` and ``(b - y) / (2 - 2 * kb)``; the chroma's horizontal filter runs per band,
        the vertical one on the half-done planes.
        """
        r, g, b = (rgb[0] if rgb.dim() == 4 else rgb).to(self.device, torch.float32)
        if self.layout.family == "rgb":
            return [self._quantise(v.clone(), self.y_offset, self.y_scale) for v in (g, b, r)]
        height, width = r.shape
        device = r.device
        across = self.resampler.down_x if self.resampler is not None else None
        down = self.resampler.down_y if self.resampler is not None else None
        band = max(1, _BAND // width)
        y, term = torch.empty(2, min(band, height), width, device=device)
        y_codes = torch.empty(height, width, dtype=self._code_type, device=device)
        chroma = rows = torch.empty(0)
        if self.layout.family == "yuv":
            shape = (2, down.padded if down else height, across.count if across else width)
            rows = torch.empty(shape, device=device)
            chroma = down.interior(rows, -2) if down else rows
        padded = torch.empty(2, min(band, height), across.padded, device=device) if across else None
        for top in range(0, height, band):
            count = min(band, height - top)
            r_band, g_band, b_band = (v.narrow(0, top, count) for v in (r, g, b))
            y_band, term_band = y[:count], term[:count]
            torch.mul(r_band, self.kr, out=y_band)
            y_band.add_(torch.mul(g_band, self.kg, out=term_band))
            y_band.add_(torch.mul(b_band, self.kb, out=term_band))
            if self.layout.family == "yuv":
                target = chroma.narrow(1, top, count)
                part = across.interior(padded[:, :count], -1) if across and padded is not None else target
                torch.sub(b_band, y_band, out=part[0]).div_(2 - 2 * self.kb)
                torch.sub(r_band, y_band, out=part[1]).div_(2 - 2 * self.kr)
                if across and padded is not None:
                    across.reduce(padded[:, :count], -1, target)
            y_codes[top : top + count].copy_(self._codes(y_band, self.y_offset, self.y_scale))
        planes = [y_codes]
        if self.layout.family == "gray":
            return planes
        if down:
            chroma = down.reduce(rows, -2, rows.new_empty(2, down.count, rows.shape[-1]))
        planes.extend(self._quantise(c, self.c_offset, self.c_scale) for c in chroma)
        return planes

    @property
    def _code_type(self) -> torch.dtype:
        return torch.uint8 if self.layout.bits == 8 else torch.int32

    def _codes(self, values: Tensor, offset: float, scale: float) -> Tensor:
        """Floats -> codes in place: scaled, offset, rounded to the nearest (ties to even) and clamped."""
        return values.mul_(scale).add_(offset).round_().clamp_(0, self.top)

    def _numpy(self, codes: Tensor) -> np.ndarray:
        if self.layout.bits == 8:
            return np.ascontiguousarray(codes.cpu().numpy())
        return codes.cpu().numpy().astype(np.uint16)

    def _quantise(self, values: Tensor, offset: float, scale: float) -> Tensor:
        """Floats -> the codes of one plane, using ``values`` as scratch space."""
        return self._codes(values, offset, scale).to(self._code_type)
