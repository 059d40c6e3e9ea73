"""An output that reaches an input through another path: a bind mount of the input's folder, a hard link, a symbolic
link, ``..``. Files are compared, not paths (``files.file_key``), wherever an output is chosen: the planner (CLI and
app), the final write, videos, LAM figures, the ONNX export and training runs. The input is never touched, the run
says why and exits 1 (2 where the command line itself names the input as the output).

Bind mounts are made in the test's own mount namespace (``unshare -m`` as root, else ``unshare --mount
--map-root-user``); where the kernel allows neither, those tests are skipped with the reason."""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_files import SMALL
from PIL import Image as PILImage

from hat_plugin import files
from hat_plugin.cli import EXIT_FAILED, EXIT_USAGE, main
from hat_plugin.errors import OutputError, TrainingError

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "tests" / "data" / "golden" / "tiny-x2-w8" / "weights.safetensors"


def picture(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(SMALL).save(path)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def upscale(*args: object) -> int:
    return main([*map(str, args), "--weights", str(WEIGHTS), "--device", "cpu"])


# -------------------------------------------------------------------------------------------- file_key itself


def test_file_key_sees_one_file_through_every_kind_of_path(tmp_path):
    real = picture(tmp_path / "real" / "a.png")
    (tmp_path / "real" / "sub").mkdir()
    os.link(real, tmp_path / "hard.png")
    (tmp_path / "sym.png").symlink_to(real)
    (tmp_path / "symdir").symlink_to(tmp_path / "real")
    key = files.file_key(real)
    for other in ("hard.png", "sym.png", "symdir/a.png", "real/sub/../a.png"):
        assert files.file_key(tmp_path / other) == key, other
    assert files.file_key(tmp_path / "real" / "b.png") == files.file_key(tmp_path / "symdir" / "b.png")  # not yet
    assert files.file_key(tmp_path / "real" / "b.png") != files.file_key(tmp_path / "b.png")
    picture(tmp_path / "copy.png")
    assert files.file_key(tmp_path / "copy.png") != key  # same bytes, another file


def test_atomic_write_never_replaces_an_input_through_a_hard_link(tmp_path):
    source = picture(tmp_path / "a.png")
    before = digest(source)
    os.link(source, tmp_path / "b.png")
    with pytest.raises(
        OutputError, match=r"b\.png is the input .*a\.png itself \(the same file through another path\)"
    ):
        files.atomic_write(tmp_path / "b.png", b"new", inputs=(source,))
    assert digest(source) == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]
    files.atomic_write(tmp_path / "c.png", b"new", inputs=(source,))  # another file is written as usual
    assert (tmp_path / "c.png").read_bytes() == b"new"


# ----------------------------------------------------------------------- the CLI: links, symlinks and ``..``


@pytest.mark.parametrize("kind", ["hard link", "symlink", "dotdot"])
def test_single_output_reaching_the_input_is_refused(tmp_path, capsys, kind):
    source = picture(tmp_path / "real" / "a.png")
    before = digest(source)
    if kind == "hard link":
        os.link(source, tmp_path / "other.png")
        target = tmp_path / "other.png"
    elif kind == "symlink":
        (tmp_path / "other.png").symlink_to(source)
        target = tmp_path / "other.png"
    else:
        (tmp_path / "real" / "sub").mkdir()
        target = tmp_path / "real" / "sub" / ".." / "a.png"
    assert upscale(source, "-o", target, "--overwrite") == EXIT_FAILED
    err = capsys.readouterr().err
    assert "would overwrite an input" in err and "0 written, 1 failed" in err and "Traceback" not in err
    assert digest(source) == before


@pytest.mark.parametrize("kind", ["symlink", "dotdot"])
def test_output_folder_reaching_the_input_folder_is_refused(tmp_path, capsys, kind):
    sources = [picture(tmp_path / "real" / name) for name in ("a.png", "b.png")]
    before = [digest(s) for s in sources]
    if kind == "symlink":
        (tmp_path / "view").symlink_to(tmp_path / "real")
        folder = tmp_path / "view"
    else:
        (tmp_path / "real" / "sub").mkdir()
        folder = tmp_path / "real" / "sub" / ".."
    assert upscale(tmp_path / "real", "-o", f"{folder}/", "--suffix", "", "--overwrite") == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("would overwrite an input") == 2 and "0 written, 2 failed" in err
    assert [digest(s) for s in sources] == before


def test_hard_linked_inputs_keep_their_own_outputs(tmp_path, capsys):
    """Two names of one file are two inputs with two outputs (nothing is dropped without a word)."""
    source = picture(tmp_path / "a.png")
    os.link(source, tmp_path / "b.png")
    assert upscale(source, tmp_path / "b.png") == 0
    assert (tmp_path / "a_x2.png").is_file() and (tmp_path / "b_x2.png").is_file()


def test_final_write_refuses_an_input_that_became_the_output_meanwhile(tmp_path, capsys, monkeypatch):
    """The plan was right, then someone hard-linked the input to the output name: the write refuses it."""
    from hat_plugin import image_work as command

    source = picture(tmp_path / "a.png")
    before = digest(source)
    real_read = command.read_image

    def read_then_link(path, **options):
        image = real_read(path, **options)
        os.link(source, tmp_path / "a_x2.png")
        return image

    monkeypatch.setattr(command, "read_image", read_then_link)
    assert upscale(source, "--overwrite") == EXIT_FAILED
    assert "a_x2.png is the input" in capsys.readouterr().err
    assert digest(source) == before


# ---------------------------------------------------------------------------------------------- bind mounts


