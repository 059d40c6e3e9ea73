"""The one host <-> device staging path (``transfer.Staging``) and the frame upscaler built on it, on the CPU:
slots and their limit, reused buffers, frames packed and unpacked, and frames through the engine against the
plain composition of their steps. The CUDA half (pinned buffers, streams) is in tests/test_cuda.py."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch
from conftest import on_threads

from hat_plugin import Upscaler
from hat_plugin.frame_upscaler import FrameUpscaler, PlanarRGB
from hat_plugin.transfer import Staging, StagingSlot
from hat_plugin.video.colour import ColourConverter, PixelLayout, source_colour

CPU = torch.device("cpu")


def test_a_limited_staging_runs_at_most_its_slots_at_once() -> None:
    staging = Staging(CPU, limit=2)
    inside = threading.Barrier(2, timeout=10)
    third_in = threading.Event()
    release = threading.Event()
    held: list[StagingSlot] = []

    def hold() -> None:
        with staging.slot() as slot:
            held.append(slot)
            inside.wait()
            release.wait(10)

    def late() -> None:
        with staging.slot() as slot:
            held.append(slot)
            third_in.set()

    first = [threading.Thread(target=hold) for _ in range(2)]
    for thread in first:
        thread.start()
    third = threading.Thread(target=late)
    third.start()
    assert not third_in.wait(0.3), "a third call got a slot while two were held"
    release.set()
    for thread in [*first, third]:
        thread.join(10)
    assert third_in.is_set() and staging.peak_active == 2
    assert len({id(slot) for slot in held}) == 2, "the third call reused one of the two slots"


def test_an_unlimited_staging_makes_a_slot_per_call_in_flight_and_reuses_them() -> None:
    staging = Staging(CPU)
    with staging.slot() as one, staging.slot() as two:
        assert one is not two and staging.peak_active == 2
    with staging.slot() as again:
        assert again in (one, two)


def test_host_buffers_are_reused_and_grow_when_needed() -> None:
    slot = StagingSlot(CPU)
    a = slot.host("input", 100, torch.float32)
    b = slot.host("input", 60, torch.float32)
    assert a.data_ptr() == b.data_ptr() and b.numel() == 60
    c = slot.host("input", 1000, torch.int32)
    assert c.numel() == 1000 and c.dtype == torch.int32
    d = slot.host("other", 10, torch.uint8)
    assert d.data_ptr() != slot.host("input", 10, torch.uint8).data_ptr()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float16])
def test_planes_go_up_packed_and_come_back_as_they_were(dtype: type) -> None:
    rng = np.random.default_rng(3)
    top = 65535 if dtype == np.uint16 else 255
    shapes = [(6, 10), (3, 5), (3, 5)]
    if np.issubdtype(dtype, np.floating):
        planes = [rng.random(shape).astype(dtype) for shape in shapes]
    else:
        planes = [rng.integers(0, top + 1, shape).astype(dtype) for shape in shapes]
    planes[0][0, 0] = top  # 16-bit codes past int16's range survive the int32 staging
    slot = StagingSlot(CPU)
    sent = slot.upload_planes(planes)
    assert [tuple(t.shape) for t in sent] == shapes
    if dtype == np.uint16:
        assert all(t.dtype == torch.int32 for t in sent)
    back = slot.download_planes(sent, np.dtype(dtype))
    for plane, array in zip(planes, back, strict=True):
        assert array.dtype == dtype and np.array_equal(array, plane)
    wide = np.zeros((6, 16), dtype)  # a target with padded rows, like a VapourSynth plane
    into = [wide[:, :10], np.zeros((3, 5), dtype), np.zeros((3, 5), dtype)]
    slot.download_planes(sent, np.dtype(dtype), into)
    for plane, target in zip(planes, into, strict=True):
        assert np.array_equal(target, plane)
    assert not wide[:, 10:].any()


def test_read_only_planes_are_staged_without_a_warning() -> None:
    plane = np.arange(12, dtype=np.float32).reshape(3, 4)
    plane.flags.writeable = False  # as a VapourSynth source frame's planes are
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sent = StagingSlot(CPU).upload_planes([plane])
    assert torch.equal(sent[0], torch.from_numpy(plane.copy()))


@pytest.mark.parametrize(("bits", "sub"), [(8, 1), (10, 1), (8, 0)])
def test_video_frames_match_the_plain_composition(engine: Upscaler, bits: int, sub: int) -> None:
    """The frame upscaler with colour converters gives what converting, upscaling and converting back give."""
    w, h = 24, 16
    layout = PixelLayout("yuv", bits, sub, sub)
    colour = source_colour(layout, w, h, matrix=1, colour_range=1, chroma_location=1)
    source = ColourConverter(layout, colour, w, h, CPU)
    output = ColourConverter(layout, colour, 2 * w, 2 * h, CPU)
    rng = np.random.default_rng(bits)
    low, high = 16 << (bits - 8), 235 << (bits - 8)
    planes = [rng.integers(low, high, layout.plane_shape(i, w, h)).astype(layout.dtype) for i in range(3)]
    frames = FrameUpscaler(engine, source, output)
    got = frames(planes)
    want = output.from_rgb(engine.upscale_tensor(source.to_rgb(planes)))
    assert [a.dtype for a in got] == [layout.dtype] * 3
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a, b)
    again = frames(planes)  # the slot's buffers are reused: the first result is the caller's own
    for a, b in zip(got, again, strict=True):
        assert np.array_equal(a, b) and not np.shares_memory(a, b)


def test_rgb_frames_from_threads_match_serial(engine: Upscaler) -> None:
    rng = np.random.default_rng(5)
    frames = [[rng.random((16, 24), dtype=np.float32) for _ in range(3)] for _ in range(6)]
    serial = FrameUpscaler(engine, PlanarRGB(np.dtype(np.float32)), PlanarRGB(np.dtype(np.float32)))
    want = [serial(planes) for planes in frames]
    parallel = FrameUpscaler(engine, PlanarRGB(np.dtype(np.float32)), PlanarRGB(np.dtype(np.float32)), streams=2)
    got = on_threads(parallel, frames)
    assert 1 <= parallel.peak_active <= 2
    for n, planes in enumerate(want):
        for a, b in zip(got[n], planes, strict=True):
            assert np.array_equal(a, b)
    half = FrameUpscaler(engine, PlanarRGB(np.dtype(np.float32)), PlanarRGB(np.dtype(np.float16)))
    assert all(p.dtype == np.float16 for p in half(frames[0]))
