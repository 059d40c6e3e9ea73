"""Community checkpoints: the layouts the trainers write (official, BasicSR/neosr/traiNNer-redux wrappers and
prefixes, fp16/bf16 tensors, x1 models, safetensors with metadata), all detected and loaded strictly, and the RGB
mean as a property of the model: from the user, the manifest entry or the file's metadata, checked against a
forward computed with the mean applied by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import golden_weights
from safetensors.torch import load_file, save_file

from hat_plugin import CheckpointError, HATConfig, OptionError, Upscaler, detect_config, load_model
from hat_plugin.checkpoint import build_model, read_metadata, stated_rgb_mean
from hat_plugin.rgb_mean import OFFICIAL_RGB_MEAN, describe_rgb_mean, mean_from_metadata, parse_rgb_mean


@pytest.fixture(scope="module")
def state_dict() -> dict[str, torch.Tensor]:
    return load_file(golden_weights("tiny-x3-w8"))


def _input() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(1, 3, 12, 10)


def _forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x)


@pytest.mark.parametrize(
    ("layout", "tolerance"),
    [
        (lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()}, 0.0),  # a torch.compile'd network saved as is
        (lambda sd: {"params_ema": {f"module.{k}": v for k, v in sd.items()}, "params": sd}, 0.0),
        (lambda sd: {k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in sd.items()}, 0.05),
    ],
    ids=["compile-prefix", "params_ema-with-module", "bf16"],
)
def test_trainer_layouts_load_strictly(tmp_path, state_dict, layout, tolerance) -> None:
    path = tmp_path / "model.pth"
    torch.save(layout(state_dict), path)
    model = load_model(path)
    assert model.config == detect_config(state_dict)
    assert next(model.parameters()).dtype == torch.float32
    reference = _forward(load_model(state_dict), _input())
    assert torch.allclose(_forward(model, _input()), reference, atol=tolerance, rtol=0)


def test_params_ema_is_preferred_over_params(tmp_path, state_dict) -> None:
    other = {k: (v * 0.5 if v.is_floating_point() else v) for k, v in state_dict.items()}
    path = tmp_path / "both.pth"
    torch.save({"params": other, "params_ema": state_dict}, path)
    assert torch.equal(_forward(load_model(path), _input()), _forward(load_model(state_dict), _input()))


def test_an_extra_key_is_still_refused_after_unwrapping(tmp_path, state_dict) -> None:
    path = tmp_path / "extra.pth"
    torch.save({"params_ema": {**state_dict, "absolute_pos_embed": torch.zeros(1, 4, 48)}}, path)
    with pytest.raises(CheckpointError, match="unexpected keys: absolute_pos_embed"):
        load_model(path)


def test_x1_restoration_model_keeps_the_size(tmp_path) -> None:
    config = HATConfig(
        embed_dim=12, depths=(1,), num_heads=(2,), window_size=4, compress_ratio=3, squeeze_factor=4,
        num_feat=8, upscale=1,
    )  # fmt: skip
    torch.manual_seed(0)
    path = tmp_path / "1x_model.safetensors"
    save_file({k: v.contiguous() for k, v in build_model(config).state_dict().items()}, str(path))
    model = load_model(path)
    assert model.config.upscale == 1 and not any(k.startswith("upsample.") for k in model.state_dict())
    image = np.random.default_rng(0).random((9, 11, 3), dtype=np.float32)
    out = Upscaler(model, device="cpu", precision="fp32").upscale(image)
    assert out.shape == image.shape


def test_rgb_mean_spellings() -> None:
    assert parse_rgb_mean("official") == OFFICIAL_RGB_MEAN
    assert parse_rgb_mean(" 0.5 ") == (0.5, 0.5, 0.5)
    assert parse_rgb_mean("0.4,0.45, 0.5") == (0.4, 0.45, 0.5)
    assert parse_rgb_mean([0.1, 0.2, 0.3]) == (0.1, 0.2, 0.3)
    assert describe_rgb_mean(OFFICIAL_RGB_MEAN) == "official"
    assert describe_rgb_mean((0.5, 0.5, 0.5)) == "0.5"
    assert describe_rgb_mean((0.4, 0.45, 0.5)) == "0.4,0.45,0.5"
    for bad in ("", "half", "0.5,0.5", "1.5", "nan", "0.1,0.2,0.3,0.4"):
        with pytest.raises(OptionError, match="not 'official'"):
            parse_rgb_mean(bad)


def test_mean_from_safetensors_metadata(tmp_path, state_dict) -> None:
    plain = tmp_path / "plain.safetensors"
    save_file(state_dict, str(plain))
    assert read_metadata(plain) == {} and stated_rgb_mean(plain) is None
    assert load_model(plain).config.input_mean == OFFICIAL_RGB_MEAN

    keyed = tmp_path / "neosr.safetensors"
    save_file(state_dict, str(keyed), metadata={"rgb_mean": "0.5"})
    assert load_model(keyed).config.rgb_mean == (0.5, 0.5, 0.5)

    trained = tmp_path / "trained.safetensors"
    save_file(state_dict, str(trained), metadata={"config": json.dumps({"rgb_mean": [0.3, 0.4, 0.5]})})
    assert load_model(trained).config.rgb_mean == (0.3, 0.4, 0.5)
    assert load_model(trained, rgb_mean="official").config.input_mean == OFFICIAL_RGB_MEAN  # the user wins

    assert mean_from_metadata({"config": json.dumps({"rgb_mean": None})}) is None
    with pytest.raises(OptionError):
        mean_from_metadata({"rgb_mean": "grey"})


def test_a_mean_for_a_model_that_is_not_rgb_is_refused(state_dict) -> None:
    config = HATConfig(embed_dim=12, depths=(1,), num_heads=(2,), window_size=4, compress_ratio=3, squeeze_factor=4,
                       num_feat=8, upscale=2, in_chans=1)  # fmt: skip
    sd = build_model(config).state_dict()
    with pytest.raises(CheckpointError, match="3-channel"):
        load_model(sd, rgb_mean="0.5")


def test_mean_half_matches_a_forward_with_the_mean_applied_by_hand(tmp_path, state_dict) -> None:
    """A neosr model (mean 0.5): the network with a zero mean, fed x - 0.5, plus 0.5 afterwards, is the reference.
    The official mean gives a visibly different colour, so the check has teeth."""
    x = _input()
    zero = load_model(state_dict, rgb_mean="0")
    with torch.inference_mode():
        reference = zero(x - 0.5) + 0.5
    half = load_model(state_dict, rgb_mean="0.5")
    assert torch.allclose(_forward(half, x), reference, atol=1e-5, rtol=0)
    official = _forward(load_model(state_dict), x)
    shift = (official - reference).mean(dim=(0, 2, 3))
    assert shift.abs().max() > 0.01, "the official mean must shift the colour of a 0.5-mean model"

    path = tmp_path / "neosr.safetensors"
    save_file(state_dict, str(path), metadata={"rgb_mean": "0.5"})
    image = x[0].permute(1, 2, 0).numpy().copy()
    engine_out = Upscaler(path, device="cpu", precision="fp32", tile=0).upscale(image)
    expected = reference[0].permute(1, 2, 0).numpy()
    assert np.allclose(engine_out, np.clip(expected, 0, 1), atol=1e-4)
    assert Upscaler(path, device="cpu", precision="fp32").config.rgb_mean == (0.5, 0.5, 0.5)
