"""Video jobs end to end, in this process: real clips made with PyAV, the real engine (golden tiny x2 on the CPU),
decoded back and compared frame by frame, stream by stream and timestamp by timestamp."""

from __future__ import annotations

import fractions
import hashlib
import threading

import av
import numpy as np
import pytest
import torch
from video_helpers import WEIGHTS, damage, decoded, frame_rgb, job, make_clip, planes_of

from hat_plugin.errors import Cancelled, DamagedVideoError, OptionError, OutputError, VideoError, WorkFolderError
from hat_plugin.pixels import from_unit_float, to_unit_float
from hat_plugin.video import EncoderSettings, VideoJob, frame_count, read_frame
from hat_plugin.video.runner import frame_upscaler
from hat_plugin.video.work import WorkFolder


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def streams_of(path):
    with av.open(str(path)) as container:
        return [
            (s.type, s.codec_context.name if s.codec_context else None, dict(s.metadata)) for s in container.streams
        ]


def packets(path, kind):
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == kind)
        return [(p.pts, bytes(p)) for p in container.demux(stream) if p.size]


# ------------------------------------------------------------------------------------------------ frame-exact


@pytest.mark.slow
def test_vfr_10bit_bt709_with_all_streams_is_frame_exact(tmp_path, engine):
    """10-bit 4:2:0 BT.709, variable frame rate, chunks of 4 over 11 frames (boundaries inside the clip), with
    audio, subtitles, an attachment, chapters and tags: every output frame equals the engine applied to the
    source frame of the same number, every timestamp is the source's, every other stream is copied bit for bit."""
    clip = make_clip(
        tmp_path / "in.mkv",
        frames=11,
        pix_fmt="yuv420p10le",
        vfr=True,
        audio=True,
        subtitles=True,
        attachment=True,
        chapters=True,
    )
    out = tmp_path / "out.mkv"
    result = job(clip.path, out, engine).run()
    assert (result.frames, result.chunks, result.reused, result.work_folder) == (11, 3, 0, None)
    assert not (tmp_path / "out.mkv.hat-work").exists()

    plan_job = job(clip.path, tmp_path / "ref.mkv", engine)
    plan = plan_job.prepare()
    reference = frame_upscaler(engine, plan.info, plan.fmt)
    frames = decoded(out)
    assert [pts for pts, _ in frames] == clip.pts
    source = decoded(clip.path)
    for number, ((_, got), (_, original)) in enumerate(zip(frames, source, strict=True)):
        assert got.format.name == "yuv420p10le" and (got.width, got.height) == (64, 48)
        expected = reference(planes_of(original))
        for plane, want in zip(planes_of(got), expected, strict=True):
            assert np.array_equal(plane, want), f"frame {number} differs"

    with av.open(str(out)) as container:
        video = container.streams.video[0].codec_context
        assert (video.colorspace, video.color_range, video.chroma_sample_location) == (1, 1, 1)
        assert container.metadata["title"] == "hat test clip"
        assert [c["metadata"]["title"] for c in container.chapters()] == ["Opening", "Ending"]
        attachment = container.streams[3]
        assert attachment.type == "attachment" and attachment.metadata["filename"] == "notes.txt"
    kinds = streams_of(out)
    assert [k[:2] for k in kinds] == [("video", "ffv1"), ("audio", "flac"), ("subtitle", "srt"), ("attachment", None)]
    assert kinds[0][2]["title"] == "picture" and kinds[1][2]["language"] == "fra" and kinds[2][2]["language"] == "eng"
    assert packets(out, "audio") == packets(clip.path, "audio")
    assert packets(out, "subtitle") == packets(clip.path, "subtitle")


@pytest.mark.slow
def test_rgb_clip_matches_the_public_engine_exactly(tmp_path, engine):
    """An RGB (16-bit gbrp) clip needs no matrix: output frame k must equal the engine's ``upscale_tensor`` of
    source frame k taken as a plain image (``pixels.to_unit_float`` in, ``from_unit_float`` out), an answer
    computed without any of the video code."""
    clip = make_clip(tmp_path / "rgb.mkv", frames=6, pix_fmt="gbrp16le", colorspace=0, color_range=2)
    out = tmp_path / "rgb_x2.mkv"
    job(clip.path, out, engine, chunk_frames=5).run()
    for number, (_, frame) in enumerate(decoded(out)):
        g, b, r = planes_of(frame)
        green, blue, red = clip.frames[number]
        image = torch.from_numpy(to_unit_float(np.stack([red, green, blue]))).unsqueeze(0)
        expected = from_unit_float(engine.upscale_tensor(image)[0].numpy(), np.uint16)
        assert np.array_equal(np.stack([r, g, b]), expected), f"frame {number}"


