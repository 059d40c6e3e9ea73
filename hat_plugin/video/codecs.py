"""Encoder settings per codec: the ``--codec`` names, their FFmpeg encoders, quality defaults, pixel formats, and
the options that make every chunk start on a keyframe with closed GOPs and come out byte for byte the same on
any machine and in every run (fixed thread counts, bit-exact flags, x264 kept off its AVX-512 code)."""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
from av.video.format import VideoFormat

from ..errors import OptionError, VideoError
from .colour import PixelLayout
from .frames import layout_of

__all__ = ["CODECS", "CodecSpec", "EncoderSettings", "choose_layout", "configure_encoder"]


@dataclass(frozen=True)
class CodecSpec:
    """One ``--codec`` choice."""

    name: str
    encoder: str
    description: str
    crf: float | None = None
    """Default constant-quality value (None: the codec has no such control)."""
    crf_range: tuple[float, float] = (0, 51)
    preset: str | None = None
    """Default speed preset (for ProRes: the profile)."""
    presets: tuple[str, ...] = ()
    lossless: bool = False


CODECS: dict[str, CodecSpec] = {
    spec.name: spec
    for spec in (
        CodecSpec(
            "x264",
            "libx264",
            "H.264 (libx264): plays everywhere; 8 and 10 bit",
            crf=16,
            preset="slow",
            presets=("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"),
        ),
        CodecSpec(
            "x265",
            "libx265",
            "HEVC (libx265): smaller files; 8, 10 and 12 bit",
            crf=18,
            preset="slow",
            presets=("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"),
        ),
        CodecSpec(
            "av1",
            "libsvtav1",
            "AV1 (SVT-AV1): smallest files; 8 and 10 bit 4:2:0",
            crf=24,
            crf_range=(1, 63),
            preset="6",
            presets=tuple(str(n) for n in range(14)),
        ),
        CodecSpec("ffv1", "ffv1", "FFV1: lossless archive (large files)", lossless=True),
        CodecSpec(
            "prores",
            "prores_ks",
            "Apple ProRes (prores_ks): for editing; 10-bit 4:2:2 or 4:4:4",
            preset="hq",
            presets=("proxy", "lt", "standard", "hq", "4444", "4444xq"),
        ),
    )
}
_PRORES_PROFILES = {"proxy": "0", "lt": "1", "standard": "2", "hq": "3", "4444": "4", "4444xq": "5"}


