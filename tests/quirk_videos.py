"""Video files with the quirks real files have, made with Debian's ``ffmpeg`` command (a test-only tool that
``make setup`` installs) and PyAV: tiny pictures, a few frames each, every frame different (FFmpeg's
``testsrc2`` pattern moves and counts).

Each maker writes one file into a folder and returns its path; ``QUIRKS`` names them all.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np

FFMPEG = shutil.which("ffmpeg")
SIZE = "48x32"
FRAMES = 14
X265_10BIT = ("-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params", "log-level=error")


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; the test fails with its message when it does."""
    assert FFMPEG is not None, "Debian's ffmpeg is needed for these tests: apt-get install ffmpeg (make setup does)"
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def source(
    size: str = SIZE, rate: int = 25, frames: int = FRAMES, audio: bool = False, repeated: bool = False
) -> list[str]:
    """Input options: the moving test pattern (and a tone as long), ``frames`` long. The hue turns with time, so
    every frame differs even where the pattern, this small, repeats (``repeated`` keeps the repeats)."""
    seconds = f"{frames / rate:.4f}"
    hue = "" if repeated else ",hue=H=t*10"
    video = ["-f", "lavfi", "-t", seconds, "-i", f"testsrc2=size={size}:rate={rate}{hue}"]
    sound = ["-f", "lavfi", "-t", seconds, "-i", "sine=frequency=440:sample_rate=48000"] if audio else []
    return [*video, *sound]


def made(folder: Path, name: str, *args: str, **pattern: Any) -> Path:
    """``folder / name``, written by ffmpeg from the test pattern (``source(**pattern)``) with the output
    options ``args``."""
    path = folder / name
    ffmpeg(*source(**pattern), *args, str(path))
    return path


def joined(folder: Path, name: str, parts: list[Path]) -> Path:
    """``folder / name`` holding the bytes of ``parts`` one after the other (recordings joined by ``cat``)."""
    path = folder / name
    path.write_bytes(b"".join(part.read_bytes() for part in parts))
    return path


def avi_packed_bframes(folder: Path) -> Path:
    """XviD-style AVI with packed B-frames (a P and a B frame in one chunk, then a 6-byte placeholder), AC-3."""
    return made(folder, "packed.avi", "-c:v", "libxvid", "-bf", "2", "-g", "8", "-c:a", "ac3", audio=True)


def avi_unpacked_bframes(folder: Path) -> Path:
    """MPEG-4 ASP AVI with B-frames stored one per chunk in decode order (what mpeg4_unpack_bframes writes)."""
    packed = avi_packed_bframes(folder)
    path = folder / "unpacked.avi"
    ffmpeg("-i", str(packed), "-c", "copy", "-bsf:v", "mpeg4_unpack_bframes", str(path))
    return path


def avi_null_frames(folder: Path) -> Path:
    """AVI whose frame gaps are empty chunks (repeat the last picture): a variable-rate source written at 25 fps."""
    gaps = "setpts='N/25/TB+if(gte(N,5),3/25/TB,0)+if(gte(N,9),2/25/TB,0)'"
    vfr = made(folder, "vfr-source.mkv", "-vf", gaps, "-c:v", "ffv1")
    path = folder / "null.avi"
    ffmpeg("-i", str(vfr), "-c:v", "mpeg4", "-fps_mode", "passthrough", "-enc_time_base", "1/25", str(path))
    return path


def mp4_pts_equal_dts(folder: Path) -> Path:
    """H.264 with B-frames in MP4 whose stored timestamps are the decode order's (no composition offsets)."""
    normal = mp4_edit_list(folder)
    path = folder / "pts-dts.mp4"
    with av.open(str(normal)) as source, av.open(str(path), "w") as target:
        stream = source.streams.video[0]
        out = target.add_stream_from_template(stream)
        audio = source.streams.audio[0]
        sound = target.add_stream_from_template(audio)
        first = None
        for packet in source.demux(stream, audio):
            if packet.dts is None:
                continue
            if packet.stream is stream:
                first = packet.dts if first is None else first
                packet.pts = packet.dts = packet.dts - first
                packet.stream = out
            else:
                packet.stream = sound
            target.mux(packet)
    return path


