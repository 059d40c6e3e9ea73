"""Hostile and careless use of the command line: pipes and devices among the inputs, names of 250-300 characters,
empty and odd option values, a decompression bomb in a batch, an output that appears between planning and writing,
a failed write in new nested folders, weights full of NaN, Ctrl-C during shutdown, stderr closed or broken, an ASCII
terminal. Each bad input gets one clear line, the batch goes on, the exit code says so, nothing half-written.

Runs that could exhaust memory (the bomb) or that need a real process (signals, closed streams) go through
``python -m hat_plugin`` in a subprocess; the rest call ``hat_plugin.cli.main`` in-process.
"""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile_files import SMALL, png_chunk, png_file, run_limited, tiff_file
from PIL import Image as PILImage
from safetensors.torch import load_file, save_file

from hat_plugin import files
from hat_plugin.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, main
from hat_plugin.errors import OutputError

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "tests" / "data" / "golden" / "tiny-x2-w8" / "weights.safetensors"


def upscale(*args: object) -> int:
    return main([*map(str, args), "--weights", str(WEIGHTS), "--device", "cpu"])


def picture(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(SMALL).save(path)
    return path


def outputs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


def _cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "hat_plugin", *map(str, args), "--weights", str(WEIGHTS), "--device", "cpu"]


# ------------------------------------------------------------------------------------ pipes and devices


@pytest.mark.slow
def test_folder_with_a_pipe_and_a_long_name_goes_on(tmp_path, capsys):
    folder = tmp_path / "in"
    picture(folder / "good.png")
    picture(folder / ("a" * 250 + ".png"))  # its output name (plus _x2) would be over 255 bytes
    os.mkfifo(folder / "x.png")  # reading it would block forever
    assert upscale(folder, "-o", tmp_path / "out") == EXIT_FAILED
    err = capsys.readouterr().err
    assert outputs(tmp_path / "out") == ["good_x2.png"]
    assert "x.png: not a regular file" in err
    assert "more than file systems allow (255)" in err
    assert "1 written, 1 failed" in err and "Traceback" not in err


def test_pipe_device_and_too_long_names_given_explicitly(tmp_path, capsys):
    fifo = tmp_path / "named.png"
    os.mkfifo(fifo)
    long_name = tmp_path / ("i" * 300 + ".png")
    good = picture(tmp_path / "good.png")
    assert upscale(fifo, "/dev/zero", long_name, good, "-o", tmp_path / "out") == EXIT_FAILED
    err = capsys.readouterr().err
    assert f"{fifo}: not a regular file" in err and "/dev/zero: not a regular file" in err
    assert "the name is too long for this file system" in err
    assert "no such file" not in err and "Traceback" not in err
    assert "1 written, 3 failed" in err
    assert outputs(tmp_path / "out") == ["good_x2.png"]


# ------------------------------------------------------------------------------------------- long names


def test_long_suffix_fails_each_input_with_one_line(tmp_path, capsys):
    first, second = picture(tmp_path / "a.png"), picture(tmp_path / "b.png")
    assert upscale(first, second, "--suffix", "s" * 300) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("more than file systems allow (255)") == 2
    assert "0 written, 2 failed" in err and "Traceback" not in err


@pytest.mark.parametrize("target", ["folder", "file"])
def test_long_output_name_fails_per_input(tmp_path, capsys, target):
    source = picture(tmp_path / "a.png")
    output = tmp_path / ("o" * 300 + ("/" if target == "folder" else ".png"))
    assert upscale(source, "-o", str(output)) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "the file name is too long for this file system" in err
    assert "0 written, 1 failed" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------ usage errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", ""], "-o is empty"),
        (["-o", "   "], "-o is empty"),
        (["-o", "-"], "-o - (standard output) is not supported"),
        (["--max-pixels", "lots"], "not a pixel count"),
        (["--max-pixels", "-5"], "must be 0 (no limit) or a whole number of pixels"),
        (["--max-pixels", "nan"], "must be 0 (no limit) or a whole number of pixels"),
        (["--max-pixels", "0.5"], "must be 0 (no limit) or a whole number of pixels"),
    ],
)
def test_odd_option_values_are_usage_errors(tmp_path, capsys, args, message):
    source = picture(tmp_path / "a.png")
    assert upscale(source, *args) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert outputs(tmp_path) == ["a.png"]


