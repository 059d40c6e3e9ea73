"""The command line shows progress from the first moment: it says the model is loading, and an image's bar says
the first tile is being computed until the tile count is known."""

from __future__ import annotations

import io

from conftest import DATA
from PIL import Image
from tqdm import tqdm

from hat_plugin.cli import main as cli_main
from hat_plugin.cli.upscale import FIRST_TILE, tile_progress


def test_an_images_bar_says_the_first_tile_is_computed_then_counts_tiles() -> None:
    out = io.StringIO()
    with tqdm(total=None, desc="photo.png", file=out, bar_format=FIRST_TILE, unit="tile", ascii=True) as bar:
        assert "photo.png: working on the first tile…" in out.getvalue()
        progress = tile_progress(bar)
        progress(1, 12)
        assert bar.bar_format is None and (bar.n, bar.total) == (1, 12)
    with tqdm(total=None, file=out, disable=True) as quiet:
        tile_progress(quiet)(1, 12)  # a bar that is not shown (no terminal) takes updates too
        bar.refresh()
        assert "1/12" in out.getvalue().rsplit("\r", 1)[-1]


def test_the_command_line_says_the_model_is_loading(tmp_path, capsys) -> None:
    photo = tmp_path / "crop.png"
    Image.open(DATA / "quality" / "camera.png").crop((0, 0, 24, 16)).save(photo)
    code = cli_main([str(photo), "-o", str(tmp_path / "out"), "--model", "hat-tiny-x2", "-d", "cpu"])
    assert code == 0
    err = capsys.readouterr().err
    assert err.index("loading model hat-tiny-x2…") < err.index("model hat-tiny-x2: x2, RGB mean official, on cpu")