def mp4_edit_list(folder: Path) -> Path:
    """H.264 with B-frames and AAC in MP4: composition offsets and an edit list that starts the video late."""
    return made(folder, "editlist.mp4", "-c:v", "libx264", "-bf", "3", "-g", "6", "-c:a", "aac", audio=True)


def mov_negative_cts(folder: Path) -> Path:
    """MOV without an edit list, with negative composition offsets (version 1 ctts)."""
    options = ("-c:v", "libx264", "-bf", "2", "-use_editlist", "0", "-movflags", "negative_cts_offsets")
    return made(folder, "negative-cts.mov", *options)


def mp4_cut_with_edit_list(folder: Path) -> Path:
    """An MP4 cut without re-encoding: the edit list starts after a keyframe, so leading frames are discarded."""
    normal = mp4_edit_list(folder)
    path = folder / "cut.mp4"
    ffmpeg("-ss", "0.2", "-i", str(normal), "-c", "copy", str(path))
    return path


def mkv_open_gop(folder: Path) -> Path:
    """H.264 with open GOPs (B-frames before a recovery point refer across it) in Matroska."""
    return made(folder, "open-gop.mkv", "-c:v", "libx264", "-x264-params", "open-gop=1:keyint=5:min-keyint=5:bframes=2")


def mkv_repeated_pictures(folder: Path) -> Path:
    """H.264 whose pictures repeat (14 frames, 4 different pictures, as in a still or a slide show): a seek
    cannot be placed by one picture's hash, only by a longer run or from the start."""
    return made(folder, "repeated.mkv", "-c:v", "libx264", "-g", "4", "-qp", "0", repeated=True)


def mkv_vfr(folder: Path) -> Path:
    """Variable frame rate H.264 with B-frames in Matroska (gaps of one to four frames)."""
    gaps = "setpts='(N+floor(N/3)*2)/25/TB'"
    return made(folder, "vfr.mkv", "-vf", gaps, "-fps_mode", "passthrough", "-c:v", "libx264")


def raw_h264(folder: Path) -> Path:
    """An H.264 elementary stream (no container, no timestamps) with B-frames."""
    return made(folder, "raw.h264", "-c:v", "libx264", "-bf", "2", "-f", "h264")


def raw_hevc(folder: Path) -> Path:
    """An HEVC elementary stream, 10-bit, with B-frames."""
    return made(folder, "raw.hevc", *X265_10BIT, "-f", "hevc", size="64x48")


def raw_m2v(folder: Path) -> Path:
    """An MPEG-2 video elementary stream with B-frames and open GOPs."""
    return made(folder, "raw.m2v", "-c:v", "mpeg2video", "-bf", "2", "-g", "6", "-f", "mpeg2video")


def mpg_mpeg2(folder: Path) -> Path:
    """MPEG-2 program stream (.mpg) with MP2 audio, B-frames and open GOPs, as DVDs and capture cards write."""
    options = ("-c:v", "mpeg2video", "-bf", "2", "-g", "6", "-c:a", "mp2", "-f", "mpeg")
    return made(folder, "program.mpg", *options, audio=True)


def ts_discontinuity(folder: Path) -> Path:
    """MPEG-TS whose timestamps jump back part-way (two recordings joined): the second part starts again at the
    same time as the first."""
    parts = [
        made(folder, f"part{n}.ts", "-vf", f"hue=h={90 * n}", "-c:v", "mpeg2video", "-f", "mpegts", frames=8)
        for n in range(2)
    ]
    return joined(folder, "discontinuity.ts", parts)


def ts_size_change(folder: Path) -> Path:
    """MPEG-TS whose picture size changes part-way."""
    parts = [
        made(folder, f"size{n}.ts", "-c:v", "mpeg2video", "-output_ts_offset", str(n), size=size, frames=6)
        for n, size in enumerate((SIZE, "64x48"))
    ]
    return joined(folder, "size-change.ts", parts)


def odd_size(folder: Path) -> Path:
    """An odd picture size (41x27) in 4:2:0 (FFV1 in Matroska, written with PyAV: ffmpeg's filters round it)."""
    path = folder / "odd.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 41, 27, "yuv420p"
        for number in range(6):
            picture = np.zeros((27, 41, 3), np.uint8)
            picture[..., 0] = (np.arange(41) * 6 + number * 20)[None, :] % 256
            picture[..., 1] = (np.arange(27) * 9)[:, None]
            picture[number : number + 3, number * 5 : number * 5 + 4] = 255
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            frame.pts = number
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def h264_422(folder: Path) -> Path:
    """H.264 High 4:2:2 with B-frames."""
    return made(folder, "422.mkv", "-c:v", "libx264", "-pix_fmt", "yuv422p", frames=8)