@pytest.mark.parametrize("flag", ["--model", "--weights"])
def test_empty_model_is_a_usage_error(tmp_path, capsys, flag):
    source = picture(tmp_path / "a.png")
    assert main([str(source), flag, "", "--device", "cpu"]) == EXIT_USAGE
    assert f"{flag} is empty" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- --max-pixels


@pytest.mark.slow
def test_max_pixels_refuses_big_inputs_and_the_batch_goes_on(tmp_path, capsys):
    small = picture(tmp_path / "small.png")
    big = tmp_path / "big.png"
    PILImage.fromarray(np.zeros((40, 40, 3), np.uint8)).save(big)
    assert upscale(small, big, "--max-pixels", "1K") == EXIT_FAILED  # 8x8 = 64 fits, 40x40 = 1600 does not
    err = capsys.readouterr().err
    assert "big.png: the image is 40x40 = 1,600 pixels, more than the limit of 1,000" in err
    assert "1 written, 1 failed" in err
    assert upscale(big, "--max-pixels", "0", "--overwrite") == EXIT_OK  # 0: no limit


@pytest.mark.slow
def test_bomb_in_a_batch_under_a_memory_cap(tmp_path):
    """The report's 778 KB-class bomb (a 16-bit 20000x20000 grey PNG, here a few bytes) made the CLI use 22 GB and
    be killed; under a 6 GB address-space cap it must be one error line, and the good file still written."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_file(20000, 20000, depth=16))
    good = picture(tmp_path / "good.png")
    code = (
        "import sys; from hat_plugin.cli import main; "
        f"sys.exit(main({[str(bomb), str(good), '-o', str(tmp_path / 'out'), '--max-pixels', '50M']!r} "
        f"+ ['--weights', {str(WEIGHTS)!r}, '--device', 'cpu']))"
    )
    done = run_limited(code, memory=6 << 30, timeout=300)
    assert done.returncode == EXIT_FAILED, done.stderr[-2000:]
    assert "bomb.png: the image is 20000x20000 = 400,000,000 pixels, more than the limit" in done.stderr
    assert "1 written, 1 failed" in done.stderr and "MemoryError" not in done.stderr
    assert outputs(tmp_path / "out") == ["good_x2.png"]


# ------------------------------------------------------------------------------- races and failed writes


@pytest.mark.slow
def test_output_appearing_between_plan_and_write_is_not_replaced(tmp_path, capsys, monkeypatch):
    """Another process writes the same output while this one upscales: ours reports it exists and keeps theirs."""
    from hat_plugin import image_work as command

    source = picture(tmp_path / "a.png")
    target = tmp_path / "a_x2.png"
    real_read = command.read_image

    def read_then_race(path, **options):
        image = real_read(path, **options)
        target.write_bytes(b"written by the other process")
        return image

    monkeypatch.setattr(command, "read_image", read_then_race)
    assert upscale(source) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "a_x2.png already exists (written meanwhile by another program?); not replaced" in err
    assert "0 written, 1 failed" in err
    assert target.read_bytes() == b"written by the other process"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.slow
def test_two_processes_on_the_same_outputs_write_each_file_once(tmp_path):
    folder = tmp_path / "in"
    for index in range(6):
        picture(folder / f"p{index}.png")
    command = _cli(folder, "-o", tmp_path / "out")
    runs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=_env()) for _ in range(2)]
    errs = [run.communicate(timeout=300)[1] for run in runs]
    for index in range(6):
        name = f"p{index}_x2.png"
        wrote = sum(f"wrote {tmp_path / 'out' / name} " in err for err in errs)
        stood_back = sum(
            name in line and ("already exists" in line or "skipped" in line)
            for err in errs
            for line in err.splitlines()
        )
        assert (wrote, stood_back) == (1, 1), errs
    assert outputs(tmp_path / "out") == [f"p{i}_x2.png" for i in range(6)]


def test_failed_write_removes_the_folders_it_created(tmp_path, capsys, monkeypatch):
    source = picture(tmp_path / "a.png")
    (tmp_path / "out").mkdir()

    def disk_full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    assert upscale(source, "-o", tmp_path / "out" / "deep" / "er") == EXIT_FAILED
    assert "the disk is full" in capsys.readouterr().err
    assert outputs(tmp_path / "out") == []  # out/deep/er made for the write, removed; out itself was there before


def test_atomic_path_keeps_folders_that_hold_something(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(OutputError), files.atomic_path(tmp_path / "a" / "b" / "c" / "f.bin") as temp:
        (tmp_path / "a" / "b" / "keep.txt").write_text("someone else's")
        temp.write_bytes(b"x")
        raise OSError(errno.EIO, "I/O error")
    assert sorted(p.name for p in (tmp_path / "a").rglob("*")) == ["b", "keep.txt"]


# ---------------------------------------------------------------------------------------------- damaged weights


@pytest.mark.slow
def test_weights_full_of_nan_fail_with_a_clear_error(tmp_path, capsys):
    nan_weights = tmp_path / "nan.safetensors"
    state = load_file(str(WEIGHTS))
    save_file(
        {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()},
        str(nan_weights),
    )
    source = picture(tmp_path / "a.png")
    assert main([str(source), "--weights", str(nan_weights), "--device", "cpu"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "the model produced NaN or infinite values" in err
    assert "0 written, 1 failed" in err
    assert not (tmp_path / "a_x2.png").exists()


# ----------------------------------------------------------------------------------- process and streams


@pytest.mark.slow
def test_ctrl_c_during_shutdown_exits_130_without_a_traceback(tmp_path):
    """SIGINT arriving after the last write, while Python runs its exit handlers."""
    source = picture(tmp_path / "a.png")
    argv = [str(source), "--weights", str(WEIGHTS), "--device", "cpu"]
    script = (
        "import atexit, os, signal, sys\n"
        f"sys.argv = ['hat-upscale', *{argv!r}]\n"
        "from hat_plugin.__main__ import run\n"
        "atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))\n"
        "sys.exit(run())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == EXIT_INTERRUPTED, done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr
    assert "1 written" in done.stderr
    assert (tmp_path / "a_x2.png").is_file()


@pytest.mark.slow
def test_closed_stderr_still_writes_every_output(tmp_path):
    sources = [picture(tmp_path / f"{name}.png") for name in "ab"]
    command = " ".join(f"'{part}'" for part in _cli(*sources, "-o", tmp_path / "out"))
    done = subprocess.run(["sh", "-c", command + " 2>&-"], capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == EXIT_OK, done.stdout
    assert done.stdout == ""  # no message strayed onto stdout
    assert outputs(tmp_path / "out") == ["a_x2.png", "b_x2.png"]


@pytest.mark.slow
def test_stderr_reader_leaving_does_not_stop_the_batch(tmp_path):
    sources = [picture(tmp_path / f"{name}.png") for name in "abc"]
    process = subprocess.Popen(_cli(*sources, "-o", tmp_path / "out"), stderr=subprocess.PIPE, env=_env())
    assert process.stderr is not None
    process.stderr.read(5)  # the reader takes a little, then goes away
    process.stderr.close()
    assert process.wait(timeout=300) == EXIT_OK
    assert outputs(tmp_path / "out") == ["a_x2.png", "b_x2.png", "c_x2.png"]


def test_ascii_terminal_lists_models():
    command = [sys.executable, "-m", "hat_plugin", "models"]
    done = subprocess.run(command, capture_output=True, timeout=120, env=_env(PYTHONIOENCODING="ascii"))
    assert done.returncode == EXIT_OK, done.stderr
    assert b"HAT-S_SRx4" in done.stdout and b"\\xd7" in done.stdout  # the x sign, escaped


def test_offline_model_not_cached_is_refused_without_announcing_a_download(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HAT_PLUGIN_OFFLINE", "1")
    monkeypatch.setenv("HAT_PLUGIN_CACHE", str(tmp_path / "cache"))
    source = picture(tmp_path / "a.png")
    assert main([str(source), "--model", "HAT-S_SRx4", "--device", "cpu"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "HAT_PLUGIN_OFFLINE" in err and "not in the cache" in err
    assert "downloading" not in err


# ------------------------------------------------------------------------------------- mixed folders


def test_folder_of_images_and_a_video_upscales_both_with_their_own_options(tmp_path, capsys):
    """Images through the image path (--format), videos through VideoJob (--codec); one summary, one exit code."""
    from video_helpers import decoded, make_clip

    folder = tmp_path / "mixed"
    picture(folder / "ok.png")
    picture(folder / "also.png")
    make_clip(folder / "film.mkv", frames=3)
    code = upscale(folder, "-o", tmp_path / "out", "--format", "webp", "--quality", "100", "--codec", "ffv1")
    err = capsys.readouterr().err
    assert code == EXIT_OK, err
    assert outputs(tmp_path / "out") == ["also_x2.webp", "film_x2.mkv", "ok_x2.webp"]
    assert "not a video file" not in err and "3 written" in err and err.count(" written") == 1
    assert len(decoded(tmp_path / "out" / "film_x2.mkv")) == 3
    with PILImage.open(tmp_path / "out" / "ok_x2.webp") as written:
        assert written.size == (16, 16)


def test_mixed_run_with_a_bad_image_exits_1_and_still_does_the_video(tmp_path, capsys):
    from video_helpers import make_clip

    folder = tmp_path / "mixed"
    picture(folder / "ok.png")
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    make_clip(folder / "film.mkv", frames=2)
    assert upscale(folder, "-o", tmp_path / "out", "--codec", "ffv1") == EXIT_FAILED
    err = capsys.readouterr().err
    assert outputs(tmp_path / "out") == ["film_x2.mkv", "ok_x2.png"]
    assert "bad.png" in err and "2 written, 1 failed" in err and "Traceback" not in err


def test_explicit_image_and_video_in_one_command(tmp_path, capsys):
    from video_helpers import make_clip

    image = picture(tmp_path / "a.png")
    clip = make_clip(tmp_path / "b.mkv", frames=2)
    assert upscale(image, clip.path, "--codec", "ffv1") == EXIT_OK
    assert (tmp_path / "a_x2.png").is_file() and (tmp_path / "b_x2.mkv").is_file()
    assert "2 written" in capsys.readouterr().err


def test_format_for_a_video_only_run_is_still_a_usage_error(tmp_path, capsys):
    from video_helpers import make_clip

    clip = make_clip(tmp_path / "b.mkv", frames=2)
    assert upscale(clip.path, "--format", "png") == EXIT_USAGE
    assert "--format and --quality apply to images" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- odd command lines


def test_empty_input_argument_is_a_usage_error_not_the_current_folder(tmp_path, capsys, monkeypatch):
    picture(tmp_path / "here.png")
    monkeypatch.chdir(tmp_path)
    assert upscale("") == EXIT_USAGE
    assert "an input is empty ('')" in capsys.readouterr().err
    assert outputs(tmp_path) == ["here.png"]
    source = picture(tmp_path / "a.png")
    assert upscale(source, "  ") == EXIT_USAGE
    assert outputs(tmp_path) == ["a.png", "here.png"]


def test_options_between_inputs_are_accepted(tmp_path, capsys):
    first, second = picture(tmp_path / "a.png"), picture(tmp_path / "b.png")
    assert (
        main([str(first), "-o", str(tmp_path / "out"), str(second), "--weights", str(WEIGHTS), "--device", "cpu"]) == 0
    )
    assert outputs(tmp_path / "out") == ["a_x2.png", "b_x2.png"]
    assert "unrecognized arguments" not in capsys.readouterr().err


def _deep_folder(root: Path, total: int) -> Path:
    """A folder nested so deep that its path is about ``total`` bytes long (made relative to each parent: a
    single mkdir of the whole path would be refused)."""
    fd = os.open(root, os.O_RDONLY)
    path = root
    try:
        while len(os.fsencode(path)) < total - 1:
            name = "d" * min(200, total - 1 - len(os.fsencode(path)))
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd, path = inner, path / name
    finally:
        os.close(fd)
    return path


def test_files_whose_path_is_over_path_max_are_failures_that_say_so(tmp_path, capsys):
    folder = _deep_folder(tmp_path, 4000)  # the folder itself can be named ...
    fd = os.open(folder, os.O_RDONLY)
    try:
        name = "p" * 150 + ".png"  # ... but not the files in it
        with os.fdopen(os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as file:
            PILImage.fromarray(SMALL).save(file, "PNG")
    finally:
        os.close(fd)
    assert len(os.fsencode(folder / name)) > 4096
    assert upscale(folder) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "bytes long, more than this system allows (4,095)" in err
    assert "no image files in this folder" not in err and "Traceback" not in err


def test_input_path_over_path_max_says_the_path_is_too_long(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    picture(tmp_path / "x.png")
    text = str(tmp_path) + "/a/.." * 900 + "/x.png"  # the file exists; its name is over PATH_MAX
    assert len(text) > 4096
    assert upscale(text) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "bytes long, more than this system allows (4,095)" in err and "no image files" not in err


# --------------------------------------------------------------------------------------------- messages


def test_decoder_errors_name_their_type_once(tmp_path, capsys):
    """pypng's messages begin with their class name; the error line must not read "FormatError: FormatError:"."""
    rows = b"".join(b"\x09" + bytes(8 * 6) for _ in range(8))  # filter type 9 does not exist
    ihdr = png_chunk(b"IHDR", struct.pack("!2I5B", 8, 8, 16, 2, 0, 0, 0))
    data = b"\x89PNG\r\n\x1a\n" + ihdr + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")
    bad = tmp_path / "bad.png"
    bad.write_bytes(data)
    assert upscale(bad) == EXIT_FAILED
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.startswith("error:"))
    name = line.split("(")[-1].split(":")[0]
    assert line.count(f"{name}:") == 1, line


