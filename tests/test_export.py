"""`hat-upscale export --onnx`: the tiny bundled model exported with a static tile and run with ONNX Runtime gives
our own output; bad requests are one clear line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hat_plugin.checkpoint import load_model
from hat_plugin.cli import EXIT_FAILED, EXIT_OK, main
from hat_plugin.weights import resolve

ort = pytest.importorskip("onnxruntime")  # the `test` extra installs it; without it this file cannot say anything

PHOTO = Path(__file__).parent / "data" / "quality" / "chelsea.png"
TILE = 32


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "tiny.onnx"
    code = main(["export", "--onnx", str(out), "--model", "hat-tiny-x4", "--tile", str(TILE), "--check", "-q"])
    assert code == EXIT_OK
    return out


@pytest.mark.slow
def test_exported_graph_gives_our_output_on_a_photo(exported: Path) -> None:
    with Image.open(PHOTO) as im:
        crop = np.asarray(im.convert("RGB").crop((80, 40, 80 + TILE, 40 + TILE)), dtype=np.float32) / 255.0
    x = torch.from_numpy(crop).permute(2, 0, 1).unsqueeze(0).contiguous()
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape, out.shape) == ("input", [1, 3, TILE, TILE], [1, 3, 4 * TILE, 4 * TILE])
    got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    with torch.inference_mode():
        want = load_model(resolve("hat-tiny-x4"))(x)
    assert (got - want).abs().max().item() < 1e-4
    assert (want - torch.nn.functional.interpolate(x, scale_factor=4)).abs().mean() > 1e-3  # not a trivial graph


@pytest.mark.slow
def test_an_existing_file_is_kept_without_overwrite(exported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = exported.read_bytes()
    code = main(["export", "--onnx", str(exported), "--model", "hat-tiny-x4", "--tile", str(TILE)])
    assert code == EXIT_FAILED
    assert "exists; use --overwrite" in capsys.readouterr().err
    assert exported.read_bytes() == before


def test_bad_opset_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    code = main(["export", "--onnx", str(out), "--model", "hat-tiny-x4", "--tile", "16", "--opset", "13"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED and "opset 13 is too old" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_caches_made_in_inference_mode_serve_a_training_forward() -> None:
    """The exportable key/value gather caches its index; one made under inference_mode must not break autograd."""
    model = load_model(resolve("hat-tiny-x4"))
    x = torch.rand(1, 3, 24, 24)
    with torch.inference_mode():
        model(x)
    model.train().requires_grad_(True)
    model(x).mean().backward()
    assert model.layers[0].residual_group.overlap_attn.qkv.weight.grad is not None
