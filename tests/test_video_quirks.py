"""Video files with the quirks of real ones (``quirk_videos.py``, made by Debian's ffmpeg) and real sample videos
from a Debian package, upscaled end to end: every file gives as many frames as a plain decode (``ffprobe
-count_frames``), output frame ``k`` is the engine applied to the ``k``-th decoded picture (FFV1 output, compared
exactly), timestamps increase, and audio stays in sync with the video."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
import pytest
from quirk_videos import FFMPEG, QUIRKS, avi_packed_bframes, h264_damaged, mkv_truncated, ts_size_change
from video_helpers import decoded, planes_of
from video_helpers import job as video_job

from hat_plugin.errors import DamagedVideoError, VideoError
from hat_plugin.video.index import timecode
from hat_plugin.video.runner import frame_upscaler

pytestmark = pytest.mark.skipif(
    FFMPEG is None or shutil.which("ffprobe") is None,
    reason="Debian's ffmpeg makes these files: apt-get install ffmpeg (make setup installs it)",
)

WARNED = {"mkv_truncated": "the file ends early", "h264_damaged": "damaged video data at"}


job = functools.partial(video_job, chunk_frames=5)  # the quirk files' boundaries fall inside


def plain_count(path: Path) -> int:
    """Frames a plain decode of the first video stream gives (ffprobe decodes them all)."""
    result = subprocess.run(
        ["ffprobe", "-v", "quiet", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(result.stdout.strip().split(",")[0])


def plain_frames(path: Path, keep: range) -> tuple[int, dict[int, list[np.ndarray]]]:
    """How many pictures a decode gives, decoding on past a packet that fails (as ffmpeg does), and the planes of
    those numbered in ``keep``."""
    pictures, count = {}, 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            for frame in frames:
                if count in keep:
                    pictures[count] = planes_of(frame)
                count += 1
    return count, pictures


def span(path: Path, kind: str) -> tuple[float, float] | None:
    """First and end time (seconds) of the first ``kind`` stream's packets, or None when there is none. The end
    is the last packet's time plus the gap before it (Matroska stores no duration for most packets)."""
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == kind]
        if not streams:
            return None
        stream = streams[0]
        tb = Fraction(stream.time_base.numerator, stream.time_base.denominator)
        times = sorted(p.pts for p in container.demux(stream) if p.size and p.pts is not None)
    return float(times[0] * tb), float((2 * times[-1] - times[-2]) * tb)


def check_upscaled(source: Path, out: Path, engine, start: int = 0, stop: int | None = None) -> None:
    """The output holds the engine's result for every decoded picture of ``[start, stop)``, in order, with
    increasing timestamps, and keeps the audio where it was beside the video."""
    plan = job(source, out.with_name("plan.mkv"), engine).prepare()
    total = len(plan.index)
    stop = total if stop is None else stop
    count, pictures = plain_frames(source, range(start, stop))
    assert total == count == plain_count(source)
    frames = decoded(out)
    assert len(frames) == stop - start
    times = [pts for pts, _ in frames]
    assert all(a < b for a, b in zip(times, times[1:], strict=False))
    upscale = frame_upscaler(engine, plan.info, plan.fmt)
    damaged = set(plan.index.damaged)
    for number, (_, frame) in zip(range(start, stop), frames, strict=True):
        if number in damaged:
            continue  # a concealed picture may differ with the decoder's threads; the count is checked above
        for want, got in zip(upscale(pictures[number]), planes_of(frame), strict=True):
            np.testing.assert_array_equal(got, want, err_msg=f"frame {number}")
    sound = span(source, "audio")
    if sound is None or start or stop != total or plan.index.missing_seconds():
        return  # a truncated file's audio runs on past its last decodable picture: copied as far as it goes
    tolerance = plan.index.decoded_seconds() / len(plan.index) + 1e-6
    video = (plan.index.seconds(0), plan.index.seconds(len(plan.index)))
    copied, written = span(out, "audio"), span(out, "video")
    assert copied is not None and written is not None
    assert abs((copied[0] - written[0]) - (sound[0] - video[0])) <= tolerance  # the audio starts where it did
    assert abs((written[1] - written[0]) - (video[1] - video[0])) <= tolerance  # the video lasts as long
    assert abs((copied[1] - copied[0]) - (sound[1] - sound[0])) <= tolerance  # and so does the audio