def h264_444(folder: Path) -> Path:
    """H.264 High 4:4:4 Predictive with B-frames in MP4."""
    return made(folder, "444.mp4", "-c:v", "libx264", "-pix_fmt", "yuv444p", frames=8)


def hevc_10bit_mp4(folder: Path) -> Path:
    """10-bit HEVC with B-frames in MP4 (hvc1)."""
    return made(folder, "hevc10.mp4", *X265_10BIT, "-tag:v", "hvc1", "-c:a", "aac", size="64x48", audio=True)


def webm_vp9(folder: Path) -> Path:
    """VP9 with alternate reference (hidden) frames and Opus in WebM."""
    options = ("-c:v", "libvpx-vp9", "-auto-alt-ref", "1", "-lag-in-frames", "8", "-c:a", "libopus")
    return made(folder, "vp9.webm", *options, audio=True)


def webm_av1(folder: Path) -> Path:
    """AV1 in WebM."""
    return made(folder, "av1.webm", "-c:v", "libaom-av1", "-cpu-used", "8", "-crf", "40", frames=8)


def mkv_truncated(folder: Path) -> Path:
    """H.264 and audio in Matroska, cut off at 60 % of its bytes (a copy that did not finish)."""
    options = ("-c:v", "libx264", "-crf", "4", "-c:a", "aac", "-b:a", "16k")
    whole = made(folder, "whole.mkv", *options, frames=40, audio=True)
    path = folder / "truncated.mkv"
    data = whole.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    return path


def h264_damaged(folder: Path) -> Path:
    """H.264 in Matroska with the data of two frames scrambled (a bad sector, a broken download); the container
    is intact."""
    clean = made(folder, "clean.mkv", "-c:v", "libx264", "-g", "10", "-bf", "0", "-crf", "8", size="64x48", frames=30)
    path = folder / "damaged.mkv"
    with av.open(str(clean)) as source_file, av.open(str(path), "w") as target:
        stream = source_file.streams.video[0]
        out = target.add_stream_from_template(stream)
        for number, packet in enumerate(source_file.demux(stream)):
            if packet.dts is None:
                continue
            if number in (12, 21):
                data = bytearray(bytes(packet))
                for offset in range(len(data) // 3, len(data)):
                    data[offset] = (data[offset] * 7 + 13) & 0xFF
                damaged = av.Packet(bytes(data))
                damaged.pts, damaged.dts, damaged.time_base = packet.pts, packet.dts, packet.time_base
                damaged.is_keyframe = packet.is_keyframe
                packet = damaged  # type: ignore[assignment]
            packet.stream = out
            target.mux(packet)
    return path


QUIRKS: dict[str, Callable[[Path], Path]] = {
    "avi_packed_bframes": avi_packed_bframes,
    "avi_unpacked_bframes": avi_unpacked_bframes,
    "avi_null_frames": avi_null_frames,
    "mp4_pts_equal_dts": mp4_pts_equal_dts,
    "mp4_edit_list": mp4_edit_list,
    "mov_negative_cts": mov_negative_cts,
    "mp4_cut_with_edit_list": mp4_cut_with_edit_list,
    "mkv_open_gop": mkv_open_gop,
    "mkv_repeated_pictures": mkv_repeated_pictures,
    "mkv_vfr": mkv_vfr,
    "raw_h264": raw_h264,
    "raw_hevc": raw_hevc,
    "raw_m2v": raw_m2v,
    "mpg_mpeg2": mpg_mpeg2,
    "ts_discontinuity": ts_discontinuity,
    "odd_size": odd_size,
    "h264_422": h264_422,
    "h264_444": h264_444,
    "hevc_10bit_mp4": hevc_10bit_mp4,
    "webm_vp9": webm_vp9,
    "webm_av1": webm_av1,
    "mkv_truncated": mkv_truncated,
    "h264_damaged": h264_damaged,
}
"""Files the pipeline must upscale (exit 0); ``ts_size_change`` is refused with one line instead."""