# ------------------------------------------------------------------------------------------------ SIGTERM


@pytest.mark.slow
def test_sigterm_during_a_video_leaves_no_temporary_chunk_and_the_next_run_resumes(tmp_path):
    """SIGTERM while a chunk is being written (its temporary file exists): the process cleans up as for Ctrl-C and
    exits 130; finished chunks are kept; a leftover from a harder kill is removed by the next run, which resumes."""
    import signal
    import time

    from video_helpers import make_clip

    clip = make_clip(tmp_path / "in.mkv", frames=24)
    out, work = tmp_path / "out.mkv", tmp_path / "out.mkv.hat-work"
    command = _cli(clip.path, "-o", out, "--chunk-frames", 2, "--codec", "ffv1")
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 240
    while not (list(work.glob("chunk-*.mkv")) and list(work.glob(".chunk-*.tmp"))):
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "no chunk was being written in time"
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == EXIT_INTERRUPTED, err
    assert "interrupted; the finished chunks are kept" in err and "Traceback" not in err
    assert list(work.glob("chunk-*.mkv")) and not list(work.glob(".*.tmp")) and not out.exists()
    (work / ".chunk-000011.mkv.0badf00d.tmp").write_bytes(b"")  # what a SIGKILL leaves
    again = subprocess.run([*command, "--keep-work"], capture_output=True, text=True, timeout=300, env=_env())
    assert again.returncode == EXIT_OK, again.stderr
    assert "resuming:" in again.stderr and out.is_file()
    assert len(list(work.glob("chunk-*.mkv"))) == 12 and not list(work.glob(".*.tmp"))


