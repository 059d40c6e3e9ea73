"""Small video files made with PyAV for the video tests, ways to read them back, and the tests' job (``job``).

Every frame is different: a gradient that moves with the frame number, and the frame number itself drawn in
binary as a row of black and white blocks along the top, so a dropped, doubled or swapped frame shows.
"""

from __future__ import annotations

import fractions
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from hat_plugin.engine import Upscaler
from hat_plugin.video import EncoderSettings, VideoJob
from hat_plugin.video.frames import layout_of, new_frame, read_planes

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = REPO / "tests" / "data" / "golden" / "tiny-x2-w8" / "weights.safetensors"


def job(source: Path | str, output: Path | str, engine: Upscaler, **options: object) -> VideoJob:
    """A job with the golden tiny x2 model on ``engine`` (the ``engine`` fixture): lossless FFV1 output, so frames
    compare exactly, and chunks of 4 frames unless ``options`` say otherwise."""
    options.setdefault("encoder", EncoderSettings("ffv1"))
    options.setdefault("chunk_frames", 4)
    return VideoJob(source, output, WEIGHTS, upscaler=engine, **options)  # type: ignore[arg-type]


@dataclass
class Clip:
    """What ``make_clip`` wrote, for the assertions."""

    path: Path
    pts: list[int]
    time_base: fractions.Fraction
    pix_fmt: str
    frames: list[list[np.ndarray]] = field(default_factory=list)


def frame_rgb(number: int, width: int, height: int) -> np.ndarray:
    """Frame ``number`` as HxWx3 uint8: a moving gradient with the number in binary blocks along the top."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 40 + 150 * (0.5 + 0.5 * np.sin((xx + 3 * number) / 7.0))
    green = 40 + 150 * (0.5 + 0.5 * np.cos((yy + 2 * number) / 5.0))
    blue = 40 + 120 * ((xx + yy + 5 * number) % 32) / 32
    image = np.stack([red, green, blue], axis=-1)
    block = max(2, width // 8)
    for bit in range(8):
        value = 235 if (number >> bit) & 1 else 16
        image[: max(2, height // 8), bit * block : (bit + 1) * block] = value
    return image.round().clip(0, 255).astype(np.uint8)


def make_clip(
    path: Path,
    *,
    frames: int = 12,
    width: int = 32,
    height: int = 24,
    pix_fmt: str = "yuv420p",
    codec: str = "ffv1",
    matrix: str = "ITU709",
    colorspace: int = 1,
    color_range: int = 1,
    vfr: bool = False,
    time_base: fractions.Fraction = fractions.Fraction(1, 1000),
    audio: bool = False,
    subtitles: bool = False,
    attachment: bool = False,
    chapters: bool = False,
    options: dict[str, str] | None = None,
    interlaced: bool = False,
    rotation: int = 0,
) -> Clip:
    """Write a clip and return its timestamps and the planes of every frame as encoded (lossless codecs)."""
    rate = 25
    step = round(1 / (rate * time_base))
    pts, now = [], 0
    for number in range(frames):
        pts.append(now)
        now += step * (1 + (number % 3 == 1) * 2) if vfr else step  # VFR: every third gap three times as long
    container = av.open(str(path), "w")
    container.metadata["title"] = "hat test clip"
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.time_base = time_base
    stream.codec_context.time_base = time_base
    stream.codec_context.colorspace = colorspace
    stream.codec_context.color_range = color_range
    stream.metadata["title"] = "picture"
    if rotation:
        stream.set_display_rotation(rotation)
    opts = dict(options or {})
    if interlaced:
        opts["x264-params"] = "tff=1"
    if opts:
        stream.codec_context.options = opts
    sound = None
    if audio:
        sound = container.add_stream("flac", rate=48000)
        sound.layout = "stereo"
        sound.metadata["language"] = "fra"
    text = container.add_mux_stream("subrip", time_base=fractions.Fraction(1, 1000)) if subtitles else None
    if text is not None:
        text.metadata["language"] = "eng"
    if attachment:
        container.add_attachment("notes.txt", "text/plain", b"attached notes " * 8)
    if chapters:
        middle = pts[frames // 2] * time_base
        end = (pts[-1] + step) * time_base
        container.set_chapters(
            [
                {
                    "id": 1,
                    "start": 0,
                    "end": int(middle * 1000),
                    "time_base": fractions.Fraction(1, 1000),  # type: ignore[typeddict-item]
                    "metadata": {"title": "Opening"},
                },
                {
                    "id": 2,
                    "start": int(middle * 1000),
                    "end": int(end * 1000),
                    "time_base": fractions.Fraction(1, 1000),  # type: ignore[typeddict-item]
                    "metadata": {"title": "Ending"},
                },
            ]
        )
    layout, _ = layout_of(av.video.format.VideoFormat(pix_fmt))
    written = []
    for number, stamp in enumerate(pts):
        rgb = av.VideoFrame.from_ndarray(frame_rgb(number, width, height), format="rgb24")
        frame = rgb.reformat(
            format=pix_fmt, dst_colorspace=matrix, dst_color_range="MPEG" if color_range == 1 else "JPEG"
        )
        planes = read_planes(frame, layout)
        frame = new_frame(planes, layout, width, height)
        frame.pts, frame.time_base = stamp, time_base
        written.append(planes)
        container.mux(stream.encode(frame))  # type: ignore[arg-type]
    container.mux(stream.encode(None))
    seconds = float((pts[-1] + step) * time_base)
    if sound is not None:
        done = 0
        while done < seconds * 48000:
            tone = (np.sin(np.arange(done, done + 1024) / 20.0) * 8000).astype(np.int16)
            samples = av.AudioFrame.from_ndarray(np.repeat(tone, 2)[None, :], format="s16", layout="stereo")
            samples.sample_rate, samples.pts, samples.time_base = 48000, done, fractions.Fraction(1, 48000)
            container.mux(sound.encode(samples))
            done += 1024
        container.mux(sound.encode(None))
    if text is not None:
        for number, (begin, finish) in enumerate([(0.04, 0.2), (seconds / 2, seconds * 0.8)]):
            packet = av.Packet(f"line {number}".encode())
            packet.stream = text
            packet.time_base = fractions.Fraction(1, 1000)
            packet.pts = packet.dts = int(begin * 1000)
            packet.duration = int((finish - begin) * 1000)
            container.mux(packet)
    container.close()
    return Clip(path, pts, time_base, pix_fmt, written)


def decoded(path: Path) -> list[tuple[int, av.VideoFrame]]:
    """``(pts, frame)`` of every frame of the first video stream, in order."""
    with av.open(str(path)) as container:
        return [(frame.pts or 0, frame) for frame in container.decode(video=0)]


def planes_of(frame: av.VideoFrame) -> list[np.ndarray]:
    """A decoded frame's planes as arrays."""
    layout, _ = layout_of(frame.format)
    return read_planes(frame, layout)


def damage(path: Path, fraction: float = 0.5, length: int = 40) -> None:
    """Scramble ``length`` bytes at ``fraction`` of the file (inside the frames of a small clip)."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * fraction)
    for offset in range(start, min(len(data), start + length)):
        data[offset] = (data[offset] * 7 + 13) & 0xFF
    path.write_bytes(bytes(data))
