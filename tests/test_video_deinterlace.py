"""Interlaced sources (MPEG-2 and H.264 coded as fields by Debian's ffmpeg, top field first): deinterlaced with
FFmpeg's bwdif/yadif before the upscale, at frame or field rate, in chunks that give exactly what one filter pass
over the whole decoded video gives (the reference here is such a pass, with the decoder's own field flags)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import av.error
import av.filter
import numpy as np
import pytest
from quirk_videos import FFMPEG, ffmpeg, source
from video_helpers import WEIGHTS, decoded, planes_of

from hat_plugin.errors import OptionError
from hat_plugin.video import EncoderSettings, VideoJob
from hat_plugin.video.runner import frame_upscaler

pytestmark = pytest.mark.skipif(
    FFMPEG is None, reason="Debian's ffmpeg makes these files: apt-get install ffmpeg (make setup installs it)"
)

FIELDS = ["-flags", "+ilme+ildct", "-top", "1"]


def interlaced_mpeg2(folder: Path) -> Path:
    path = folder / "interlaced.mpg"
    ffmpeg(*source(frames=9, audio=True), "-c:v", "mpeg2video", *FIELDS, "-c:a", "mp2", "-f", "mpeg", str(path))
    return path


def interlaced_h264(folder: Path) -> Path:
    path = folder / "interlaced.mkv"
    ffmpeg(*source(frames=9), "-c:v", "libx264", *FIELDS, "-x264-params", "tff=1", str(path))
    return path


def reference(path: Path, filter_name: str, mode: str) -> list[list[np.ndarray]]:
    """The decoded video through one filter graph, parity from the frames' own flags."""
    pictures = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    graph = av.filter.Graph()
    first = frames[0]
    buffer = graph.add_buffer(
        width=first.width, height=first.height, format=first.format.name, time_base=Fraction(1, 90000)
    )
    node = graph.add(filter_name, f"mode={mode}:parity=auto:deint=all")
    sink = graph.add("buffersink")
    buffer.link_to(node)
    node.link_to(sink)
    graph.configure()

    def drain():
        while True:
            try:
                pictures.append(planes_of(graph.pull()))
            except (av.error.BlockingIOError, av.error.EOFError):
                return

    for number, frame in enumerate(frames):
        assert frame.interlaced_frame
        frame.pts = number * 3600
        graph.push(frame)
        drain()
    graph.push(None)
    drain()
    return pictures


@pytest.mark.parametrize("maker", [interlaced_mpeg2, interlaced_h264])
@pytest.mark.parametrize(("filter_name", "rate"), [("bwdif", "frame"), ("bwdif", "field"), ("yadif", "field")])
def test_interlaced_source_is_deinterlaced_exactly_in_chunks(tmp_path, engine, maker, filter_name, rate):
    path = maker(tmp_path)
    out = tmp_path / "out.mkv"
    chosen = "auto" if filter_name == "bwdif" else filter_name
    job = VideoJob(
        path, out, WEIGHTS, upscaler=engine, encoder=EncoderSettings("ffv1"), chunk_frames=4,
        deinterlace=chosen, deinterlace_rate=rate,
    )  # fmt: skip
    result = job.run()
    assert job.plan is not None and job.plan.info.field_order == "top field first"
    want = reference(path, filter_name, "send_field" if rate == "field" else "send_frame")
    frames = decoded(out)
    assert result.frames == len(frames) == len(want) == 9 * (2 if rate == "field" else 1)
    times = [pts for pts, _ in frames]
    assert all(a < b for a, b in zip(times, times[1:], strict=False))
    if rate == "field":  # a field every half frame: 25 fps becomes 50 fps
        seconds = [frame.time for _, frame in frames]
        assert {round(b - a, 4) for a, b in zip(seconds, seconds[1:], strict=False)} == {0.02}
    upscale = frame_upscaler(engine, job.plan.info, job.plan.fmt)
    for number, ((_, frame), planes) in enumerate(zip(frames, want, strict=True)):
        for expected, got in zip(upscale(planes), planes_of(frame), strict=True):
            np.testing.assert_array_equal(got, expected, err_msg=f"frame {number}")


def test_deinterlace_options_are_checked(tmp_path, engine):
    path = interlaced_h264(tmp_path)
    with pytest.raises(OptionError, match="deinterlace 'qtgmc': choose one of auto, off, bwdif, yadif"):
        VideoJob(path, tmp_path / "o.mkv", WEIGHTS, upscaler=engine, deinterlace="qtgmc").prepare()
    with pytest.raises(OptionError, match="deinterlace_rate 'double'"):
        VideoJob(path, tmp_path / "o.mkv", WEIGHTS, upscaler=engine, deinterlace_rate="double").prepare()


def test_progressive_source_is_not_deinterlaced_by_auto(tmp_path, engine):
    path = tmp_path / "progressive.mkv"
    ffmpeg(*source(frames=4), "-c:v", "libx264", str(path))
    plan = VideoJob(path, tmp_path / "o.mkv", WEIGHTS, upscaler=engine).prepare()
    assert plan.fmt.deinterlace is None and plan.frames == 4


def test_telecined_film_is_detected_and_named(tmp_path, engine, caplog):
    """Film at 23.976 fps put into 29.97 interlaced frames by 3:2 pulldown (FFmpeg's telecine filter)."""
    film = tmp_path / "film.mpg"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=24000/1001", "-frames:v", "40", "-vf", "telecine=pattern=23",
        "-c:v", "mpeg2video", *FIELDS, "-q:v", "2", str(film),
    )  # fmt: skip
    video = tmp_path / "video.mpg"
    ffmpeg(*source(size="96x64", rate=30, frames=40), "-c:v", "mpeg2video", *FIELDS, "-q:v", "2", str(video))
    VideoJob(film, tmp_path / "f.mkv", WEIGHTS, upscaler=engine).prepare()
    [note] = [r.getMessage() for r in caplog.records if "telecined" in r.getMessage()]
    assert "3:2 pulldown" in note and "film.mpg" in note
    caplog.clear()
    VideoJob(video, tmp_path / "v.mkv", WEIGHTS, upscaler=engine).prepare()
    assert not [r for r in caplog.records if "telecined" in r.getMessage()]
