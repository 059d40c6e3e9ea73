"""LAM attribution maps and the Diffusion Index (hat_plugin.attribution): the pieces against the official
formulas, networks of known receptive field, the batched implementation against the plain reference
(tests/lam_reference.py), and the API's promises (determinism, crops, progress, cancel, out-of-memory, errors)."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DATA, golden_weights
from lam_reference import filter_2d, kernel_2d, objective, reference_lam
from PIL import Image as PILImage
from torch import nn

from hat_plugin import Cancelled, ImageError, OptionError, OutOfMemoryError, Upscaler, load_model
from hat_plugin.attribution import (
    Bicubic,
    colorize,
    diffusion_index,
    gini,
    lam,
    lam_figure,
    render_heatmap,
    window_around,
)
from hat_plugin.attribution.blur import BlurPath, gaussian_kernel_1d, reflect_101
from hat_plugin.attribution.objective import gradient_magnitude_sum
from hat_plugin.attribution.region import AUTO_MARGIN, FULL_IMAGE_LIMIT, plan_region
from hat_plugin.training.degrade import make_lr

RNG_SEED = 7


def _image(size: int = 16, seed: int = RNG_SEED) -> np.ndarray:
    """A smooth-ish random uint8 RGB picture (random pixels, upsampled) with edges everywhere."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 2, size // 2, 3), dtype=np.uint8)
    return np.asarray(PILImage.fromarray(small).resize((size, size), PILImage.Resampling.BICUBIC))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


