"""core.hat.Upscale against hostile clips and arguments, in a real VapourSynth core: NaN and infinite samples,
weights full of NaN, absurd num_streams, frames too big for memory, and what VapourSynth itself does with a
wrongly typed argument before our code runs (documented in vs_filter/README.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs
from safetensors.torch import load_file, save_file
from vs_helpers import GOLDEN_X2, clip_from_arrays, engine_output, frame_array, hat_core, image_frames

from vs_filter.filter import MAX_STREAMS

WEIGHTS = str(GOLDEN_X2)
README = Path(__file__).resolve().parent.parent / "vs_filter" / "README.md"


@pytest.fixture(scope="module")
def core() -> vs.Core:
    return hat_core()


def test_nan_and_inf_samples_give_finite_clamped_frames_matching_the_engine(core):
    frame = image_frames(1, 40, 32)[0].copy()
    frame[3, 4, 0], frame[10, 20, 1], frame[20, 7, 2] = np.nan, np.inf, -np.inf
    out = core.hat.Upscale(clip_from_arrays(core, [frame]), weights=WEIGHTS, device="cpu")
    result = frame_array(out.get_frame(0))
    assert np.isfinite(result).all() and result.min() >= 0 and result.max() <= 1
    cleaned = np.nan_to_num(frame, nan=0.0, posinf=1.0, neginf=0.0)
    np.testing.assert_allclose(result, engine_output(cleaned), atol=1e-5)


def test_weights_full_of_nan_give_a_frame_error_not_a_black_clip(core, tmp_path):
    state = load_file(WEIGHTS)
    path = tmp_path / "nan.safetensors"
    save_file(
        {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}, str(path)
    )
    out = core.hat.Upscale(clip_from_arrays(core, image_frames(1, 24, 16)), weights=str(path), device="cpu")
    with pytest.raises(vs.Error, match="hat.Upscale: frame 0: the model produced NaN or infinite values"):
        out.get_frame(0)


def test_num_streams_above_the_maximum_is_refused(core):
    clip = core.std.BlankClip(format=vs.RGBS, width=24, height=16, length=1)
    with pytest.raises(vs.Error, match=f"num_streams must be at most {MAX_STREAMS}, not 1000"):
        core.hat.Upscale(clip, weights=WEIGHTS, device="cpu", num_streams=1000)
    core.hat.Upscale(clip, weights=WEIGHTS, device="cpu", num_streams=MAX_STREAMS)  # the maximum itself is fine


def test_frames_too_big_for_memory_are_refused_before_any_frame(core):
    clip = core.std.BlankClip(format=vs.RGBS, width=60000, height=60000, length=1)  # no frame is ever made
    with pytest.raises(vs.Error, match=r"60000x60000 frames upscaled x2 need about [\d,.]+ GB.*use fewer num_streams"):
        core.hat.Upscale(clip, weights=WEIGHTS, device="cpu")


def test_mistyped_tile_is_converted_or_refused_by_vapoursynth_as_documented(core):
    """VapourSynth converts arguments to the signature's types before hat.Upscale runs, so the filter cannot
    check them first: a float is truncated, text raises VapourSynth's own ValueError. The README says so."""
    clip = clip_from_arrays(core, image_frames(1, 24, 16))
    with pytest.raises(ValueError, match="invalid literal for int"):
        core.hat.Upscale(clip, weights=WEIGHTS, device="cpu", tile="a")
    truncated = core.hat.Upscale(clip, weights=WEIGHTS, device="cpu", tile=8.9)
    exact = core.hat.Upscale(clip, weights=WEIGHTS, device="cpu", tile=8)
    np.testing.assert_array_equal(frame_array(truncated.get_frame(0)), frame_array(exact.get_frame(0)))
    text = README.read_text()
    assert 'tile="a"' in text and "invalid literal for int()" in text and "tile=3.5" in text
