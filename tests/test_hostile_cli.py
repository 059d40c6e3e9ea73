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
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile_files import SMALL, png_file, run_limited
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
    from hat_plugin.cli import upscale as command

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