@functools.cache
def _namespace_prefix() -> tuple[list[str] | None, str]:
    """How to run a command in a private mount namespace where ``mount --bind`` works, or why it cannot."""
    reasons = []
    for prefix in (["unshare", "-m"], ["unshare", "--mount", "--map-root-user"]):
        try:
            done = subprocess.run(
                [*prefix, "sh", "-c", "mount --bind / /mnt && umount /mnt"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            reasons.append(f"{' '.join(prefix)}: {exc}")
            continue
        if done.returncode == 0:
            return prefix, ""
        reasons.append(f"{' '.join(prefix)}: {done.stderr.strip() or done.returncode}")
    return None, "no private mount namespace with bind mounts here: " + "; ".join(reasons)


def run_with_bind(real: Path, bind: Path, *args: object) -> subprocess.CompletedProcess[str]:
    """``hat-upscale ARGS`` in a private mount namespace where ``bind`` is a bind mount of ``real``."""
    prefix, why = _namespace_prefix()
    if prefix is None:
        pytest.skip(why)
    bind.mkdir()
    command = [sys.executable, "-m", "hat_plugin", *map(str, args), "--weights", str(WEIGHTS), "--device", "cpu"]
    script = f"mount --bind {shlex.quote(str(real))} {shlex.quote(str(bind))} && exec {shlex.join(command)}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([*prefix, "sh", "-c", script], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow  # real processes in their own mount namespace
def test_bind_mount_of_the_input_folder_as_the_output_file(tmp_path):
    source = picture(tmp_path / "real" / "a.png")
    before = digest(source)
    done = run_with_bind(tmp_path / "real", tmp_path / "bind", source, "-o", tmp_path / "bind" / "a.png", "--overwrite")
    assert done.returncode == EXIT_FAILED, done.stderr
    assert "would overwrite an input (the same file as" in done.stderr and "wrote" not in done.stderr
    assert digest(source) == before
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["a.png"]


@pytest.mark.slow  # real processes in their own mount namespace
def test_bind_mount_of_the_input_folder_as_the_output_folder(tmp_path):
    sources = [picture(tmp_path / "real" / name) for name in ("a.png", "b.png")]
    before = [digest(s) for s in sources]
    done = run_with_bind(
        tmp_path / "real", tmp_path / "bind", tmp_path / "real", "-o", f"{tmp_path / 'bind'}/", "--suffix", "",
        "--overwrite",
    )  # fmt: skip
    assert done.returncode == EXIT_FAILED, done.stderr
    assert done.stderr.count("would overwrite an input") == 2 and "0 written, 2 failed" in done.stderr
    assert [digest(s) for s in sources] == before


@pytest.mark.slow  # real processes in their own mount namespace
def test_bind_mount_outputs_of_two_names_of_one_input_are_one_file(tmp_path):
    """``real/a.png`` and ``bind/a.png`` are one file: their outputs ``real/a_x2.png`` and ``bind/a_x2.png`` too;
    the second is refused, not written twice over the first."""
    source = picture(tmp_path / "real" / "a.png")
    done = run_with_bind(tmp_path / "real", tmp_path / "bind", source, tmp_path / "bind" / "a.png")
    assert done.returncode == EXIT_FAILED, done.stderr
    assert "is already the output of" in done.stderr and "1 written, 1 failed" in done.stderr


# ----------------------------------------------------------------------- videos, LAM figures, export, training


def test_video_output_that_is_the_source_through_a_hard_link_is_refused(tmp_path):
    from video_helpers import make_clip

    from hat_plugin.video import VideoJob

    clip = make_clip(tmp_path / "in.mkv", frames=2)
    os.link(clip.path, tmp_path / "out.mkv")
    before = digest(clip.path)
    with pytest.raises(OutputError, match="out.mkv is the input .*in.mkv itself"):
        VideoJob(clip.path, tmp_path / "out.mkv", WEIGHTS, overwrite=True).prepare()
    assert digest(clip.path) == before


def test_lam_figure_over_the_image_through_a_symlink_is_a_usage_error(tmp_path, capsys):
    image = picture(tmp_path / "a.png")
    (tmp_path / "fig.png").symlink_to(image)
    before = digest(image)
    argv = ["explain", str(image), "--at", "2,2", "--weights", str(WEIGHTS), "-o", str(tmp_path / "fig.png")]
    assert main(argv) == EXIT_USAGE
    assert "fig.png is the input image (" in capsys.readouterr().err
    assert digest(image) == before


def test_export_over_the_weights_through_a_hard_link_is_refused(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(WEIGHTS.read_bytes())
    os.link(weights, tmp_path / "w.onnx")
    before = digest(weights)
    argv = ["export", "--onnx", str(tmp_path / "w.onnx"), "--weights", str(weights), "--tile", "16", "--overwrite"]
    assert main(argv) == EXIT_FAILED
    assert "w.onnx is the input" in capsys.readouterr().err
    assert digest(weights) == before


def test_training_run_folder_inside_the_data_folder_through_a_symlink_is_refused(tmp_path):
    from hat_plugin.training import create_run, plan_run

    data = tmp_path / "photos"
    data.mkdir()
    for index in range(2):
        PILImage.fromarray((SMALL.repeat(20, 0).repeat(20, 1) + index).astype("uint8")).save(data / f"{index}.png")
    (tmp_path / "view").symlink_to(data)
    settings = plan_run("hat-tiny-x2", 2, str(data), steps=1)
    with pytest.raises(TrainingError, match="is inside the image folder"):
        create_run(tmp_path / "view" / "run", settings)
    assert sorted(p.name for p in data.iterdir()) == ["0.png", "1.png"]
