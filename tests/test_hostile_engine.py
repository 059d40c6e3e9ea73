"""The engine API and the checkpoint reader against careless and hostile input: odd array types and option values,
NaN/inf pixels, arrays and tensors too big for memory (made without memory: broadcast views), weights full of NaN,
pickles with code in them, weights files under the wrong extension, folders and pipes given as weights."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch
from conftest import golden_weights
from safetensors.torch import load_file, save_file

from hat_plugin import Upscaler, load_model
from hat_plugin.checkpoint import read_state_dict
from hat_plugin.errors import CheckpointError, HATError, ImageError, OptionError, OutOfMemoryError

WEIGHTS = golden_weights("tiny-x2-w8")


@pytest.fixture(scope="module")
def up() -> Upscaler:
    return Upscaler(WEIGHTS, device="cpu")


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_np_matrix_is_taken_as_a_plain_array(up):
    values = np.linspace(0, 1, 8 * 8).reshape(8, 8)
    out = up.upscale(np.matrix(values))
    assert type(out) is np.ndarray and out.shape == (16, 16)
    np.testing.assert_array_equal(out, up.upscale(values))


@pytest.mark.parametrize(("option", "value"), [("tile", 3.5), ("tile", "a"), ("overlap", None), ("batch", True)])
def test_wrong_option_types_are_option_errors(option, value):
    with pytest.raises(OptionError, match=f"{option} must be a whole number"):
        Upscaler(WEIGHTS, device="cpu", **{option: value})


@pytest.mark.parametrize("model", [None, "", "   "])
def test_missing_model_is_an_option_error(model):
    with pytest.raises(OptionError) as info:
        Upscaler(model, device="cpu")
    assert isinstance(info.value, HATError) and "not found" not in str(info.value)


def test_nan_and_inf_pixels_are_cleaned_like_the_numpy_path(up):
    image = np.random.default_rng(3).random((12, 10, 3)).astype(np.float32)
    dirty = image.copy()
    dirty[2, 3, 0], dirty[5, 5, 1], dirty[7, 1, 2] = np.nan, np.inf, -np.inf
    cleaned = image.copy()
    cleaned[2, 3, 0], cleaned[5, 5, 1], cleaned[7, 1, 2] = 0.0, 1.0, 0.0
    out = up.upscale(dirty)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(out, up.upscale(cleaned))
    tensor = torch.from_numpy(dirty).permute(2, 0, 1)
    result = up.upscale_tensor(tensor)
    assert torch.isfinite(result).all()
    torch.testing.assert_close(result, up.upscale_tensor(torch.from_numpy(cleaned).permute(2, 0, 1)))


def test_huge_array_is_refused_before_any_allocation(up):
    huge = np.broadcast_to(np.zeros(1, np.uint8), (200_000, 200_000, 3))  # 120 GB that take no memory
    with pytest.raises(OutOfMemoryError, match=r"a 200000x200000 image upscaled x2 needs about [\d,.]+ GB") as info:
        up.upscale(huge)
    assert isinstance(info.value, HATError)


def test_huge_tensor_is_refused_before_any_allocation(up):
    huge = torch.zeros(1, 3, 1, 1).expand(1, 3, 100_000, 100_000)
    with pytest.raises(OutOfMemoryError, match=r"the result of \(1, 3, 100000, 100000\) x2 needs 480.0 GB"):
        up.upscale_tensor(huge)


def test_weights_full_of_nan_raise_instead_of_black_pixels(tmp_path):
    state = load_file(str(WEIGHTS))
    path = tmp_path / "nan.safetensors"
    save_file(
        {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}, str(path)
    )
    with pytest.raises(HATError, match="NaN or infinite values: its weights are damaged"):
        Upscaler(path, device="cpu").upscale(np.zeros((8, 8, 3), np.uint8))


# ---------------------------------------------------------------------------------------------- checkpoints


class _Payload:
    """Stands for any non-tensor object in a pickle; its class is a global torch refuses with weights_only."""


def _system_call():
    """A pickled call of os.system: what a malicious checkpoint carries."""

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    return Evil()


@pytest.mark.parametrize("payload", [_Payload, _system_call], ids=["class", "os.system"])
def test_pickled_objects_are_refused_without_advising_unsafe_loading(tmp_path, payload):
    path = tmp_path / "model.pth"
    torch.save({"params": {"w": torch.zeros(1)}, "extra": payload()}, path)
    with pytest.raises(CheckpointError, match="holds Python objects besides tensors, which are refused for safety"):
        read_state_dict(path)
    try:
        read_state_dict(path)
    except CheckpointError as exc:
        assert "weights_only" not in str(exc) and str(path) in str(exc)


def test_safetensors_renamed_pth_and_pth_renamed_safetensors_load_by_content(tmp_path):
    renamed = tmp_path / "model.pth"
    renamed.write_bytes(WEIGHTS.read_bytes())
    torch_file = tmp_path / "other.safetensors"
    torch.save({"params_ema": load_file(str(WEIGHTS))}, torch_file)
    expected = read_state_dict(WEIGHTS)
    for path in (renamed, torch_file):
        got = read_state_dict(path)
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert load_model(renamed).config == load_model(WEIGHTS).config


def test_random_bytes_named_pth_do_not_advise_unsafe_loading(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError, match="not a PyTorch or safetensors file") as info:
        read_state_dict(path)
    assert "weights_only" not in str(info.value)


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_weights_path_that_is_a_folder_or_a_pipe_gets_its_own_message(tmp_path, kind):
    path = tmp_path / "model.pth"
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    expected = "is a folder, not a weights file" if kind == "folder" else "not a regular file"
    with pytest.raises(CheckpointError, match=expected):
        read_state_dict(path)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            Upscaler(str(path), device="cpu")
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(60)
    assert outcome and isinstance(outcome[0], CheckpointError) and expected in str(outcome[0])


# ------------------------------------------------------------------------------------------- transparency


def test_fully_transparent_image_stays_fully_transparent(up):
    """The network rings faintly around nothing; upscaled as a grey image, an all-zero alpha came back with values
    up to 19 on about 1 % of the pixels. Transparent in, transparent out."""
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (40, 48, 4), dtype=np.uint8)
    image[..., 3] = 0
    out = up.upscale(image)
    assert out.shape == (80, 96, 4) and out[..., 3].max() == 0


def test_transparent_background_around_a_shape_gains_no_specks(up):
    image = np.zeros((48, 48, 4), np.uint8)
    image[16:32, 16:32] = (200, 60, 30, 255)  # an opaque square on nothing
    out = up.upscale(image)
    alpha = out[..., 3]
    assert alpha[32:64, 32:64].mean() > 50  # the square is kept (random weights: not exactly opaque) ...
    far = np.ones_like(alpha, bool)
    far[28:70, 28:70] = False  # ... and more than a pixel away from it, nothing appears
    assert alpha[far].max() == 0


# -------------------------------------------------------------------------------------- odd tensors


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (torch.zeros(1, 3, 8, 8, dtype=torch.bool), "expected float pixels in \\[0, 1\\], got a bool tensor"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "got a uint8 tensor"),
        (torch.zeros(0, 3, 8, 8), "cannot upscale an empty batch"),
        (torch.zeros(1, 3, 8, 8, device="meta"), "on the meta device"),
    ],
    ids=["bool", "uint8", "empty batch", "meta"],
)
def test_tensors_the_engine_cannot_take_are_image_errors(up, tensor, message):
    with pytest.raises(ImageError, match=message):
        up.upscale_tensor(tensor)