@pytest.mark.slow
def test_x264_mp4_cfr_bt601_keeps_timestamps_audio_and_order(tmp_path, engine):
    """A lossy chain (x264 8-bit BT.601 in MP4, source time base 1/12800): same frame count and timestamps as
    the source, the audio copied untouched, and each output frame closest to the reference of its own number."""
    clip = make_clip(
        tmp_path / "in.mp4",
        frames=10,
        codec="libx264",
        pix_fmt="yuv420p",
        matrix="ITU601",
        colorspace=6,
        time_base=fractions.Fraction(1, 12800),
        audio=True,
        options={"crf": "10"},
        rotation=90,
    )
    out = tmp_path / "out.mp4"
    job(clip.path, out, engine, encoder=EncoderSettings("x264", crf=12, preset="fast")).run()
    frames = decoded(out)
    assert [pts for pts, _ in frames] == [pts for pts, _ in decoded(clip.path)]
    with av.open(str(out)) as container:
        assert container.streams.video[0].time_base == fractions.Fraction(1, 12800)
        assert container.streams.video[0].codec_context.colorspace == 6
        assert next(container.decode(video=0)).rotation == 90  # the phone's display rotation is kept
    assert packets(out, "audio") == packets(clip.path, "audio")
    plan = job(clip.path, tmp_path / "x.mp4", engine).prepare()
    reference = frame_upscaler(engine, plan.info, plan.fmt)
    expected = [reference(planes_of(frame))[0].astype(float) for _, frame in decoded(clip.path)]
    for number, (_, frame) in enumerate(frames):
        errors = [np.abs(planes_of(frame)[0] - want).mean() for want in expected]
        assert int(np.argmin(errors)) == number and errors[number] < 3


@pytest.mark.slow
def test_frame_range_trims_video_audio_and_chapters(tmp_path, engine):
    clip = make_clip(tmp_path / "in.mkv", frames=12, audio=True, chapters=True)
    out = tmp_path / "part.mkv"
    result = job(clip.path, out, engine, start=3, end="0.36").run()  # 0.36 s is frame 9 at 25 fps
    assert result.frames == 6
    frames = decoded(out)
    assert [pts for pts, _ in frames] == [p - clip.pts[3] for p in clip.pts[3:9]]
    plan = job(clip.path, tmp_path / "ref.mkv", engine).prepare()
    reference = frame_upscaler(engine, plan.info, plan.fmt)
    source = decoded(clip.path)
    for (_, got), (_, original) in zip(frames, source[3:9], strict=True):
        assert np.array_equal(planes_of(got)[0], reference(planes_of(original))[0])
    audio = packets(out, "audio")
    assert audio and audio[0][0] >= 0 and audio[-1][0] < 360 - 120
    with av.open(str(out)) as container:
        assert container.chapters()[0]["start"] == 0


# ------------------------------------------------------------------------------------------------ chunks, resume


# A resumed file is the fresh run's byte for byte, lossless or not, in this long-running process too (x264's AVX-512
# code once made that fail here about one encode in four: video/codecs.py keeps x264 on its AVX2 code).
@pytest.mark.slow
@pytest.mark.parametrize("codec", ["ffv1", "x264"])
def test_cancel_keeps_finished_chunks_and_resume_gives_the_same_file(tmp_path, engine, codec):
    clip = make_clip(tmp_path / "in.mkv", frames=10)
    fresh = tmp_path / "fresh.mkv"
    job(clip.path, fresh, engine, encoder=EncoderSettings(codec)).run()

    out = tmp_path / "out.mkv"
    stop = threading.Event()
    seen = []

    def progress(done, total):
        seen.append((done, total))
        if done >= 5:
            stop.set()

    with pytest.raises(Cancelled, match="chunks are done and kept"):
        job(clip.path, out, engine, encoder=EncoderSettings(codec)).run(progress, stop)
    assert not out.exists()
    work = tmp_path / "out.mkv.hat-work"
    assert sorted(p.name for p in work.glob("chunk-*.mkv")) == ["chunk-000000.mkv"]
    assert not list(work.glob(".*.tmp"))
    assert seen[0] == (0, 10)

    again = []
    resumed = job(clip.path, out, engine, encoder=EncoderSettings(codec))
    result = resumed.run(lambda done, total: again.append(done))
    assert result.reused == 1 and again[0] == 4 and again[-1] == 10
    assert digest(out) == digest(fresh)
    assert not work.exists()


def test_other_settings_do_not_mix_into_a_work_folder(tmp_path, engine):
    clip = make_clip(tmp_path / "in.mkv", frames=6)
    out = tmp_path / "out.mkv"
    stop = threading.Event()
    with pytest.raises(Cancelled):
        job(clip.path, out, engine).run(lambda done, total: stop.set() if done >= 4 else None, stop)
    with pytest.raises(WorkFolderError, match="different encoder"):
        job(clip.path, out, engine, encoder=EncoderSettings("x264")).prepare()
    assert (tmp_path / "out.mkv.hat-work" / "chunk-000000.mkv").exists()


