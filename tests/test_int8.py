"""precision="int8" on the CPU: HAT's Linear layers quantized (per-channel weights, dynamic activations), refused
in one line where PyTorch lacks the kernels, and close to fp32 on a real photograph with the bundled trained model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from hat_plugin import HAT, DeviceError, Upscaler, load_model
from hat_plugin import quantize as quantize_module
from hat_plugin.device import resolve_precision
from hat_plugin.precision_probe import _psnr_y
from hat_plugin.precisions import precision_label, precision_name
from hat_plugin.quantize import quantize_int8
from hat_plugin.weights import resolve

PHOTO = "tests/data/quality/chelsea.png"
MIN_PSNR_VS_FP32 = 70.0
"""PSNR-Y (dB) between the int8 and fp32 outputs of hat-tiny-x4 on a 96-px crop of a photograph. Measured on a
2-core AMD EPYC (AVX2, x86 engine): 88.3 dB (90.4 on a 256-px crop; per-tensor weight scales instead of
per-channel: 80.3). 70 dB is a luma RMS difference of 3e-4, under a tenth of an 8-bit step, so invisible; the 18 dB
of margin is for other CPUs' kernels. That the scales really are per channel is checked on the layers themselves."""


@pytest.fixture(scope="module")
def tiny_x4() -> HAT:
    return load_model(resolve("hat-tiny-x4"))


def _photo(size: int = 96) -> torch.Tensor:
    with Image.open(PHOTO) as opened:
        im = opened.convert("RGB")
        left, top = (im.width - size) // 2, (im.height - size) // 2
        pixels = np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).contiguous()


def test_int8_output_is_close_to_fp32_on_a_photograph(tiny_x4: HAT) -> None:
    x = _photo()
    fp32 = Upscaler(tiny_x4, device="cpu", precision="fp32").upscale_tensor(x)
    int8 = Upscaler(tiny_x4, device="cpu", precision="int8")
    out = int8.upscale_tensor(x)
    assert out.shape == fp32.shape
    psnr = _psnr_y(out.unsqueeze(0), fp32.unsqueeze(0))
    assert MIN_PSNR_VS_FP32 < psnr < float("inf"), "int8 must be close to fp32, and really quantized"


def test_linear_layers_are_quantized_and_the_callers_module_is_not(tiny_x4: HAT) -> None:
    up = Upscaler(tiny_x4, device="cpu", precision="int8")
    assert up.dtype == torch.qint8
    kinds = {type(m).__name__ for m in up.model.modules()}
    assert "Linear" in kinds and not any(type(m) is nn.Linear for m in up.model.modules())
    assert any(type(m) is nn.Linear for m in tiny_x4.modules()), "the caller's model keeps its fp32 layers"
    assert next(up.model.parameters()).dtype == torch.float32  # convolutions and norms stay fp32
    weights = [m.weight() for m in up.model.modules() if type(m).__name__ == "Linear" and callable(m.weight)]
    assert weights and all(w.qscheme() == torch.per_channel_affine for w in weights)
    assert precision_label(up.dtype).startswith("int8")
    assert precision_name("INT8") == "int8" and precision_name(torch.qint8) == "int8"


def test_int8_is_refused_in_one_line_without_the_kernels(tiny_x4: HAT, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quantize_module, "INT8_ENGINES", ("no-such-engine",))
    with pytest.raises(DeviceError) as info:
        Upscaler(tiny_x4, device="cpu", precision="int8")
    message = str(info.value)
    assert "\n" not in message and "int8 needs PyTorch's quantized CPU kernels" in message and "use fp32" in message
    assert "--" not in message, "the engine's message must not assume a command line"


def test_a_missing_engine_named_is_refused(tiny_x4: HAT) -> None:
    with pytest.raises(DeviceError, match="no-such-engine"):
        quantize_int8(tiny_x4, engine="no-such-engine")


def test_int8_runs_on_the_cpu_only() -> None:
    with pytest.raises(DeviceError, match="int8 runs on the CPU only"):
        resolve_precision("int8", torch.device("cuda"))


def test_the_cli_says_int8_ran(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from hat_plugin.cli import EXIT_OK, main

    Image.new("RGB", (20, 12), (200, 30, 90)).save(tmp_path / "in.png")
    argv = [str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--model", "hat-tiny-x4", "--device", "cpu"]
    assert main([*argv, "--precision", "int8"]) == EXIT_OK
    assert "in int8 (Linear layers; the rest float32)" in capsys.readouterr().err
    assert (tmp_path / "out").is_dir() and any((tmp_path / "out").iterdir())
