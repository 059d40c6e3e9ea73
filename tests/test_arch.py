"""The network itself: golden outputs, official state_dict layout, padding, half-precision safety."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from conftest import GOLDEN, golden_config
from safetensors.torch import load_file

from hat_plugin import HAT, PRESETS, HATConfig, arch, load_model
from hat_plugin.arch import pad_to_multiple, relative_position_index_oca, relative_position_index_sa
from hat_plugin.checkpoint import build_model

OFFICIAL = json.loads((GOLDEN / "official_state_dicts.json").read_text())


def _golden_model(case: str, dtype: torch.dtype) -> HAT:
    model = HAT(HATConfig.from_dict(golden_config(case))).eval()
    model.load_state_dict(load_file(GOLDEN / case / "weights.safetensors"), strict=True)
    return model.to(dtype)


@pytest.mark.parametrize(
    ("dtype", "key", "tol"), [(torch.float64, "expected_f64", 1e-8), (torch.float32, "expected_f32", 2e-5)]
)
def test_golden_outputs(golden_case: str, dtype: torch.dtype, key: str, tol: float) -> None:
    case = load_file(GOLDEN / golden_case / "case.safetensors")
    model = _golden_model(golden_case, dtype)
    with torch.inference_mode():
        out = model(case["input"].to(dtype))
    expected = case[key].to(dtype)
    assert out.shape == expected.shape
    assert (out - expected).abs().max().item() <= tol


@pytest.mark.slow
def test_golden_outputs_repeatable_with_cached_bias() -> None:
    """The second forward uses the cached biases/masks and must give the same numbers as the first."""
    case = load_file(GOLDEN / "tiny-x4-w16" / "case.safetensors")
    model = _golden_model("tiny-x4-w16", torch.float32)
    with torch.inference_mode():
        first, second = model(case["input"]), model(case["input"])
    assert torch.equal(first, second)
    assert (first - case["expected_f32"]).abs().max() <= 2e-5


@pytest.mark.slow
def test_bias_cache_follows_new_weights() -> None:
    """Loading other weights into a model that already ran must not reuse the stale cached bias."""
    case = load_file(GOLDEN / "tiny-x2-w8" / "case.safetensors")
    model = _golden_model("tiny-x2-w8", torch.float32)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.inference_mode():
        before = model(case["input"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.mul_(3)
    with torch.inference_mode():
        changed = model(case["input"])
    model.load_state_dict(sd)
    with torch.inference_mode():
        restored = model(case["input"])
    assert not torch.allclose(before, changed)
    assert torch.equal(before, restored)


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_state_dict_layout(name: str) -> None:
    """Each official variant builds (on the meta device) with exactly the published keys, shapes and dtypes."""
    entry = OFFICIAL[name]
    settings: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in entry["config"].items()}
    config = HATConfig(**settings)
    assert PRESETS[name] == config
    model = build_model(config, device="meta")
    sd = model.state_dict()
    expected = entry["state_dict"]
    assert list(sd) == list(expected), "key order differs from the official checkpoints"
    for key, (shape, dtype) in expected.items():
        assert list(sd[key].shape) == shape, key
        assert str(sd[key].dtype).removeprefix("torch.") == dtype, key
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == entry["num_parameters"]


def test_presets_cover_every_official_file() -> None:
    names = {f"HAT-S_SRx{s}" for s in (2, 3, 4)} | {f"HAT_SRx{s}" for s in (2, 3, 4)}
    names |= {f"HAT_SRx{s}_ImageNet-pretrain" for s in (2, 3, 4)} | {
        f"HAT-L_SRx{s}_ImageNet-pretrain" for s in (2, 3, 4)
    }
    names |= {"Real_HAT_GAN_SRx4", "Real_HAT_GAN_SRx4_sharper"}
    assert names <= set(PRESETS)
    assert len(names) == 14


def test_index_buffers_match_official_samples() -> None:
    """Sample values of the official buffers (hat.md 1.6), including the negative OCA indices."""
    sa = relative_position_index_sa(16)
    oca = relative_position_index_oca(16, 24)
    assert sa[0, :5].tolist() == [480, 479, 478, 477, 476]
    assert sa[0, -1] == 0 and sa[-1, 0] == 960
    assert oca[0, :5].tolist() == [-280, -279, -278, -277, -276]
    assert oca[0, -1] == 640 and oca[-1, 0] == -880 and oca[-1, -1] == 40
    assert (oca.min(), oca.max()) == (-880, 640)


def test_padding_reflects_then_replicates() -> None:
    x = torch.arange(12.0).view(1, 1, 3, 4)
    padded = pad_to_multiple(x, 8)
    assert padded.shape == (1, 1, 8, 8)
    assert padded[0, 0, 3].tolist()[:4] == x[0, 0, 1].tolist()  # reflect: row 3 mirrors row 1
    assert torch.equal(padded[0, 0, 7], padded[0, 0, 4])  # beyond what 3 rows can reflect: replicate
    assert torch.equal(pad_to_multiple(torch.ones(1, 3, 16, 8), 8), torch.ones(1, 3, 16, 8))


@pytest.mark.parametrize("size", [(1, 1), (1, 9), (5, 3), (8, 8), (17, 8)])
def test_any_input_size(size: tuple[int, int]) -> None:
    model = load_model(GOLDEN / "tiny-x2-w8" / "weights.safetensors")
    with torch.inference_mode():
        out = model(torch.rand(1, 3, *size))
    assert out.shape == (1, 3, size[0] * 2, size[1] * 2)
    assert torch.isfinite(out).all()


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_close_to_fp32(golden_case: str, dtype: torch.dtype) -> None:
    case = load_file(GOLDEN / golden_case / "case.safetensors")
    ref = _golden_model(golden_case, torch.float32)
    half = _golden_model(golden_case, dtype)
    with torch.inference_mode():
        expected, out = ref(case["input"]), half(case["input"])
    assert out.dtype == torch.float32
    err = (out - expected).abs()
    # bf16 keeps 8 mantissa bits, fp16 11: relative to the output's range (~[-3, 3] for these random weights).
    assert err.max() < (0.1 if dtype == torch.bfloat16 else 0.01)
    assert err.mean() < (0.01 if dtype == torch.bfloat16 else 1e-3)


def test_fp16_residual_stream_cannot_overflow() -> None:
    """The residual stream sums every block's output and is not normalised before each RHAG's conv: with large
    activations it leaves fp16's range (65504), and a plain ``model.half()`` of the official code gives inf/NaN.

    We keep the stream and LayerNorm statistics in fp32 and run that conv on a power-of-two rescaled input, so
    the output stays finite and close to fp32 while the matrix products still run in fp16.
    """
    x = torch.rand(1, 3, 24, 24)
    ref = _golden_model("tiny-x2-w8", torch.float32)
    with torch.no_grad():  # large (but fp16-representable) biases: each RHAG adds up to 60000 to the stream
        for layer in ref.layers:
            layer.conv.bias.copy_(torch.linspace(-6e4, 6e4, layer.conv.bias.numel()))
    half = HAT(ref.config).eval()
    half.load_state_dict(ref.state_dict())
    half.half()
    assert all(torch.isfinite(p).all() for p in half.parameters()), "the weights themselves must fit in fp16"
    stream: dict[str, float] = {}

    def record(module: torch.nn.Module, inputs: object, output: torch.Tensor) -> None:
        stream["max"] = output.abs().max().item()

    ref.layers[-1].register_forward_hook(record)
    with torch.inference_mode():
        expected = ref(x)
        out = half(x)
    assert stream["max"] > 65504, "the test must push the stream past fp16's range"
    assert torch.isfinite(out).all()
    assert (out - expected).abs().max() < 0.05


def test_inference_linears_and_window_sums_match_the_plain_forms() -> None:
    """In inference on the CPU the Linear layers run as 1x1 convolutions (bias added by oneDNN's kernel) and the
    window outputs are added to the stream through a strided view: the same numbers as ``F.linear`` and the plain
    window reverse, on the 2-D, 3-D and 4-D inputs the network gives them (float64 calls the layer itself)."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(24, 40)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        for shape in ((300, 24), (5, 64, 24), (1, 16, 16, 24)):
            x = torch.randn(shape)
            with torch.inference_mode():
                fast = arch._linear(layer, x)
            plain = layer(x)
            assert fast.shape == plain.shape and fast.is_contiguous()
            assert (fast - plain.detach()).abs().max() <= 1e-5
        with torch.inference_mode():
            x64 = torch.randn(7, 24, dtype=torch.float64)
            assert torch.equal(arch._linear(layer.double(), x64), layer(x64))
    finally:
        torch.set_num_threads(threads)
    b, h, w, c, ws = 2, 16, 32, 6, 8
    stream, image = torch.randn(b, h, w, c), torch.randn(b, h, w, c)
    windows = arch._window_partition(image, ws)
    total = arch._add_windows(stream, windows, ws)
    assert total.is_contiguous() and torch.equal(total, stream + image)