def test_a_damaged_kept_chunk_is_done_again(tmp_path, engine, caplog):
    clip = make_clip(tmp_path / "in.mkv", frames=8)
    out = tmp_path / "out.mkv"
    first = job(clip.path, out, engine, keep_work=True).run()
    reference = digest(out)
    out.unlink()
    segment = WorkFolder.for_output(out).path / "chunk-000001.mkv"
    segment.write_bytes(segment.read_bytes()[: segment.stat().st_size // 2])
    again = job(clip.path, out, engine, keep_work=True).run()
    assert (first.reused, again.reused) == (0, 1)
    assert "chunk 1 is done again" in caplog.text
    assert digest(out) == reference


def test_ending_at_a_frame_reuses_the_chunks_before_it(tmp_path, engine):
    """The end is not part of a job's identity: after damage at frame N, ending at N reuses what was done."""
    clip = make_clip(tmp_path / "in.mkv", frames=10)
    out = tmp_path / "out.mkv"
    stop = threading.Event()
    with pytest.raises(Cancelled):
        job(clip.path, out, engine).run(lambda done, total: stop.set() if done >= 8 else None, stop)
    result = job(clip.path, out, engine, end=9).run()
    assert result.reused == 2 and result.frames == 9


# ------------------------------------------------------------------------------------------------ bad input


def test_damaged_data_is_concealed_and_named_or_stops_with_on_damage_stop(tmp_path, engine, caplog):
    """As a player does: the decoder's concealed pictures are used and the damaged frames named in one warning;
    ``on_damage="stop"`` refuses, naming the first damaged frame, and the frames before it can be done alone."""
    clip = make_clip(tmp_path / "in.mkv", frames=12, options={"slicecrc": "1", "level": "3", "g": "1"})
    damage(clip.path, fraction=0.7)
    result = job(clip.path, tmp_path / "out.mkv", engine).run()
    assert result.frames == 12 and len(decoded(tmp_path / "out.mkv")) == 12
    [warning] = [r.getMessage() for r in caplog.records if "damaged video data" in r.getMessage()]
    assert "concealed pictures are used" in warning and "\n" not in warning
    out = tmp_path / "stopped.mkv"
    with pytest.raises(DamagedVideoError) as caught:
        job(clip.path, out, engine, on_damage="stop").run()
    frame = caught.value.frame
    assert frame is not None and 4 <= frame < 12 and f"frames {frame}" in warning
    assert f"damaged at frame {frame}" in str(caught.value) and "\n" not in str(caught.value)
    assert not out.exists()
    assert job(clip.path, out, engine, on_damage="stop", end=frame).run().frames == frame


@pytest.mark.parametrize(
    ("maker", "message"),
    [
        (lambda p: p.write_text("not a video at all\n" * 40), "not a video file"),
        (lambda p: p.write_bytes(b""), "not a video file"),
    ],
)
def test_unusable_sources_are_refused_with_one_line(tmp_path, engine, maker, message):
    source = tmp_path / "in.mkv"
    maker(source)
    with pytest.raises(VideoError, match=message) as caught:
        job(source, tmp_path / "out.mkv", engine).run()
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out.mkv").exists() and not (tmp_path / "out.mkv.hat-work").exists()


def test_audio_only_file_has_no_video_stream(tmp_path, engine):
    path = tmp_path / "sound.mka"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoError, match="no video stream .*audio only"):
        job(path, tmp_path / "out.mkv", engine).prepare()


def test_unsupported_container_and_codec_combinations_fail_before_any_work(tmp_path, engine):
    clip = make_clip(tmp_path / "in.mkv", frames=4, subtitles=True)
    with pytest.raises(VideoError, match="cannot write .avi"):
        job(clip.path, tmp_path / "out.avi", engine).prepare()
    with pytest.raises(VideoError, match="subtitle stream #1 .*write .mkv"):
        job(clip.path, tmp_path / "out.mp4", engine, encoder=EncoderSettings("x264")).prepare()
    with pytest.raises(VideoError, match="webm files cannot hold H.264"):
        job(clip.path, tmp_path / "out.webm", engine, encoder=EncoderSettings("x264")).prepare()
    assert not list(tmp_path.glob("out.*"))


def test_existing_output_and_input_as_output_are_refused(tmp_path, engine):
    clip = make_clip(tmp_path / "in.mkv", frames=4)
    (tmp_path / "taken.mkv").write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        job(clip.path, tmp_path / "taken.mkv", engine).run()
    assert (tmp_path / "taken.mkv").read_bytes() == b"keep me"
    with pytest.raises(OutputError, match="input itself"):
        job(clip.path, clip.path, engine, overwrite=True).run()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (EncoderSettings("x264", crf=60), "from 0 to 51"),
        (EncoderSettings("ffv1", crf=10), "lossless"),
        (EncoderSettings("x265", preset="ludicrous"), "must be one of"),
        (EncoderSettings("x264", crf=18, bitrate="5M"), "not both"),
        (EncoderSettings("vp8"), "unknown codec"),
        (EncoderSettings("x264", bitrate="lots"), "bits per second"),
    ],
)
def test_encoder_settings_are_checked(settings, message):
    with pytest.raises(OptionError, match=message):
        settings.checked()


