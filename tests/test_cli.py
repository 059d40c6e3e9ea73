"""The command line end to end: real image files in a temp folder, the real engine with the golden tiny x2 weights.

Most runs call ``hat_plugin.cli.main`` in-process; two go through ``python -m hat_plugin`` in a subprocess to prove
the entry point and Ctrl-C handling.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import png
import pytest
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from hat_plugin.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, main

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "tests" / "data" / "golden" / "tiny-x2-w8" / "weights.safetensors"
H, W = 13, 20
RNG = np.random.default_rng(11)


def upscale(*args: object) -> int:
    """Run the CLI in-process with the tiny x2 golden model on the CPU."""
    return main([*map(str, args), "--weights", str(WEIGHTS), "--device", "cpu"])


def rgb8(h: int = H, w: int = W) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def save_png(path: Path, pixels: np.ndarray, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(pixels).save(path, **options)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def opened(path: Path) -> PILImage.Image:
    with PILImage.open(path) as im:
        im.load()
        return im


def read_png16(path: Path) -> tuple[np.ndarray, dict]:
    width, height, rows, info = png.Reader(filename=str(path)).read()
    pixels = np.vstack([np.asarray(row, np.uint16) for row in rows]).reshape(height, width, -1)
    return pixels, info


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------------- channels, depth


@pytest.mark.slow
def test_rgb_beside_input_with_default_suffix(tmp_path, capsys):
    source = save_png(tmp_path / "photo.png", rgb8())
    before = digest(source)
    assert upscale(source) == EXIT_OK
    out = opened(tmp_path / "photo_x2.png")
    assert (out.mode, out.size) == ("RGB", (2 * W, 2 * H))
    assert digest(source) == before
    err = capsys.readouterr().err
    assert "x2" in err and "photo_x2.png" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("mode", "shape"), [("RGBA", (H, W, 4)), ("L", (H, W)), ("LA", (H, W, 2))], ids=["rgba", "grey", "grey-alpha"]
)
def test_8bit_layouts_kept(tmp_path, mode, shape):
    pixels = RNG.integers(0, 256, shape, dtype=np.uint8)
    source = tmp_path / "in.png"
    PILImage.fromarray(pixels, mode).save(source)
    assert upscale(source) == EXIT_OK
    out = opened(tmp_path / "in_x2.png")
    assert (out.mode, out.size) == (mode, (2 * W, 2 * H))


@pytest.mark.parametrize("channels", [3, 1], ids=["rgb", "grey"])
def test_16bit_png_stays_16bit(tmp_path, channels):
    pixels = RNG.integers(0, 65536, (H, W, channels), dtype=np.uint16)
    with open(tmp_path / "deep.png", "wb") as f:
        png.Writer(W, H, greyscale=channels == 1, bitdepth=16).write(f, pixels.reshape(H, -1))
    assert upscale(tmp_path / "deep.png") == EXIT_OK
    out, info = read_png16(tmp_path / "deep_x2.png")
    assert info["bitdepth"] == 16 and info["greyscale"] == (channels == 1)
    assert out.shape == (2 * H, 2 * W, channels)
    assert len(np.unique(out % 257)) > 1  # real 16-bit values, not 8-bit ones scaled up


def test_palette_inputs(tmp_path):
    indices = RNG.integers(0, 4, (H, W), dtype=np.uint8)
    image = PILImage.fromarray(indices, "P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    image.save(tmp_path / "plain.gif")
    image.save(tmp_path / "clear.png", transparency=3)
    assert upscale(tmp_path / "plain.gif", tmp_path / "clear.png", "-o", tmp_path / "out") == EXIT_OK
    assert opened(tmp_path / "out" / "plain_x2.png").mode == "RGB"  # GIF is not written: PNG instead
    assert opened(tmp_path / "out" / "clear_x2.png").mode == "RGBA"


def test_cmyk_jpeg_comes_out_rgb(tmp_path):
    cmyk = PILImage.fromarray(RNG.integers(0, 256, (H, W, 4), dtype=np.uint8), "CMYK")
    cmyk.save(tmp_path / "print.jpg", quality=95)
    assert upscale(tmp_path / "print.jpg") == EXIT_OK
    out = opened(tmp_path / "print_x2.jpg")
    assert (out.mode, out.size) == ("RGB", (2 * W, 2 * H))
    assert "icc_profile" not in out.info


# ---------------------------------------------------------------------------------------------- metadata


def test_exif_rotated_jpeg_is_upright_with_orientation_reset(tmp_path):
    exif = PILImage.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    exif[0x010F] = "TestCam"
    PILImage.fromarray(rgb8()).save(tmp_path / "side.jpg", exif=exif.tobytes(), quality=95)
    upright = np.asarray(ImageOps.exif_transpose(PILImage.open(tmp_path / "side.jpg")))
    save_png(tmp_path / "ref" / "upright.png", upright)

    assert upscale(tmp_path / "side.jpg", "-o", tmp_path / "out", "--format", "png") == EXIT_OK
    assert upscale(tmp_path / "ref" / "upright.png", "-o", tmp_path / "out") == EXIT_OK
    rotated = opened(tmp_path / "out" / "side_x2.png")
    assert rotated.size == (2 * H, 2 * W)  # portrait now
    assert rotated.getexif()[0x0112] == 1
    assert rotated.getexif()[0x010F] == "TestCam"
    np.testing.assert_array_equal(np.asarray(rotated), np.asarray(opened(tmp_path / "out" / "upright_x2.png")))


@pytest.mark.parametrize("deep", [False, True], ids=["8bit", "16bit"])
def test_icc_profile_carried_over(tmp_path, deep):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    if deep:  # Pillow cannot write 16-bit RGB: pypng, with the iCCP chunk added by hand
        pixels = RNG.integers(0, 65536, (H, W, 3), dtype=np.uint16)
        plain = io.BytesIO()
        png.Writer(W, H, greyscale=False, bitdepth=16).write(plain, pixels.reshape(H, -1))
        chunks = list(png.Reader(bytes=plain.getvalue()).chunks())
        with open(tmp_path / "tagged.png", "wb") as f:
            png.write_chunks(f, chunks[:1] + [(b"iCCP", b"sRGB\0\0" + zlib.compress(icc))] + chunks[1:])
    else:
        save_png(tmp_path / "tagged.png", rgb8(), icc_profile=icc)
    assert upscale(tmp_path / "tagged.png", "-o", tmp_path / "out.png") == EXIT_OK
    assert opened(tmp_path / "out.png").info["icc_profile"] == icc


# ------------------------------------------------------------------------------------------ batches, codes


def test_folder_with_junk_reports_and_goes_on(tmp_path, capsys):
    folder = tmp_path / "in"
    save_png(folder / "a.png", rgb8())
    save_png(folder / "c.png", rgb8())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but then garbage")
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub").mkdir()
    code = upscale(folder, "-o", tmp_path / "out")
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "c_x2.png"]
    assert "error:" in err and "broken.png" in err
    assert "notes.txt: not an image file" in err
    assert "use -r" in err
    assert "2 written, 1 failed" in err
    assert "Traceback" not in err


def test_missing_input_fails(tmp_path, capsys):
    save_png(tmp_path / "ok.png", rgb8())
    assert upscale(tmp_path / "ok.png", tmp_path / "nope.png") == EXIT_FAILED
    assert "nope.png: no such file or folder" in capsys.readouterr().err
    assert (tmp_path / "ok_x2.png").is_file()


def test_bad_weights_file_is_one_clear_line(tmp_path, capsys):
    save_png(tmp_path / "ok.png", rgb8())
    (tmp_path / "bad.safetensors").write_bytes(b"definitely not safetensors")
    code = main([str(tmp_path / "ok.png"), "--weights", str(tmp_path / "bad.safetensors"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert "bad.safetensors" in err and "Traceback" not in err
    assert not (tmp_path / "ok_x2.png").exists()
    main([str(tmp_path / "ok.png"), "--weights", str(tmp_path / "bad.safetensors"), "--verbose"])
    assert "Traceback" in capsys.readouterr().err  # the details are there when asked for


def test_quiet_prints_errors_only(tmp_path, capsys):
    save_png(tmp_path / "ok.png", rgb8())
    (tmp_path / "bad.png").write_bytes(b"junk")
    assert upscale(tmp_path / "ok.png", tmp_path / "bad.png", "--quiet") == EXIT_FAILED
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "bad.png" in lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["--quality", "0"],
        ["--tile", "-8"],
        ["--format", "gif"],
        ["--suffix", "_{size}"],
        ["--model", "X", "--weights", "Y"],
        ["--no-such-option"],
        ["-o", "out.gif"],
        ["--scale", "4"],
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, args):
    source = save_png(tmp_path / "ok.png", rgb8())
    argv = [str(source), *args]
    if "--weights" not in args:
        argv += ["--weights", str(WEIGHTS)]
    assert main(argv) == EXIT_USAGE
    assert "error" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [source]


@pytest.mark.slow
def test_recursive_keeps_folder_structure(tmp_path):
    save_png(tmp_path / "in" / "top.png", rgb8())
    save_png(tmp_path / "in" / "trip" / "day1" / "beach.png", rgb8())
    save_png(tmp_path / "in" / ".hidden" / "skip.png", rgb8())
    assert upscale(tmp_path / "in", "-r", "-o", tmp_path / "out") == EXIT_OK
    found = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert found == ["top_x2.png", "trip/day1/beach_x2.png"]


def test_glob_input(tmp_path):
    save_png(tmp_path / "a.png", rgb8())
    save_png(tmp_path / "b.png", rgb8())
    (tmp_path / "b.txt").write_text("x")
    assert upscale(str(tmp_path / "*.png"), "-o", tmp_path / "out") == EXIT_OK
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "b_x2.png"]


def test_skip_existing_unless_overwrite(tmp_path, capsys):
    source = save_png(tmp_path / "a.png", rgb8())
    target = tmp_path / "a_x2.png"
    target.write_bytes(b"precious")
    assert upscale(source) == EXIT_OK
    assert target.read_bytes() == b"precious"
    assert "exists" in capsys.readouterr().err
    assert upscale(source, "--overwrite") == EXIT_OK
    assert opened(target).size == (2 * W, 2 * H)


def test_input_never_overwritten(tmp_path, capsys):
    source = save_png(tmp_path / "a.png", rgb8())
    before = digest(source)
    assert upscale(source, "--suffix", "", "--overwrite") == EXIT_FAILED
    assert "would overwrite an input" in capsys.readouterr().err
    assert upscale(source, "-o", source, "--overwrite") == EXIT_FAILED
    assert digest(source) == before


def test_rerun_in_place_leaves_earlier_outputs_alone(tmp_path):
    save_png(tmp_path / "a.png", rgb8())
    assert upscale(tmp_path) == EXIT_OK
    assert upscale(tmp_path) == EXIT_OK
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_x2.png"]


@pytest.mark.slow
def test_output_file_and_folder_forms(tmp_path):
    source = save_png(tmp_path / "a.png", rgb8())
    save_png(tmp_path / "b.png", rgb8())
    assert upscale(source, "-o", tmp_path / "result.jpg", "--quality", "90") == EXIT_OK
    assert opened(tmp_path / "result.jpg").format == "JPEG"
    assert upscale(source, "-o", tmp_path / "made" / "here") == EXIT_OK
    assert (tmp_path / "made" / "here" / "a_x2.png").is_file()
    assert upscale(source, tmp_path / "b.png", "-o", tmp_path / "one.png") == EXIT_USAGE
    assert not (tmp_path / "one.png").exists()
    assert upscale(source, "-o", tmp_path / "fmt", "--format", "webp", "--suffix", "_{model}") == EXIT_OK
    assert opened(tmp_path / "fmt" / "a_weights.webp").format == "WEBP"


def test_unwritable_output_leaves_nothing_behind(tmp_path, capsys):
    source = save_png(tmp_path / "a.png", rgb8())
    (tmp_path / "blocker").write_text("a file where the output folder should be")
    assert upscale(source, "-o", tmp_path / "blocker" / "out" / "") == EXIT_FAILED
    err = capsys.readouterr().err
    assert "cannot write" in err and "Traceback" not in err
    (tmp_path / "taken_x2.png").mkdir()  # a folder where the output file should go: fails at the rename
    save_png(tmp_path / "taken.png", rgb8())
    assert upscale(tmp_path / "taken.png", "--overwrite") == EXIT_FAILED
    assert temp_files(tmp_path) == []


# -------------------------------------------------------------------------------------------- entry point


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.slow
def test_python_m_entry_point(tmp_path):
    source = save_png(tmp_path / "a.png", rgb8())
    command = [sys.executable, "-m", "hat_plugin", str(source), "--weights", str(WEIGHTS), "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == EXIT_OK, done.stderr
    assert "x2" in done.stderr
    assert opened(tmp_path / "a_x2.png").size == (2 * W, 2 * H)


def test_help_exits_0(capsys):
    assert main(["--help"]) == EXIT_OK
    assert "--weights" in capsys.readouterr().out


@pytest.mark.slow
def test_ctrl_c_exits_130_without_partial_output(tmp_path):
    source = save_png(tmp_path / "big.png", rgb8(96, 96))
    command = [sys.executable, "-m", "hat_plugin", str(source), "--weights", str(WEIGHTS), "--device", "cpu"]
    command += ["--tile", "8", "--overlap", "4", "-o", str(tmp_path / "out")]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=_env())
    assert any("x2" in line for line in iter(process.stderr.readline, ""))  # the model is loaded: upscaling started
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == EXIT_INTERRUPTED, err
    assert "interrupted" in err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_models_subcommand_is_dispatched(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HAT_PLUGIN_CACHE", str(tmp_path / "cache"))
    assert main(["models", "--json"]) == EXIT_OK
    names = [entry["name"] for entry in json.loads(capsys.readouterr().out)]
    assert "HAT-S_SRx4" in names
    assert main(["--list-models"]) == EXIT_OK
    assert "HAT-S_SRx4" in capsys.readouterr().out


def test_unknown_model_name_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HAT_PLUGIN_CACHE", str(tmp_path / "cache"))
    source = save_png(tmp_path / "a.png", rgb8())
    assert main([str(source), "--model", "HAT-S_SRx5", "--device", "cpu"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "HAT-S_SRx5" in err and "Traceback" not in err
    assert not (tmp_path / "a_x2.png").exists()
