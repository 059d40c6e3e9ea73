"""The engine's contract with its front ends: keyword-only options, checked values, a context manager that frees
the model, clamped and NaN-safe results, one error hierarchy, one model-spec rule, no process-wide side effects."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import golden_weights
from safetensors.torch import save_file

import hat_plugin
from hat_plugin import errors, weights
from hat_plugin.engine import Upscaler
from hat_plugin.weights.manifest import PACKAGE_MANIFEST

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def up() -> Upscaler:
    return Upscaler(golden_weights("tiny-x2-w8"), device="cpu")


def test_options_are_one_object_or_keywords() -> None:
    params = inspect.signature(Upscaler).parameters
    positional = [p.name for p in params.values() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert positional == ["model", "options"]
    with pytest.raises(hat_plugin.OptionError, match="options must be an EngineOptions, not str"):
        Upscaler(golden_weights(), "cpu")  # type: ignore[arg-type]
    options = hat_plugin.EngineOptions(device="cpu", tile=20, overlap=4)
    up = Upscaler(golden_weights(), options, tile=32)
    assert up.options == options.replace(tile=32) and (up.tile, up.overlap) == (32, 4)
    assert options.tile == 20, "the caller's options are not changed"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tile": 3.5}, "tile must be a whole number, not 3.5"),
        ({"tile": "a"}, "tile must be a whole number, not 'a'"),
        ({"tile": True}, "tile must be a whole number"),
        ({"tile": -1}, "tile must be 0 or more, not -1"),
        ({"overlap": -8}, "overlap must be 0 or more"),
        ({"batch": None}, "batch must be a whole number"),
        ({"precision": "fp8"}, "unknown precision 'fp8'"),
    ],
)
def test_bad_options_are_option_errors(options: dict, message: str) -> None:
    with pytest.raises(hat_plugin.OptionError, match=message) as info:
        Upscaler(golden_weights(), device="cpu", **options)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("model", [None, "", "   ", 3])
def test_no_model_is_an_option_error(model: object) -> None:
    with pytest.raises(hat_plugin.OptionError, match="model|no model given"):
        Upscaler(model, device="cpu")  # type: ignore[arg-type]


def test_context_manager_frees_the_model_it_loaded() -> None:
    with Upscaler(golden_weights(), device="cpu") as engine:
        model = engine.model
        engine.upscale_tensor(torch.rand(1, 3, 8, 8))
    assert next(model.parameters()).device.type == "meta"  # the weights' memory is released
    with pytest.raises(hat_plugin.HATError, match="closed"):
        engine.upscale_tensor(torch.rand(1, 3, 8, 8))


def test_close_leaves_the_callers_own_module_alone() -> None:
    net = hat_plugin.load_model(golden_weights())
    with Upscaler(net, device="cpu") as engine:
        engine.upscale_tensor(torch.rand(1, 3, 8, 8))
    assert next(net.parameters()).device.type == "cpu"
    assert torch.isfinite(net(torch.rand(1, 3, 8, 8))).all()


def test_upscale_tensor_clamps_like_upscale(up: Upscaler) -> None:
    torch.manual_seed(1)
    x = torch.rand(1, 3, 16, 16)
    raw = up.model(x)
    assert raw.min() < 0 or raw.max() > 1, "the golden random weights overshoot [0, 1]"
    out = up.upscale_tensor(x)
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(out, raw.clamp(0, 1))
    as_image = up.upscale(np.ascontiguousarray(x[0].permute(1, 2, 0).numpy()))  # float32 HxWx3 in, same out
    torch.testing.assert_close(torch.from_numpy(as_image).permute(2, 0, 1), out[0])


def test_non_finite_input_is_cleaned(up: Upscaler) -> None:
    x = torch.rand(1, 3, 16, 16)
    dirty = x.clone()
    dirty[0, 0, 3, 4] = float("nan")
    dirty[0, 1, 5, 6] = float("inf")
    clean = x.clone()
    clean[0, 0, 3, 4] = 0.0
    clean[0, 1, 5, 6] = 1.0
    out = up.upscale_tensor(dirty)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, up.upscale_tensor(clean))


def test_weights_full_of_nan_are_an_error_not_black_pixels(tmp_path: Path) -> None:
    net = hat_plugin.load_model(golden_weights())
    state = {k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    path = tmp_path / "nan.safetensors"
    save_file(state, str(path))
    with pytest.raises(hat_plugin.HATError, match="NaN or infinite"):
        Upscaler(path, device="cpu").upscale(np.zeros((8, 8, 3), np.uint8))


def test_numpy_subclasses_are_taken_as_arrays(up: Upscaler) -> None:
    with pytest.warns(PendingDeprecationWarning):
        grey = np.matrix(np.full((8, 8), 0.5, dtype=np.float32))
    out = up.upscale(grey)
    assert type(out) is np.ndarray and out.shape == (16, 16)


def test_every_error_is_a_hat_error_and_a_builtin() -> None:
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)]
    assert len(classes) >= 12
    for cls in classes:
        assert issubclass(cls, errors.HATError), cls
        if cls not in (errors.HATError, errors.Cancelled):
            assert any(b in cls.__mro__ for b in (ValueError, OSError, RuntimeError, LookupError, MemoryError)), cls
        assert getattr(hat_plugin, cls.__name__, cls) is cls  # the package exports the same classes


def test_the_out_of_memory_text_is_one_sentence_with_the_ways_out() -> None:
    text = errors.out_of_memory_message("cuda:0", 64, "frame 3")
    assert text.startswith("out of memory on cuda:0 even with 64px tiles (frame 3)")
    assert "smaller tile" in text and "CPU" in text


# ---- model specs: one rule for every front end --------------------------------------------------------------


def test_resolve_takes_a_file_as_is(tmp_path: Path) -> None:
    assert weights.resolve(golden_weights()) == golden_weights()
    assert weights.resolve(str(golden_weights())) == golden_weights()


def test_resolve_refuses_folders_pipes_and_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(hat_plugin.CheckpointError, match="is a folder"):
        weights.resolve(tmp_path)
    fifo = tmp_path / "w.pth"
    os.mkfifo(fifo)
    with pytest.raises(hat_plugin.CheckpointError, match="not a regular file"):
        weights.resolve(fifo)
    with pytest.raises(hat_plugin.CheckpointError, match="file not found"):
        weights.resolve(tmp_path / "missing.safetensors")


def test_resolve_looks_names_up_in_the_manifest() -> None:
    assert weights.resolve("hat-tiny-x2").name == "hat-tiny-x2.safetensors"
    with pytest.raises(hat_plugin.ModelNotFoundError, match="Did you mean 'HAT-S_SRx4'"):
        weights.resolve("HAT-S_SRx5")


def test_model_label_is_the_short_name() -> None:
    assert weights.model_label("HAT-TINY-X2") == "hat-tiny-x2"
    assert weights.model_label("/models/My_HAT.safetensors") == "My_HAT"
    assert weights.model_label(Path("a/HAT_SRx4.pth")) == "HAT_SRx4"


def test_default_model_prefers_what_works_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAT_PLUGIN_CACHE", str(tmp_path))
    entry, why = weights.default_model(4)
    assert entry.name == "hat-tiny-x4" and "bundled, works offline" in why
    entry, why = weights.default_model(3)
    assert entry.name == "hat-tiny-x3" and "bundled, works offline" in why
    official = [e for e in json.loads(PACKAGE_MANIFEST.read_text())["models"] if not e.get("bundled")]
    manifest = tmp_path / "official.json"
    manifest.write_text(json.dumps({"format": 1, "models": official}))
    monkeypatch.setenv("HAT_PLUGIN_MANIFEST", str(manifest))
    entry, why = weights.default_model(3)  # nothing of that scale ready: the recommended download
    assert entry.scale == 3 and not entry.bundled and entry.origin == "official" and "downloaded on first use" in why


# ---- no process-wide side effects ---------------------------------------------------------------------------


@pytest.mark.slow
def test_building_an_engine_changes_nothing_process_wide() -> None:
    code = (
        "import hat_plugin, hat_plugin.runtime as r\n"
        f"hat_plugin.Upscaler({str(golden_weights())!r}, device='cpu')\n"
        "print(r.tune_allocator.cache_info().currsize)\n"
        "hat_plugin.configure_process()\n"
        "print(r.tune_allocator.cache_info().currsize)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.split() == ["0", "1"]