@pytest.mark.parametrize("name", sorted(QUIRKS))
def test_quirk_file_is_upscaled_frame_exact(tmp_path, engine, name, caplog):
    source = QUIRKS[name](tmp_path)
    out = tmp_path / "out.mkv"
    result = job(source, out, engine).run()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert result.frames == plain_count(source)
    check_upscaled(source, out, engine)
    if name in WARNED:
        [warning] = [w for w in warnings if WARNED[name] in w]
        assert "\n" not in warning and source.name in warning


def test_truncated_file_warning_names_expected_and_got_frames(tmp_path, engine, caplog):
    source = mkv_truncated(tmp_path)
    got = plain_count(source)
    job(source, tmp_path / "out.mkv", engine).run()
    [warning] = [r.getMessage() for r in caplog.records if "ends early" in r.getMessage()]
    assert f"{got} frames (" in warning and "about 40 frames" in warning and "declares 0:01.600" in warning


def test_damaged_frames_are_listed_and_on_damage_stop_refuses(tmp_path, engine, caplog):
    source = h264_damaged(tmp_path)
    plan = job(source, tmp_path / "out.mkv", engine).prepare()
    caplog.clear()
    job(source, tmp_path / "out.mkv", engine).run()
    [warning] = [r.getMessage() for r in caplog.records if "damaged video data" in r.getMessage()]
    # packet 12 fails to decode: frame 12 is the first picture after it (the second scrambled packet may be
    # concealed without a word from the decoder, so only the first is certain)
    when = timecode(plan.index.seconds(12))
    assert plan.index.damaged[0] == 12 and when in ("0:00.480", "0:00.520")
    assert re.search(rf"frames 12\b.* at {re.escape(when)}", warning) and "concealed pictures are used" in warning
    with pytest.raises(DamagedVideoError, match=rf"damaged at frame 12 \({re.escape(when)}\)") as caught:
        job(source, tmp_path / "stopped.mkv", engine, on_damage="stop").run()
    assert caught.value.frame == 12 and "\n" not in str(caught.value)
    assert not (tmp_path / "stopped.mkv").exists()
    ended = job(source, tmp_path / "head.mkv", engine, on_damage="stop", end=12).run()
    assert ended.frames == 12


def test_truncated_file_with_on_damage_stop_is_refused(tmp_path, engine):
    source = mkv_truncated(tmp_path)
    with pytest.raises(DamagedVideoError, match="damaged at frame|ends early") as caught:
        job(source, tmp_path / "out.mkv", engine, on_damage="stop").run()
    assert "\n" not in str(caught.value) and not (tmp_path / "out.mkv").exists()


def test_picture_size_change_is_refused_with_one_line(tmp_path, engine):
    source = ts_size_change(tmp_path)
    with av.open(str(source)) as container:
        sizes = [(frame.width, frame.height) for frame in container.decode(video=0)]
    changed = sizes.index((64, 48))
    assert sizes[:changed] == [(48, 32)] * changed
    with pytest.raises(VideoError, match=rf"picture size changes at frame {changed} \(48x32 to 64x48\)") as caught:
        job(source, tmp_path / "out.mkv", engine).run()
    assert "\n" not in str(caught.value) and not (tmp_path / "out.mkv").exists()


def test_a_seek_into_the_middle_lands_on_the_verified_frame(tmp_path, engine):
    """A range in the middle of a packed-B-frame AVI, a decode-order MP4 and an open-GOP stream: the decoder
    seeks, finds its place by the pictures' hashes, and the output is frames ``[start, end)`` exactly."""
    for name in ("avi_packed_bframes", "mp4_pts_equal_dts", "mkv_open_gop", "raw_m2v", "mkv_repeated_pictures"):
        folder = tmp_path / name
        folder.mkdir()
        source = QUIRKS[name](folder)
        out = folder / "out.mkv"
        job(source, out, engine, start=7, end=10, chunk_frames=1).run()
        check_upscaled(source, out, engine, 7, 10)


# ------------------------------------------------------------------------------------------------ real files

_REAL = ("Megamind.avi", "Megamind_bugy.avi", "tree.avi", "vtest.avi")