def test_frame_range_errors(tmp_path, engine):
    clip = make_clip(tmp_path / "in.mkv", frames=4)
    with pytest.raises(OptionError, match="has 4 frames"):
        job(clip.path, tmp_path / "a.mkv", engine, start=9).prepare()
    with pytest.raises(OptionError, match="range is empty"):
        job(clip.path, tmp_path / "b.mkv", engine, start=3, end=2).prepare()
    with pytest.raises(OptionError, match="frame number or a time"):
        job(clip.path, tmp_path / "c.mkv", engine, start="soon").prepare()


# ------------------------------------------------------------------------------------------------ codecs


@pytest.mark.slow
@pytest.mark.parametrize(
    ("codec", "source_fmt", "expected_fmt"),
    [
        ("x265", "yuv420p10le", "yuv420p10le"),
        ("av1", "yuv420p10le", "yuv420p10le"),
        ("prores", "yuv420p", "yuv422p10le"),
        ("x264", "yuv444p", "yuv444p"),
    ],
)
def test_each_codec_writes_a_decodable_file_with_the_expected_depth(tmp_path, engine, codec, source_fmt, expected_fmt):
    clip = make_clip(tmp_path / "in.mkv", frames=5, pix_fmt=source_fmt)
    out = tmp_path / ("out.mov" if codec == "prores" else "out.mkv")
    job(clip.path, out, engine, encoder=EncoderSettings(codec), chunk_frames=3).run()
    frames = decoded(out)
    assert [frame.pts * frame.time_base for _, frame in frames] == [pts * clip.time_base for pts in clip.pts]
    assert {frame.format.name for _, frame in frames} == {expected_fmt}
    assert {(frame.width, frame.height) for _, frame in frames} == {(64, 48)}


@pytest.mark.slow
@pytest.mark.parametrize("frames", [4, 5])
def test_x265_short_last_chunk_is_muxed(tmp_path, engine, frames):
    """A last chunk of 1 or 2 frames: x265 before its fix #936 gives such short sessions a garbage dts, which the
    muxer refuses ("pts < dts") or not, depending on the heap; several runs, every one must give all frames."""
    clip = make_clip(tmp_path / "in.mkv", frames=frames, pix_fmt="yuv420p")
    for attempt in range(3):
        out = tmp_path / f"out{attempt}.mkv"
        job(clip.path, out, engine, encoder=EncoderSettings("x265"), chunk_frames=3).run()
        assert [frame.pts * frame.time_base for _, frame in decoded(out)] == [pts * clip.time_base for pts in clip.pts]


def test_read_frame_gives_the_frame_of_that_number_as_rgb(tmp_path):
    """The compare view's helper: frame k of a file as RGB, matching what was drawn into frame k."""
    clip = make_clip(tmp_path / "in.mkv", frames=6, pix_fmt="yuv444p10le", vfr=True)
    assert frame_count(clip.path) == 6
    for number in (0, 4):
        picture = read_frame(clip.path, number)
        assert picture.shape == (24, 32, 3) and picture.dtype == np.uint16
        drawn = frame_rgb(number, 32, 24).astype(float) * 257
        assert np.abs(picture - drawn).mean() < 0.01 * 65535
        others = [np.abs(picture - frame_rgb(n, 32, 24).astype(float) * 257).mean() for n in range(6)]
        assert int(np.argmin(others)) == number
    with pytest.raises(OptionError, match="has 6 frames"):
        read_frame(clip.path, 6)


def test_an_odd_upscaled_size_with_subsampled_chroma_is_refused_before_work(tmp_path, engine):
    x3 = WEIGHTS.parent.parent / "tiny-x3-w8" / "weights.safetensors"
    clip = make_clip(tmp_path / "odd.mkv", frames=2, width=33, height=21, pix_fmt="yuv444p")
    with pytest.raises(VideoError, match="99x63 is odd.*set pix_fmt to yuv444p"):
        VideoJob(clip.path, tmp_path / "o.mkv", x3, encoder=EncoderSettings("x264", pix_fmt="yuv420p")).prepare()
    assert not (tmp_path / "o.mkv.hat-work").exists()
