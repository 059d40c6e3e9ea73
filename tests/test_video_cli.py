"""``hat-upscale`` with video inputs: the command in this process for the plain cases, and real subprocesses for
Ctrl-C (SIGINT), a crash (SIGKILL) and a full disk (a file size limit), each resumed or reported as a user would
see it."""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from video_helpers import REPO, WEIGHTS, decoded, make_clip

from hat_plugin.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, main

COMMON = ["--weights", str(WEIGHTS), "--device", "cpu", "--codec", "ffv1"]


def upscale(*args: object) -> int:
    return main([*map(str, args), *COMMON])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


@pytest.mark.slow
def test_one_video_to_a_named_file(tmp_path, capsys):
    clip = make_clip(tmp_path / "in.mkv", frames=5, audio=True)
    out = tmp_path / "done" / "big.mkv"
    assert upscale(clip.path, "-o", out, "--chunk-frames", 2) == EXIT_OK
    assert [pts for pts, _ in decoded(out)] == clip.pts
    err = capsys.readouterr().err
    assert f"wrote {out} (64x48, 5 frames, ffv1)" in err and "1 written" in err and "Traceback" not in err
    assert not (tmp_path / "done" / "big.mkv.hat-work").exists()


@pytest.mark.slow
def test_folder_of_videos_and_images_upscales_both_and_skips_work_folders(tmp_path, capsys):
    folder = tmp_path / "films"
    folder.mkdir()
    make_clip(folder / "a.mkv", frames=3)
    make_clip(folder / "b.mp4", frames=3, codec="libx264")
    Image.new("RGB", (8, 8)).save(folder / "still.png")
    (folder / "notes.txt").write_text("not a picture")
    (folder / "old.mkv.hat-work").mkdir()
    make_clip(folder / "old.mkv.hat-work" / "chunk-000000.mkv", frames=2)
    assert upscale(folder, "-o", tmp_path / "out") == EXIT_OK
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.mkv", "b_x2.mp4", "still_x2.png"]
    err = capsys.readouterr().err
    assert "notes.txt: not an image or video file" in err and "3 written" in err and err.count(" written") == 1
    assert upscale(folder, "-o", tmp_path / "out") == EXIT_OK  # a second run skips existing outputs
    assert "3 skipped" in capsys.readouterr().err


def test_interlaced_video_is_deinterlaced_at_the_rate_asked(tmp_path, capsys):
    source = make_clip(tmp_path / "in.mkv", frames=3, codec="libx264", interlaced=True).path
    assert upscale(source, "-o", tmp_path / "out.mkv", "--deinterlace-rate", "field") == EXIT_OK
    assert "deinterlacing in.mkv: bwdif, field rate, top field first" in capsys.readouterr().err
    assert len(decoded(tmp_path / "out.mkv")) == 6
    assert upscale(source, "-o", tmp_path / "off.mkv", "--deinterlace", "off") == EXIT_OK
    assert "upscaling its frames as they are (deinterlace off)" in capsys.readouterr().err
    assert len(decoded(tmp_path / "off.mkv")) == 3


@pytest.mark.parametrize(("content", "message"), [("text", "not a video file FFmpeg can read")])
def test_bad_video_fails_with_one_line(tmp_path, capsys, content, message):
    source = tmp_path / "bad.mkv"
    source.write_text("hello\n" * 100)
    assert upscale(source, "-o", tmp_path / "out.mkv") == EXIT_FAILED
    err = capsys.readouterr().err
    errors = error_lines(err)
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err
    assert not (tmp_path / "out.mkv").exists() and not list(tmp_path.glob("*.hat-work"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--crf", "70", "--codec", "x264"], "--crf for x264 must be from 0 to 51"),
        (["--format", "png"], "--format and --quality apply to images"),
        (["--pix-fmt", "yuv420p", "--codec", "prores"], "prores cannot write it"),
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, options, message):
    clip = make_clip(tmp_path / "in.mkv", frames=2)
    code = main([str(clip.path), "-o", str(tmp_path / "o.mkv"), "--weights", str(WEIGHTS), *options])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and message in err, err
    assert not (tmp_path / "o.mkv").exists()


@pytest.mark.slow
def test_ray_without_a_cluster_is_one_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    clip = make_clip(tmp_path / "in.mkv", frames=2)
    assert upscale(clip.path, "-o", tmp_path / "o.mkv", "--ray", "auto") == EXIT_FAILED
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "cannot reach a Ray cluster at auto" in errors[0] and "ray start --head" in errors[0]


# ------------------------------------------------------------------------------------------------ subprocesses


def command(source: Path, output: Path, *extra: object) -> list[str]:
    return [sys.executable, "-m", "hat_plugin", str(source), "-o", str(output), *COMMON, *map(str, extra)]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def wait_for_chunk(work: Path, process: subprocess.Popen[str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if list(work.glob("chunk-*.mkv")):
            return
        if process.poll() is not None:
            raise AssertionError(f"the run ended before a chunk was written: {process.communicate()[1]}")
        time.sleep(0.02)
    raise AssertionError("no chunk was written in time")


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_resumes_to_the_same_file(tmp_path, how):
    """Ctrl-C (exit 130, a message saying how to continue) or a crash leaves the finished chunks; the same command
    continues from them and writes the same bytes as a run that was never interrupted."""
    clip = make_clip(tmp_path / "in.mkv", frames=24)
    fresh = tmp_path / "fresh.mkv"
    subprocess.run(command(clip.path, fresh, "--chunk-frames", 2), check=True, env=environment(), capture_output=True)
    out = tmp_path / "out.mkv"
    work = tmp_path / "out.mkv.hat-work"
    process = subprocess.Popen(
        command(clip.path, out, "--chunk-frames", 2), env=environment(), stderr=subprocess.PIPE, text=True
    )
    wait_for_chunk(work, process)
    process.send_signal(how)
    _, err = process.communicate(timeout=120)
    kept = sorted(work.glob("chunk-*.mkv"))
    assert kept and not out.exists()
    if how == signal.SIGINT:
        assert process.returncode == EXIT_INTERRUPTED
        assert "interrupted; the finished chunks are kept: run the same command again" in err
        assert not list(work.glob(".*.tmp"))
    else:
        assert process.returncode == -signal.SIGKILL
    again = subprocess.run(
        command(clip.path, out, "--chunk-frames", 2), env=environment(), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == EXIT_OK, again.stderr
    assert f"resuming: {len(kept)} of 12 chunks are done" in again.stderr
    assert digest(out) == digest(fresh)
    assert not work.exists()


@pytest.mark.slow
def test_full_disk_fails_cleanly_and_keeps_the_chunks(tmp_path):
    """A file size limit (what a full disk looks like to a writer) hit while the output is joined: exit 1 with one
    line naming the output, no output file or temporary file beside it, the chunks kept for the next try."""
    clip = make_clip(tmp_path / "in.mkv", frames=12, width=48, height=32)
    out = tmp_path / "out.mkv"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))  # a chunk (~25 kB) fits, the film (~150 kB) not

    result = subprocess.run(
        command(clip.path, out, "--chunk-frames", 2),
        env=environment(),
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=300,
    )
    assert result.returncode == EXIT_FAILED, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and f"cannot write {out}" in errors[0] and "larger than this file system" in errors[0]
    assert "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.mkv*"))
    assert len(list((tmp_path / "out.mkv.hat-work").glob("chunk-*.mkv"))) == 6
