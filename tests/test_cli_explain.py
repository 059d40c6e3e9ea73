"""``hat-upscale explain``: the LAM figure and numbers from the command line, run in-process with tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, golden_weights
from PIL import Image as PILImage

from hat_plugin.attribution.figure import MAX_PANEL
from hat_plugin.cli import COMMANDS, EXIT_FAILED, EXIT_OK, EXIT_USAGE, main

GOLDEN_X2 = golden_weights("tiny-x2-w8")
SIZE = 24


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    """A small photo (a held-out crop, shrunk) as PNG."""
    path = tmp_path / "cat.png"
    PILImage.open(DATA / "quality" / "chelsea.png").convert("RGB").resize((SIZE, SIZE)).save(path)
    return path


def explain(*args: object) -> int:
    return main(["explain", *map(str, args), "--device", "cpu", "--steps", "3"])


def test_explain_is_a_command() -> None:
    assert COMMANDS["explain"][0] == "hat_plugin.cli.explain:run"


@pytest.mark.slow
def test_figure_and_di_for_one_model(picture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    figure = tmp_path / "out" / "lam.png"
    assert explain(picture, "--at", "10,12", "--window", "8", "--weights", GOLDEN_X2, "-o", figure) == EXIT_OK
    out = capsys.readouterr()
    assert out.out.startswith("weights: DI ")
    di = float(out.out.split("DI ")[1])
    assert 0 < di < 100
    assert f"wrote {figure}" in out.err
    with PILImage.open(figure) as image:
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"))
    panel = SIZE * 2  # the x2 output's size
    assert width >= 3 * panel and height > panel
    assert width < 3 * MAX_PANEL + 200
    # The heat map panel has red in it (the attribution), the white background does not.
    reds = (pixels[..., 0] > 150) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert reds.sum() > 0


@pytest.mark.slow
def test_rows_per_model_and_json(picture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    assert explain(picture, "--at", "20,6", "--weights", GOLDEN_X2, "-o", one, "-q") == EXIT_OK
    capsys.readouterr()
    code = explain(
        picture, "--at", "20,6", "--weights", GOLDEN_X2, "--model", "bicubic", "--model", "hat-tiny-x2", "-o", two,
        "--json", "-q",
    )  # fmt: skip
    assert code == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert (report["x"], report["y"], report["window"], report["steps"]) == (20, 6, 16, 3)
    assert (report["width"], report["height"], report["figure"]) == (SIZE, SIZE, str(two))
    assert [r["model"] for r in report["results"]] == ["weights", "bicubic", "hat-tiny-x2"]
    for row in report["results"]:
        assert row["scale"] == 2 and row["exact"] and 0 < row["di"] < 100
        assert row["crop"] == {"left": 0, "top": 0, "width": SIZE, "height": SIZE}
        assert row["di"] == pytest.approx((1 - row["gini"]) * 100)
    dis = {row["model"]: row["di"] for row in report["results"]}
    assert dis["bicubic"] < dis["hat-tiny-x2"]
    with PILImage.open(one) as a, PILImage.open(two) as b:
        assert b.size[0] == a.size[0] and b.size[1] > a.size[1] + 2 * SIZE  # two more rows


def test_default_figure_goes_beside_the_input(picture: Path) -> None:
    assert explain(picture, "--at", "1,1", "--model", "bicubic", "-q") == EXIT_OK
    assert (picture.parent / "cat_lam.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "48,3"], "outside the x2 output (48x48)"),
        (["--at", "3,47"], "outside the x2 output"),
        (["--at", "3;4"], "expected X,Y"),
        (["--at=-1,4"], "must be 0 or more"),
        (["--at", "3,4", "--steps", "0"], "must be 1 or more"),
        (["--at", "3,4", "--sigma", "0"], "must be above 0"),
        (["--at", "3,4", "--crop", "some"], "auto, full or a margin"),
        (["--at", "3,4", "-o", "figure.xyz"], "cannot tell the output format"),
        (["--at", "3,4", "--model", "hat-tiny-x4"], "different factors"),
    ],
)
def test_usage_errors(
    picture: Path, args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = explain(picture, "--weights", GOLDEN_X2, *args)
    assert code == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("*_lam.png"))


def test_the_input_is_never_the_figure(picture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = picture.read_bytes()
    assert explain(picture, "--at", "3,4", "--model", "bicubic", "-o", picture) == EXIT_USAGE
    assert "is the input image" in capsys.readouterr().err
    assert picture.read_bytes() == before


def test_bad_image_and_unknown_model_fail(picture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    assert explain(junk, "--at", "3,4", "--model", "bicubic") == EXIT_FAILED
    assert "junk.png" in capsys.readouterr().err
    assert explain(tmp_path / "missing.png", "--at", "3,4", "--model", "bicubic") == EXIT_FAILED
    assert "file not found" in capsys.readouterr().err
    # An unknown model fails its row; the others still make the figure, and the exit code says something failed.
    figure = tmp_path / "partial.png"
    code = explain(picture, "--at", "3,4", "--model", "no-such-model", "--model", "bicubic", "-o", figure)
    assert code == EXIT_FAILED
    err = capsys.readouterr().err
    assert "no-such-model" in err and figure.is_file()


@pytest.mark.slow
def test_grey_image_with_alpha(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "grey.png"
    rng = np.random.default_rng(3)
    la = np.stack([rng.integers(0, 256, (16, 16)), np.full((16, 16), 255)], axis=-1).astype(np.uint8)
    PILImage.fromarray(la).save(path)
    assert explain(path, "--at", "5,5", "--weights", GOLDEN_X2, "--json", "-q", "-o", tmp_path / "g.png") == EXIT_OK
    assert json.loads(capsys.readouterr().out)["results"][0]["di"] > 0


def test_unavailable_device_and_only_failing_models(picture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(picture), "--at", "3,4", "--model", "bicubic", "--device", "cuda:7"]) == EXIT_FAILED
    assert "cuda:7" in capsys.readouterr().err
    assert explain(picture, "--at", "300,4", "--model", "no-such-model", "--json", "-q") == EXIT_FAILED
    report = json.loads(capsys.readouterr().out)
    assert report["figure"] is None and "no-such-model" in report["results"][0]["error"]
