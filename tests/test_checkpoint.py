"""Config detection and loading: every official variant, the golden configs, wrapped and unwrapped files,
safetensors, and the clear errors for files that are not (complete) HAT checkpoints."""

from __future__ import annotations

import pytest
import torch
from conftest import GOLDEN, golden_config, golden_weights
from safetensors.torch import load_file, save_file

from hat_plugin import PRESETS, CheckpointError, HATConfig, detect_config, load_model, read_state_dict
from hat_plugin.checkpoint import build_model

OFFICIAL_NAMES = sorted({n for n in PRESETS if not n.startswith("Real")})


@pytest.mark.parametrize("name", OFFICIAL_NAMES)
def test_detects_every_official_variant(name: str) -> None:
    sd = build_model(PRESETS[name], device="meta").state_dict()
    assert detect_config(sd) == PRESETS[name]


def test_detects_golden_configs(golden_case: str) -> None:
    expected = HATConfig.from_dict(golden_config(golden_case))
    assert detect_config(load_file(GOLDEN / golden_case / "weights.safetensors")) == expected


def test_detects_configs_off_the_official_grid() -> None:
    config = HATConfig(
        embed_dim=20, depths=(1, 3, 2), num_heads=(2, 4, 5), window_size=4, overlap_ratio=1.0,
        compress_ratio=5, squeeze_factor=4, mlp_ratio=1.5, upscale=8, resi_connection="identity",
    )  # fmt: skip
    assert detect_config(build_model(config, device="meta").state_dict()) == config


@pytest.fixture(scope="module")
def state_dict() -> dict[str, torch.Tensor]:
    return load_file(golden_weights("tiny-x3-w8"))


def _reference_output(sd: dict[str, torch.Tensor]) -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 11, 13)
    with torch.inference_mode():
        return load_model(sd)(x)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"params": sd},
        lambda sd: {"params_ema": sd, "params": {k: torch.zeros_like(v) for k, v in sd.items()}},
        lambda sd: {"params": {f"module.{k}": v for k, v in sd.items()}},
    ],
    ids=["bare", "params", "params_ema-first", "module-prefix"],
)
def test_loads_pth_wrappings(tmp_path, state_dict, wrap) -> None:
    path = tmp_path / "model.pth"
    torch.save(wrap(state_dict), path)
    model = load_model(path)
    assert model.config == detect_config(state_dict)
    torch.manual_seed(0)
    x = torch.rand(1, 3, 11, 13)
    with torch.inference_mode():
        assert torch.equal(model(x), _reference_output(state_dict))


def test_loads_safetensors_and_fp16_weights(tmp_path, state_dict) -> None:
    path = tmp_path / "model.safetensors"
    save_file({k: (v.half() if v.is_floating_point() else v) for k, v in state_dict.items()}, str(path))
    model = load_model(path)
    assert next(model.parameters()).dtype == torch.float32
    assert not next(model.parameters()).requires_grad and not model.training


def test_index_buffers_may_be_absent(tmp_path, state_dict) -> None:
    """Some conversions drop the derived index buffers; they are rebuilt, everything else stays strict."""
    sd = {k: v for k, v in state_dict.items() if not k.startswith("relative_position_index")}
    model = load_model(sd)
    assert torch.equal(model.get_buffer("relative_position_index_OCA"), state_dict["relative_position_index_OCA"])


def _expect_error(tmp_path, payload, match: str, name: str = "bad.pth") -> None:
    path = tmp_path / name
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    else:
        torch.save(payload, path)
    with pytest.raises(CheckpointError, match=match) as info:
        load_model(path)
    assert str(path) in str(info.value), "the message must name the file"


def test_error_truncated_pth(tmp_path, state_dict) -> None:
    good = tmp_path / "good.pth"
    torch.save({"params_ema": state_dict}, good)
    _expect_error(tmp_path, good.read_bytes()[: good.stat().st_size // 2], "truncated or corrupt")


def test_error_truncated_safetensors(tmp_path) -> None:
    data = golden_weights("tiny-x2-w8").read_bytes()
    _expect_error(tmp_path, data[:-1000], "truncated or corrupt", name="bad.safetensors")


def test_error_empty_and_missing(tmp_path) -> None:
    _expect_error(tmp_path, b"", "empty")
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.pth")


def test_error_text_file(tmp_path) -> None:
    _expect_error(tmp_path, b"<html><body>Quota exceeded</body></html>", "a web page or text, not weights")
    _expect_error(tmp_path, b"garbage\n", "a web page or text, not weights")


def test_error_binary_garbage(tmp_path) -> None:
    _expect_error(tmp_path, bytes(range(256)) * 4, r"not a readable weights file \(truncated or corrupt\?\): ")


def test_error_other_architecture(tmp_path) -> None:
    other = {"conv_first.weight": torch.zeros(64, 3, 3, 3), "body.0.rdb1.conv1.weight": torch.zeros(32, 64, 3, 3)}
    _expect_error(tmp_path, other, "not a HAT checkpoint: no layers.0.residual_group.blocks.0")


def test_error_missing_keys(tmp_path, state_dict) -> None:
    sd = dict(state_dict)
    del sd["layers.0.residual_group.blocks.1.mlp.fc2.bias"]
    _expect_error(tmp_path, sd, r"missing keys: layers\.0\.residual_group\.blocks\.1\.mlp\.fc2\.bias")


def test_error_unexpected_keys(tmp_path, state_dict) -> None:
    _expect_error(tmp_path, {**state_dict, "extra.weight": torch.zeros(3)}, "unexpected keys: extra.weight")


def test_error_wrong_shape(tmp_path, state_dict) -> None:
    sd = dict(state_dict)
    sd["layers.0.residual_group.blocks.0.attn.proj.weight"] = torch.zeros(5, 5)
    _expect_error(tmp_path, sd, "do not fit the detected HAT config")


def test_error_corrupt_index_buffer(tmp_path, state_dict) -> None:
    sd = dict(state_dict)
    sd["relative_position_index_OCA"] = sd["relative_position_index_OCA"] % 100
    _expect_error(tmp_path, sd, "relative_position_index_OCA does not hold")


def test_error_pickled_code_is_refused(tmp_path) -> None:
    _expect_error(tmp_path, {"params": {"x": torch.zeros(1)}, "cfg": _NotATensor()}, "refused for safety")


def test_error_not_a_dict(tmp_path) -> None:
    _expect_error(tmp_path, [torch.zeros(1)], "not a state_dict")


class _NotATensor:
    """An arbitrary pickled object: ``weights_only=True`` must refuse it."""


def test_read_state_dict_unwraps(tmp_path, state_dict) -> None:
    path = tmp_path / "m.pth"
    torch.save({"params_ema": {f"module.{k}": v for k, v in state_dict.items()}}, path)
    assert set(read_state_dict(path)) == set(state_dict)