class LocalNet(nn.Module):
    """A network with a known receptive field: ``layers`` 3x3 box filters, then bicubic x2 upsampling."""

    def __init__(self, layers: int, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale
        self.convs = nn.ModuleList()
        for _ in range(layers):
            conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
            with torch.no_grad():
                conv.weight.zero_()
                for channel in range(3):
                    conv.weight[channel, channel] = 1.0 / 9.0
            self.convs.append(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(x)
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)


def _bicubic_span(first: int, last: int, scale: int, length: int) -> tuple[int, int]:
    """Input rows (or columns) that bicubic output rows ``first..last`` read: 4 taps around (o + 0.5)/s - 0.5."""
    lows = [math.floor((o + 0.5) / scale - 0.5) - 1 for o in range(first, last + 1)]
    return max(0, min(lows)), min(length - 1, max(lows) + 3)


# ------------------------------------------------------------------------------------------------ Gini and DI


def test_gini_of_known_vectors() -> None:
    assert gini(np.full(100, 0.3)) == pytest.approx(0.0, abs=1e-12)
    one_hot = np.zeros(50)
    one_hot[7] = 1.0
    assert gini(one_hot) == pytest.approx(49 / 50, abs=1e-5)
    # sum((2i - n - 1) x_i) / (n sum x) for 1, 2, 3, 4: (-3 - 2 + 3 + 12) / 40
    assert gini(np.array([4.0, 1.0, 3.0, 2.0])) == pytest.approx(0.25, abs=1e-7)
    assert gini(np.array([-1.0, 0.0, 1.0, 2.0])) == pytest.approx(10 / 24, abs=1e-7)  # shifted up to 0..3
    assert diffusion_index(one_hot) == pytest.approx(100 * (1 - gini(one_hot)))
    values = np.array([3.0, -1.0])
    gini(values)
    np.testing.assert_array_equal(values, [3.0, -1.0])  # the input is left alone


def test_gini_matches_the_reference_sum() -> None:
    from lam_reference import gini as reference_gini

    values = np.random.default_rng(1).random((9, 11)) ** 4
    assert gini(values) == pytest.approx(reference_gini(values), rel=1e-12)


# ------------------------------------------------------------------------------------------------ blur path


@pytest.mark.parametrize("size", [9, 8, 5])
@pytest.mark.parametrize("sigma", [1.2, 0.37, 0.0])
def test_kernel_is_the_official_isotropic_kernel(size: int, sigma: float) -> None:
    one_d = gaussian_kernel_1d(size, sigma)
    np.testing.assert_allclose(np.outer(one_d, one_d), kernel_2d(size, sigma), rtol=0, atol=1e-15)
    assert one_d.sum() == pytest.approx(1.0)
    # Taps at offsets -size//2+1 .. size//2: the centre tap (offset 0) is index size//2 - 1 for an even size.
    assert int(np.argmax(one_d)) == (size - 1) // 2
    if sigma == 0.0:
        assert one_d.max() == 1.0 and np.count_nonzero(one_d) == 1


def test_reflect_101_mirrors_without_repeating_the_edge() -> None:
    np.testing.assert_array_equal(reflect_101(np.arange(-3, 7), 4), [3, 2, 1, 0, 1, 2, 3, 2, 1, 0])
    np.testing.assert_array_equal(reflect_101(np.arange(-4, 6), 3), [0, 1, 2, 1, 0, 1, 2, 1, 0, 1])
    far = reflect_101(np.arange(-50, 50), 5)  # far outside: mirrored again and again, always in range
    assert far.min() == 0 and far.max() == 4
    np.testing.assert_array_equal(reflect_101(np.array([-4, 0, 5]), 1), [0, 0, 0])


def test_blur_path_endpoints() -> None:
    image = torch.from_numpy(_image(20).astype(np.float64) / 255).permute(2, 0, 1).contiguous()
    steps, sigma, size = 5, 1.2, 9
    path = BlurPath(image, (0, 0, 20, 20), sigma, steps, size)
    images, derivatives = path.segment(0, steps)
    assert images.shape == derivatives.shape == (steps, 3, 20, 20)
    # The path starts at the input blurred by the full sigma (kernel 0) ...
    fully_blurred = path.blurred(0, 0)[0]
    torch.testing.assert_close(fully_blurred, filter_2d(image, kernel_2d(size, sigma)), rtol=0, atol=1e-12)
    # ... the first image the network sees is one step sharper, sigma * (steps - 1) / steps ...
    first = filter_2d(image, kernel_2d(size, sigma * (steps - 1) / steps))
    torch.testing.assert_close(images[0], first, rtol=0, atol=1e-12)
    # ... and the last is the input itself (sigma 0 is a unit impulse).
    torch.testing.assert_close(images[-1], image, rtol=0, atol=1e-15)
    # Derivatives: the official difference kernel times steps.
    sigmas = np.linspace(sigma, 0, steps + 1)
    for i in range(steps):
        difference = (kernel_2d(size, sigmas[i + 1]) - kernel_2d(size, sigmas[i])) * steps
        torch.testing.assert_close(derivatives[i], filter_2d(image, difference), rtol=0, atol=1e-12)
    # Segments compose: the middle of the path on its own is the same.
    middle_images, middle_derivatives = path.segment(2, 4)
    torch.testing.assert_close(middle_images, images[2:4], rtol=0, atol=1e-15)
    torch.testing.assert_close(middle_derivatives, derivatives[2:4], rtol=0, atol=1e-13)


@pytest.mark.parametrize("size", [9, 8])
def test_blur_path_of_a_crop_is_the_whole_image_cut_out(size: int) -> None:
    image = torch.from_numpy(_image(24).astype(np.float64) / 255).permute(2, 0, 1).contiguous()
    whole_images, whole_derivatives = BlurPath(image, (0, 0, 24, 24), 1.2, 4, size).segment(0, 4)
    images, derivatives = BlurPath(image, (2, 13, 10, 11), 1.2, 4, size).segment(0, 4)
    torch.testing.assert_close(images, whole_images[:, :, 2:12, 13:24], rtol=0, atol=1e-13)
    torch.testing.assert_close(derivatives, whole_derivatives[:, :, 2:12, 13:24], rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------------ objective


@pytest.mark.parametrize(("top", "left", "window"), [(3, 5, 4), (10, 12, 8), (0, 0, 1)])
def test_objective_is_the_official_one(top: int, left: int, window: int) -> None:
    out = torch.rand(2, 3, 14, 17, dtype=torch.float64)
    rows, cols = min(top + window, 13) - top, min(left + window, 16) - left
    ours = gradient_magnitude_sum(out, top, left, rows, cols)
    torch.testing.assert_close(ours, objective(out, top, left, window), rtol=1e-14, atol=0)


def test_a_flat_output_anywhere_poisons_the_gradient_as_officially() -> None:
    """A pixel pair with both differences exactly 0, outside the window, makes the gradient NaN (0 * inf), as the
    official code's square root over the whole output does."""
    out = torch.rand(1, 3, 10, 10, dtype=torch.float64)
    out[:, :, 8:, 8:] = 0.5  # flat corner, far from the window
    out.requires_grad_(True)
    gradient_magnitude_sum(out, 1, 1, 4, 4).backward()
    assert out.grad is not None and torch.isnan(out.grad).any()


def test_exactly_flat_output_everywhere_is_a_clear_error() -> None:
    class Nearest(nn.Module):  # 2x2 blocks of equal pixels: every step's gradient is NaN, then 0
        scale = 2

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, scale_factor=2, mode="nearest")

    with pytest.raises(OptionError, match="zero everywhere"):
        lam(Nearest(), _image(16), 4, 4, window=8, steps=3)


# ------------------------------------------------------------------------------------------------ known fields


@pytest.mark.parametrize("layers", [0, 1, 3])
def test_attribution_stays_inside_a_known_receptive_field(layers: int) -> None:
    image = _image(32)
    x, y, window = 28, 30, 8
    res = lam(LocalNet(layers) if layers else Bicubic(2), image, x, y, window=window, steps=6)
    top, bottom = _bicubic_span(y, y + window, 2, 32)  # output rows y..y+window (the last: the neighbour row)
    left, right = _bicubic_span(x, x + window, 2, 32)
    top, left, bottom, right = max(0, top - layers), max(0, left - layers), bottom + layers, right + layers
    inside = np.zeros_like(res.map, dtype=bool)
    inside[top : bottom + 1, left : right + 1] = True
    assert np.all(res.map[~inside] == 0.0)
    assert res.map[inside].max() == 1.0
    nonzero = np.argwhere(res.map > 0)
    # It reaches the field's edges: the field is not over-estimated by more than a pixel.
    assert nonzero[:, 0].min() <= top + 1 and nonzero[:, 0].max() >= bottom - 1
    assert nonzero[:, 1].min() <= left + 1 and nonzero[:, 1].max() >= right - 1


def test_diffusion_index_grows_with_the_receptive_field() -> None:
    image = _image(32)
    dis = [lam(LocalNet(layers), image, 24, 24, window=8, steps=6).di for layers in (1, 3, 6)]
    assert dis[0] < dis[1] < dis[2]


# ------------------------------------------------------------------------------------------------ vs reference


@pytest.mark.slow
@pytest.mark.parametrize(("x", "y", "window"), [(20, 18, 8), (50, 41, 16)])
def test_fast_matches_the_reference_on_golden_models(golden_case: str, x: int, y: int, window: int) -> None:
    image = _image(16)
    scale = {"tiny-x2-w8": 2, "tiny-x3-w8": 3, "tiny-x4-w16": 4}[golden_case]
    x, y = min(x, 16 * scale - 2), min(y, 16 * scale - 2)  # the second window runs past the edge: cut short
    steps = 4
    ref_map, ref_di = reference_lam(load_model(golden_weights(golden_case)), image, x, y, window, steps)
    res = lam(load_model(golden_weights(golden_case)), image, x, y, window=window, steps=steps, dtype="float64")
    assert res.exact
    # The brief's bar is DI within 0.1 % and correlation 0.9999; in float64 both agree to rounding (~1e-15).
    assert res.di == pytest.approx(ref_di, rel=1e-9)
    assert _corr(res.map, ref_map) >= 1 - 1e-9


@pytest.mark.slow
def test_float32_default_matches_the_float64_reference() -> None:
    image = _image(16)
    model = load_model(golden_weights("tiny-x4-w16"))
    ref_map, ref_di = reference_lam(load_model(golden_weights("tiny-x4-w16")), image, 25, 30, 16, 5)
    res = lam(model, image, 25, 30, steps=5)
    assert res.di == pytest.approx(ref_di, rel=1e-5)  # measured ~1e-7: float32 rounding only
    assert _corr(res.map, ref_map) >= 0.99999


# ------------------------------------------------------------------------------------------------ API promises


@pytest.mark.slow
def test_result_fields_and_determinism() -> None:
    model = load_model(golden_weights("tiny-x2-w8"))
    image = _image(16)
    first = lam(model, image, 9, 11, window=8, steps=4)
    second = lam(model, image, 9, 11, window=8, steps=4)
    np.testing.assert_array_equal(first.map, second.map)
    assert first.di == second.di
    assert first.map.shape == (16, 16) and first.map.max() == 1.0 and first.map.min() >= 0.0
    assert first.attribution.shape == (3, 16, 16)
    np.testing.assert_allclose(np.abs(first.attribution.sum(0)) / np.abs(first.attribution.sum(0)).max(), first.map)
    assert first.di == pytest.approx(diffusion_index(first.map)) and 0 < first.di < 100
    assert (first.x, first.y, first.window, first.scale, first.steps) == (9, 11, 8, 2, 4)


@pytest.mark.slow
def test_batch_size_does_not_change_the_result() -> None:
    model = load_model(golden_weights("tiny-x2-w8"))
    image = _image(16)
    runs = [lam(model, image, 9, 11, window=8, steps=5, batch=b, dtype="float64") for b in (1, 2, 5)]
    assert [r.batch for r in runs] == [1, 2, 5]
    for other in runs[1:]:
        np.testing.assert_allclose(other.map, runs[0].map, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_crop_policy() -> None:
    image = _image(32)
    full = lam(Bicubic(2), image, 30, 26, window=8, steps=4, crop="full")
    cropped = lam(Bicubic(2), image, 30, 26, window=8, steps=4, crop=3)
    assert full.exact and not cropped.exact
    assert cropped.crop.height < 32 and cropped.crop.width < 32
    # Bicubic reads 2 pixels either side: a 3-pixel margin loses nothing.
    np.testing.assert_allclose(cropped.map, full.map, rtol=1e-6, atol=1e-7)
    # A HAT crop lands on its attention-window grid (window 8) and stays close to the whole-image result.
    model = load_model(golden_weights("tiny-x2-w8"))
    whole = lam(model, image, 30, 26, window=8, steps=3, crop="full")
    part = lam(model, image, 30, 26, window=8, steps=3, crop=4)
    assert part.crop.top % 8 == 0 and part.crop.left % 8 == 0
    assert (part.crop.top + part.crop.height) % 8 == 0 and (part.crop.left + part.crop.width) % 8 == 0
    outside = np.ones((32, 32), dtype=bool)
    outside[part.crop.top : part.crop.top + part.crop.height, part.crop.left : part.crop.left + part.crop.width] = 0
    assert np.all(part.map[outside] == 0.0)
    assert _corr(part.map, whole.map) > 0.9


def test_auto_crop_is_the_whole_image_up_to_the_limit() -> None:
    side = int(FULL_IMAGE_LIMIT**0.5)
    assert plan_region((side, side), 4, 100, 100, 16, "auto", snap=16).exact
    big = plan_region((side + 1, side), 4, 100, 100, 16, "auto", snap=16)
    assert not big.exact
    # The footprint (input pixels 25..29) plus AUTO_MARGIN, onto the 16-pixel grid.
    assert big.crop.top == 0 and big.crop.height == -(-(29 + 1 + AUTO_MARGIN) // 16) * 16


@pytest.mark.slow
def test_accepts_an_upscaler_and_a_model_name() -> None:
    image = _image(16)
    model = load_model("hat-tiny-x2")
    direct = lam(model, image, 5, 6, window=8, steps=3)
    with Upscaler(model, device="cpu") as up:
        up.upscale(image)  # its inference-mode caches must not get in the way
        via_engine = lam(up, image, 5, 6, window=8, steps=3)
    by_name = lam("hat-tiny-x2", image, 5, 6, window=8, steps=3, device="cpu")
    np.testing.assert_array_equal(via_engine.map, direct.map)
    np.testing.assert_allclose(by_name.map, direct.map, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_the_given_module_is_left_as_it_was() -> None:
    model = load_model(golden_weights("tiny-x2-w8")).train()
    flags = [p.requires_grad for p in model.parameters()]
    lam(model, _image(16), 5, 6, window=8, steps=2)
    assert model.training
    lam(model, _image(16), 5, 6, window=8, steps=2, dtype=torch.float64)  # works on a float64 copy
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == flags
    with torch.inference_mode():  # callable from inside inference mode too
        assert lam(model, _image(16), 5, 6, window=8, steps=2).di > 0


def test_grey_and_float_inputs() -> None:
    grey = _image(16)[..., 0]
    as_rgb = np.repeat(grey[..., None], 3, axis=2)
    model = Bicubic(2)
    np.testing.assert_array_equal(lam(model, grey, 4, 4, window=8, steps=3).map, lam(model, as_rgb, 4, 4, 8, 3).map)
    floats = as_rgb.astype(np.float32) / 255
    np.testing.assert_allclose(lam(model, floats, 4, 4, 8, 3).map, lam(model, as_rgb, 4, 4, 8, 3).map, atol=1e-6)


def test_progress_and_cancel() -> None:
    model = Bicubic(2)
    seen: list[tuple[int, int | None]] = []
    lam(model, _image(16), 4, 4, window=8, steps=7, batch=3, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(3, 7), (6, 7), (7, 7)]
    stop = threading.Event()
    calls: list[int] = []

    def progress(done: int, total: int | None) -> None:
        calls.append(done)
        stop.set()

    with pytest.raises(Cancelled):
        lam(model, _image(16), 4, 4, window=8, steps=7, batch=2, progress=progress, cancel=stop)
    assert calls == [2]
    with pytest.raises(Cancelled):
        lam(model, _image(16), 4, 4, window=8, steps=7, cancel=lambda: True)


class _Fussy(nn.Module):
    """Bicubic x2 that runs out of memory on batches larger than ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.scale = 2
        self.limit = limit
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)


def test_out_of_memory_halves_the_batch() -> None:
    fussy = _Fussy(limit=2)
    res = lam(fussy, _image(16), 4, 4, window=8, steps=8, batch=8)
    assert res.batch == 2
    assert fussy.sizes[:3] == [8, 4, 2]
    plain = lam(Bicubic(2), _image(16), 4, 4, window=8, steps=8, batch=1)
    np.testing.assert_allclose(res.map, plain.map, rtol=1e-6, atol=1e-7)
    with pytest.raises(OutOfMemoryError, match="out of memory"):
        lam(_Fussy(limit=0), _image(16), 4, 4, window=8, steps=4, batch=4)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x": 32, "y": 0}, OptionError, "outside the output"),
        ({"x": 0, "y": -1}, OptionError, "outside the output"),
        ({"x": 31, "y": 0}, OptionError, "outside the output"),  # the last column has no right neighbour
        ({"x": 2.5}, OptionError, "whole number of output pixels"),
        ({"steps": 0}, OptionError, "steps"),
        ({"window": 0}, OptionError, "window"),
        ({"sigma": -0.5}, OptionError, "sigma"),
        ({"kernel_size": 2.5}, OptionError, "kernel_size"),
        ({"dtype": "float16"}, OptionError, "float32 or float64"),
        ({"crop": -3}, OptionError, "crop"),
        ({"crop": "most"}, OptionError, "crop"),
        ({"model": 42}, OptionError, "model must be"),
        ({"image": np.zeros((16, 16, 5), np.uint8)}, ImageError, "HxWxC"),
        ({"image": np.zeros((1, 16, 3), np.uint8)}, ImageError, "too small"),
        ({"image": np.zeros((16, 16, 3), np.int32)}, ImageError, "pixel type"),
        ({"image": [[0, 1], [2, 3]]}, ImageError, "numpy array"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    arguments: dict[str, object] = {"model": Bicubic(2), "image": _image(16), "x": 4, "y": 4, "steps": 2}
    arguments.update(kwargs)
    model, image = arguments.pop("model"), arguments.pop("image")
    with pytest.raises(error, match=match):
        lam(model, image, **arguments)  # type: ignore[arg-type]


def test_window_around_a_point_stays_inside_the_output() -> None:
    assert window_around(50, 40, 128, 96) == (42, 32)  # centred
    assert window_around(2, 3, 128, 96) == (0, 0)
    assert window_around(127, 95, 128, 96) == (111, 79)  # the window's last row/column still on the grid
    x, y = window_around(127, 95, 128, 96)
    res = lam(Bicubic(4), _image(32)[:24], x, y, steps=2)
    assert (res.x, res.y) == (111, 79)
    assert window_around(5, 5, 10, 10, window=16) == (0, 0)  # an output smaller than the window


def test_unknown_model_name_is_a_clear_error() -> None:
    from hat_plugin import ModelNotFoundError

    with pytest.raises(ModelNotFoundError):
        lam("no-such-model-x9", _image(16), 4, 4, steps=2)


# ------------------------------------------------------------------------------------------------ pictures


def test_colorize_and_render() -> None:
    heat = colorize(np.array([[0.0, 0.5, 1.0]]))
    np.testing.assert_array_equal(heat[0], [[255, 255, 255], [255, 0, 0], [128, 0, 0]])
    assert colorize(np.zeros((3, 4)), size=(6, 8)).shape == (6, 8, 3)
    image = np.full((2, 3, 3), 100, dtype=np.uint8)
    amap = np.array([[0.0, 0.5, 1.0], [0.0, 0.0, 0.0]])
    blended = render_heatmap(image, amap)
    np.testing.assert_array_equal(blended[0, 1], [178, 50, 50])  # (255, 0, 0) * 0.5 + 100 * 0.5, rounded
    np.testing.assert_array_equal(render_heatmap(image, amap, alpha=1.0), image)
    assert render_heatmap(image[..., 0], amap, size=(8, 12)).shape == (8, 12, 3)
    with pytest.raises(ImageError):
        render_heatmap(np.zeros((4, 4, 3), np.uint8), amap)


def test_figure_has_one_row_per_model() -> None:
    image = _image(16)
    one = lam(Bicubic(2), image, 4, 4, window=8, steps=2)
    two = lam(LocalNet(2), image, 4, 4, window=8, steps=2)
    single = lam_figure(image, [("bicubic", one)])
    double = lam_figure(image, [("bicubic", one), ("local", two)])
    assert single.dtype == np.uint8 and single.shape[2] == 3
    assert double.shape[1] == single.shape[1] and double.shape[0] > single.shape[0] + 32
    other = lam(Bicubic(2), image, 6, 4, window=8, steps=2)
    with pytest.raises(OptionError, match="one window"):
        lam_figure(image, [("a", one), ("b", other)])


# ------------------------------------------------------------------------------------------------ quality check


@pytest.mark.parametrize("name", ["camera", "chelsea", "coffee", "rocket"])
def test_bicubic_diffusion_index_is_small_on_held_out_photos(name: str) -> None:
    """Bicubic reads 4x4 input pixels per output pixel: its DI is bounded by the footprint's share of the image."""
    hr = np.asarray(PILImage.open(DATA / "quality" / f"{name}.png").convert("RGB"))
    lr = make_lr(hr, 4)
    x = y = hr.shape[0] // 2 - 8
    res = lam(Bicubic(4), lr, x, y, steps=10)
    top, bottom = _bicubic_span(y, y + 16, 4, lr.shape[0])
    left, right = _bicubic_span(x, x + 16, 4, lr.shape[1])
    footprint = (bottom - top + 1) * (right - left + 1)
    assert res.di <= 100 * footprint / res.map.size + 1e-3
    assert res.di < 3.0