@pytest.mark.slow  # a real process
def test_quiet_hides_library_warnings_too(tmp_path):
    """tifffile reports a damaged tag through logging, which Python prints to stderr when nobody listens; the CLI
    listens, so the line is a ``warning:`` that --quiet hides like the others."""
    data = bytearray(tiff_file(8, 8, bits=16, samples=1, strip=bytes(128)))
    entries = struct.unpack_from("<H", data, 8)[0]
    struct.pack_into("<HHII", data, 10 + 12 * (entries - 1), 50000, 77, 1, 0)  # a tag of a type that does not exist
    source = tmp_path / "odd.tif"
    source.write_bytes(bytes(data))
    loud = subprocess.run(
        _cli(source, "-o", tmp_path / "loud"), capture_output=True, text=True, timeout=300, env=_env()
    )
    assert loud.returncode == EXIT_OK and "warning: <TiffTag.fromfile> raised" in loud.stderr, loud.stderr
    quiet = subprocess.run(
        _cli(source, "-o", tmp_path / "quiet", "--quiet"), capture_output=True, text=True, timeout=300, env=_env()
    )
    assert quiet.returncode == EXIT_OK and quiet.stderr == "", quiet.stderr
    assert outputs(tmp_path / "quiet") == ["odd_x2.tif"]