@dataclass(frozen=True)
class EncoderSettings:
    """How the upscaled video is encoded; every chunk uses the same, so the joined file is one clean stream.

    ``crf``/``preset`` default to the codec's (``CODECS``); ``bitrate`` (e.g. ``"8M"``) replaces ``crf`` with an
    average bit rate; ``pix_fmt`` None keeps the source's layout where the codec can write it. ``threads`` is fixed
    rather than taken from the machine, because the encoders' output depends on it: the same settings then give
    the same bytes on every machine of a cluster. ``gop`` is the keyframe interval inside a chunk.
    """

    codec: str = "x264"
    crf: float | None = None
    preset: str | None = None
    bitrate: str | None = None
    pix_fmt: str | None = None
    threads: int = 4
    gop: int = 240

    def checked(self) -> EncoderSettings:
        """These settings with defaults filled in; ``OptionError`` for a value the codec cannot take."""
        spec = CODECS.get(self.codec)
        if spec is None:
            raise OptionError(f"unknown {{codec}} {self.codec!r}: choose one of {', '.join(CODECS)}", option="codec")
        crf, preset = self.crf, self.preset
        if spec.lossless and (crf is not None or self.bitrate is not None):
            raise OptionError(
                f"{spec.name} is lossless: {{crf}} and {{bitrate}} do not apply", option=("crf", "bitrate")
            )
        if spec.crf is None and crf is not None:
            raise OptionError(
                f"{spec.name} has no {{crf}}; use {{preset}} to choose the profile", option=("crf", "preset")
            )
        if crf is not None and self.bitrate is not None:
            raise OptionError("give either {crf} or {bitrate}, not both", option=("crf", "bitrate"))
        if crf is not None and not spec.crf_range[0] <= crf <= spec.crf_range[1]:
            low, high = spec.crf_range
            raise OptionError(f"{{crf}} for {spec.name} must be from {low:g} to {high:g}, not {crf:g}", option="crf")
        if self.bitrate is not None:
            _bits_per_second(self.bitrate)
            if spec.name == "prores":
                raise OptionError(
                    "ProRes has no {bitrate}; use {preset} to choose the profile", option=("bitrate", "preset")
                )
        elif spec.crf is not None and crf is None:
            crf = spec.crf
        if preset is None:
            preset = spec.preset
        elif not spec.presets:
            raise OptionError(f"{spec.name} has no {{preset}}", option="preset")
        elif preset not in spec.presets:
            raise OptionError(
                f"{{preset}} for {spec.name} must be one of {', '.join(spec.presets)}, not {preset!r}", option="preset"
            )
        if self.threads < 1 or self.gop < 1:
            raise OptionError("encoder threads and keyframe interval must be 1 or more")
        return EncoderSettings(self.codec, crf, preset, self.bitrate, self.pix_fmt, self.threads, self.gop)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description (for the work folder's record of the job)."""
        return asdict(self)

    def describe(self) -> str:
        """E.g. ``x264 crf 16 preset slow``."""
        parts = [self.codec]
        if self.bitrate:
            parts.append(f"{self.bitrate}b/s")
        elif self.crf is not None:
            parts.append(f"crf {self.crf:g}")
        if self.preset:
            parts.append(f"{'profile' if self.codec == 'prores' else 'preset'} {self.preset}")
        return " ".join(parts)


def _bits_per_second(text: str) -> int:
    """``8M``, ``2500k`` or ``800000`` -> bits per second."""
    units = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
    body = text.strip().lower()
    factor = units.get(body[-1:], 1)
    number = body[:-1] if body[-1:] in units else body
    try:
        value = float(number) * factor
    except ValueError:
        raise OptionError(f"{{bitrate}} {text!r}: give bits per second, e.g. 8M or 2500k", option="bitrate") from None
    if value <= 0:
        raise OptionError(f"{{bitrate}} must be positive, not {text!r}", option="bitrate")
    return int(value)


# ------------------------------------------------------------------------------------------------ pixel formats


def _writable_layouts(encoder: str) -> dict[str, PixelLayout]:
    """The planar layouts (by format name) an encoder accepts."""
    layouts = {}
    for fmt in av.codec.Codec(encoder, "w").video_formats or ():
        try:
            layout, jpeg = layout_of(VideoFormat(fmt.name))
        except VideoError:
            continue
        if not jpeg and layout.pix_fmt == fmt.name:
            layouts[fmt.name] = layout
    return layouts


def choose_layout(settings: EncoderSettings, source: PixelLayout) -> tuple[PixelLayout, str | None]:
    """The output's pixel layout, and a note when it differs from the source's in a way users should know
    (fewer bits or less chroma). ``--pix-fmt`` is taken as given, if the encoder can write it."""
    spec = CODECS[settings.codec]
    writable = _writable_layouts(spec.encoder)
    if settings.pix_fmt is not None:
        name = settings.pix_fmt.lower()
        if name not in writable and f"{name}le" in writable:
            name = f"{name}le"
        if name not in writable:
            raise OptionError(
                f"{{pix_fmt}} {settings.pix_fmt}: {spec.name} cannot write it; choose one of {', '.join(writable)}",
                option="pix_fmt",
            )
        return writable[name], None
    if settings.codec == "prores" and settings.preset in ("4444", "4444xq"):
        writable = {n: lay for n, lay in writable.items() if (lay.sub_x, lay.sub_y) == (0, 0)}
    if source.pix_fmt in writable:
        return writable[source.pix_fmt], None
    best = min(writable.values(), key=lambda layout: _distance(source, layout))
    notes = []
    if best.bits < source.bits:
        notes.append(f"{source.bits}-bit -> {best.bits}-bit")
    if best.sub_x > source.sub_x or best.sub_y > source.sub_y:
        notes.append(f"chroma {source.chroma_name} -> {best.chroma_name}")
    if best.family != source.family:
        notes.append(f"{source.family} -> {best.family}")
    note = f"{spec.name} cannot write {source.pix_fmt}: writing {best.pix_fmt}" + (
        f" ({', '.join(notes)})" if notes else ""
    )
    return best, note


def _x264_code() -> str:
    """The x264 parameter that keeps it on its AVX2 code where the CPU has AVX-512 (else nothing: its own choice).
    With its AVX-512 code, x264 (core 165, the build PyAV 19 bundles) gave different bytes for the same frames in
    about one encode in four within one long-running process; with AVX2 or no assembly at all, the same bytes
    every time (docs/benchmarks.md, "x264 and AVX-512"). Every CPU with AVX-512 has AVX2, FMA3, BMI1/2 and LZCNT,
    which x264's ``AVX2`` level names."""
    return ":asm=AVX2" if _has_avx512() else ""


@functools.cache
def _has_avx512() -> bool:
    """Whether this CPU has AVX-512 (from Linux's ``/proc/cpuinfo``; where that cannot be read, no)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return {"avx512f", "avx2", "fma", "bmi1", "bmi2", "abm"} <= set(flags)


def _distance(source: PixelLayout, candidate: PixelLayout) -> tuple[int, int, int, int]:
    """How far a candidate layout is from the source's: family first, then lost bits, lost chroma, extra size."""
    family = 0 if candidate.family == source.family else (1 if candidate.family == "yuv" else 2)
    lost_bits = max(0, source.bits - candidate.bits)
    lost_chroma = max(0, candidate.sub_x - source.sub_x) + max(0, candidate.sub_y - source.sub_y)
    extra = max(0, candidate.bits - source.bits) + max(0, source.sub_x - candidate.sub_x)
    extra += max(0, source.sub_y - candidate.sub_y)
    return family, lost_bits, lost_chroma, extra


# ------------------------------------------------------------------------------------------------ encoders


def configure_encoder(stream: av.video.stream.VideoStream, settings: EncoderSettings) -> None:
    """Set the codec options of a new output ``stream`` for ``settings`` (before the first frame)."""
    spec = CODECS[settings.codec]
    context = stream.codec_context
    context.thread_count = settings.threads
    context.gop_size = settings.gop
    context.flags |= av.codec.context.Flags.bitexact | av.codec.context.Flags.closed_gop
    options: dict[str, str] = {}
    if settings.bitrate is not None:
        context.bit_rate = _bits_per_second(settings.bitrate)
    elif settings.crf is not None:
        options["crf"] = f"{settings.crf:g}"
    if spec.name == "x264":
        options.update(preset=str(settings.preset), **{"x264-params": "open-gop=0" + _x264_code()})
    elif spec.name == "x265":
        options.update(preset=str(settings.preset), **{"x265-params": "open-gop=0:log-level=error"})
    elif spec.name == "av1":
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration otherwise
        options.update(preset=str(settings.preset), **{"svtav1-params": "irefresh-type=2"})
    elif spec.name == "ffv1":
        options.update(level="3", slicecrc="1")
    elif spec.name == "prores":
        options["profile"] = _PRORES_PROFILES[str(settings.preset)]
    context.options = options