@pytest.fixture(scope="session")
def opencv_samples(tmp_path_factory) -> Path:
    """The sample videos of Debian's opencv-doc package (OpenCV's samples/data; Apache-2.0/BSD, see the
    package's copyright file), downloaded and unpacked once per session."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("the real sample videos come from Debian's opencv-doc package: needs apt-get and dpkg-deb")
    folder = tmp_path_factory.mktemp("opencv-doc")
    fetched = subprocess.run(["apt-get", "download", "opencv-doc"], cwd=folder, capture_output=True, text=True)
    debs = list(folder.glob("opencv-doc_*.deb"))
    if fetched.returncode != 0 or not debs:
        pytest.skip(f"opencv-doc could not be downloaded: {fetched.stderr.strip().splitlines()[-1:]}")
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(folder / "x")], check=True)
    return folder / "x" / "usr" / "share" / "doc" / "opencv-doc" / "examples" / "data"


@pytest.mark.slow
@pytest.mark.parametrize("name", _REAL)
def test_real_sample_video_is_indexed_and_upscaled_frame_exact(tmp_path, engine, opencv_samples, name):
    """XviD AVIs with packed B-frames (one with AC-3), a Cinepak AVI with null frames and an MS-MPEG-4 AVI:
    the whole file is indexed to the plain decode's frame count; a few frames from the middle are upscaled."""
    source = opencv_samples / name
    middle = plain_count(source) // 2
    out = tmp_path / "out.mkv"
    result = job(source, out, engine, start=middle, end=middle + 3).run()
    assert result.frames == 3
    check_upscaled(source, out, engine, middle, middle + 3)


# ------------------------------------------------------------------------------------------------ front ends


@pytest.mark.parametrize("name", ["avi_packed_bframes", "mp4_pts_equal_dts", "raw_h264"])
def test_frame_reader_gives_the_same_picture_in_any_order(tmp_path, name):
    """The app's compare view and thumbnails: frames by number, in any order, are the decoded pictures."""
    from hat_plugin.video import FrameReader

    source = QUIRKS[name](tmp_path)
    with FrameReader(source) as reader:
        assert reader.frames == plain_count(source)
        forward = [reader.read(number) for number in range(reader.frames)]
        order = [7, 2, 11, 0, 5, 5, 9]
        shuffled = [reader.read(number) for number in order]
    assert len({picture.tobytes() for picture in forward}) == len(forward)  # every frame differs
    for number, picture in zip(order, shuffled, strict=True):
        np.testing.assert_array_equal(picture, forward[number], err_msg=f"frame {number}")


def test_app_thumbnail_of_a_packed_bframe_avi(tmp_path):
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6.QtCore import QSize
    from PyQt6.QtGui import QGuiApplication

    from gui.thumbnails import make_thumbnail

    _app = QGuiApplication.instance() or QGuiApplication([])
    image = make_thumbnail(avi_packed_bframes(tmp_path), QSize(96, 96))
    assert not image.isNull() and image.width() == 96


@pytest.mark.slow
@pytest.mark.parametrize("name", ["avi_packed_bframes", "mp4_pts_equal_dts", "ts_discontinuity"])
def test_resume_after_sigkill_gives_the_same_bytes(tmp_path, name):
    """A run killed after its first chunk, run again, writes the bytes of a run never interrupted: the resumed
    decoder seeks into a file whose timestamps are out of order and finds its frame by the pictures' hashes."""
    import signal

    from test_video_cli import command, digest, environment, wait_for_chunk

    source = QUIRKS[name](tmp_path)
    fresh = tmp_path / "fresh.mkv"
    subprocess.run(command(source, fresh, "--chunk-frames", 2), check=True, env=environment(), capture_output=True)
    out = tmp_path / "out.mkv"
    work = tmp_path / "out.mkv.hat-work"
    process = subprocess.Popen(command(source, out, "--chunk-frames", 2), env=environment(), stderr=subprocess.PIPE)
    wait_for_chunk(work, process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL and not out.exists()
    again = subprocess.run(
        command(source, out, "--chunk-frames", 2), env=environment(), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert "resuming:" in again.stderr
    assert digest(out) == digest(fresh)
