"""What front ends use to show and name videos: ``FrameReader`` (frames by number, in any order, from one open
file) and ``output_extension`` (the container rule the CLI and the app share)."""

from __future__ import annotations

import numpy as np
import pytest
from video_helpers import frame_rgb, make_clip

from hat_plugin.errors import OptionError, VideoError
from hat_plugin.video import FrameReader, output_extension


def nearest(picture: np.ndarray, frames: int, width: int = 32, height: int = 24) -> int:
    """The number of the drawn frame that ``picture`` is closest to."""
    distances = [np.abs(picture.astype(float) - frame_rgb(n, width, height)).mean() for n in range(frames)]
    return int(np.argmin(distances))


def test_frames_in_any_order_and_again_are_the_frames_of_those_numbers(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=9, vfr=True)
    with FrameReader(clip.path) as reader:
        assert reader.frames == 9 and (reader.info.width, reader.info.height) == (32, 24)
        order = [0, 0, 1, 2, 7, 3, 3, 8, 4]
        pictures = [reader.read(number) for number in order]
    for number, picture in zip(order, pictures, strict=True):
        assert picture.shape == (24, 32, 3) and picture.dtype == np.uint8
        assert nearest(picture, 9) == number
        assert np.abs(picture.astype(float) - frame_rgb(number, 32, 24)).mean() < 8  # 4:2:0 chroma


def test_missing_frames_and_non_videos_are_refused_in_one_line(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=3)
    with FrameReader(clip.path) as reader:
        for number in (-1, 3):
            with pytest.raises(OptionError, match="has 3 frames"):
                reader.read(number)
    with pytest.raises(ValueError, match="closed"):
        reader.read(0)
    junk = tmp_path / "junk.mp4"
    junk.write_text("no video here\n" * 20)
    with pytest.raises(VideoError, match="not a video file") as caught:
        FrameReader(junk)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("source", "codec", "expected"),
    [
        ("film.mkv", "x264", ".mkv"),
        ("film.MP4", "x265", ".mp4"),
        ("clip.mov", "prores", ".mov"),
        ("clip.webm", "av1", ".webm"),
        ("clip.webm", "x264", ".mkv"),  # WebM holds AV1 only here
        ("old.avi", "x264", ".mkv"),  # not writable: Matroska
        ("raw.y4m", "ffv1", ".mkv"),
    ],
)
def test_output_container_follows_the_input_where_it_can(source, codec, expected):
    assert output_extension(source, codec) == expected
