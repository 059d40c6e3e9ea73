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


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"tile": "a"}, "tile must be a whole number, not 'a'"),
        ({"tile": 2.5}, "tile must be a whole number, not 2.5"),
        ({"tile": -1}, "tile must be 0 or more, not -1"),
        ({"overlap": [8, 16]}, "overlap must be a whole number, not \\[8, 16\\]"),
        ({"num_streams": 0}, "num_streams must be 1 or more, not 0"),
        ({"batch": "2"}, "batch must be a whole number, not '2'"),
        ({"device_index": 0.5}, "device_index must be a whole number, not 0.5"),
        ({"fp16": 2}, "fp16 must be 0 or 1, not 2"),
        ({"tiles": 8}, "unknown argument tiles: the arguments are clip, model, weights, device, tile, overlap"),
    ],
)
def test_mistyped_numbers_are_the_filters_errors_naming_the_argument(core, arguments, message):
    """The numbers reach the filter as the script gave them (the signature takes them as ``any``), so a wrong type
    is a ``vs.Error`` that names the argument, never VapourSynth's raw ValueError or a silent truncation."""
    clip = clip_from_arrays(core, image_frames(1, 24, 16))
    with pytest.raises(vs.Error, match=f"^hat.Upscale: {message}"):
        core.hat.Upscale(clip, weights=WEIGHTS, device="cpu", **arguments)


def test_whole_numbers_work_and_the_readme_says_how_types_are_checked(core):
    clip = clip_from_arrays(core, image_frames(1, 24, 16))
    out = core.hat.Upscale(clip, weights=WEIGHTS, device="cpu", tile=8, overlap=4, num_streams=1, batch=1, fp16=0)
    assert (out.width, out.height) == (48, 32)
    out.get_frame(0)
    text = README.read_text()
    assert 'tile="a"' in text and "tile=2.5" in text and "whole number" in text
