"""The ordering of engine state shared across CUDA streams (``hat_plugin.streams``), its CPU-side logic with a
recording fake of the stream operations: who waits for what, what is registered with the allocator, what a CUDA
graph capture may read, what eviction keeps. The same code with CUDA's operations runs in tests/test_cuda.py."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any

import pytest
import torch

import hat_plugin.arch as arch_module
from hat_plugin import HAT, HATConfig, runners
from hat_plugin.arch import DerivedCache
from hat_plugin.runners import Retired
from hat_plugin.streams import CaptureMiss, Pins, Shared, SizeCache, capturing, recording


class FakeOps:
    """Stream operations that record what they were asked; ``stream`` is the current stream of this thread."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.calls: list[tuple[str, Any, Any]] = []
        self.capture = False
        self.events = 0

    @property
    def stream(self) -> str:
        return getattr(self.local, "stream", "default")

    @stream.setter
    def stream(self, name: str) -> None:
        self.local.stream = name

    def current(self, device: torch.device) -> str:
        return self.stream

    def key(self, stream: str) -> Hashable:
        return stream

    def record(self, stream: str) -> str:
        self.events += 1
        event = f"event{self.events}@{stream}"
        self.calls.append(("record", stream, event))
        return event

    def wait(self, stream: str, event: str) -> None:
        self.calls.append(("wait", stream, event))

    def register(self, tensors: tuple[torch.Tensor, ...], stream: str) -> None:
        self.calls.append(("register", stream, len(tensors)))

    def capturing(self, device: torch.device) -> bool:
        return self.capture


def test_each_stream_waits_for_the_maker_once_and_is_registered() -> None:
    ops = FakeOps()
    value = (torch.zeros(3), torch.ones(2))
    shared = Shared(value, ops)
    assert ops.calls == [("record", "default", "event1@default")] and shared.streams == {"default"}
    assert shared.get() is value  # the maker's stream: in order already
    ops.stream = "side"
    assert shared.get() is value and shared.get() is value
    assert ops.calls[1:] == [("wait", "side", "event1@default"), ("register", "side", 2)]  # once per stream
    assert shared.streams == {"default", "side"}


def test_a_capturing_stream_neither_waits_nor_registers() -> None:
    ops = FakeOps()
    shared = Shared(torch.zeros(1), ops)
    ops.stream, ops.capture = "capture", True
    shared.get()
    assert [c[0] for c in ops.calls] == ["record"] and shared.streams == {"default"}
    ops.capture = False  # the same stream used eagerly later is ordered then
    shared.get()
    assert [c[0] for c in ops.calls] == ["record", "wait", "register"]


def test_values_without_device_tensors_need_no_ordering() -> None:
    ops = FakeOps()
    assert Shared((1, 2), ops).get() == (1, 2) and ops.calls == []
    cpu = Shared(torch.zeros(2))  # the engine's default: only CUDA tensors are ordered
    assert cpu.streams == frozenset() and cpu.get() is cpu.value


def test_size_cache_keeps_the_most_recent_per_key_and_device() -> None:
    ops = FakeOps()
    cache = SizeCache(maxsize=2, ops=ops)
    made: list[Hashable] = []

    def get(key: Hashable) -> torch.Tensor:
        def make() -> torch.Tensor:
            made.append(key)
            return torch.tensor([len(made)])

        return cache.get(key, make)

    a = get((8, "cpu"))
    assert get((8, "meta")) is not a and get((8, "cpu")) is a  # another device is another entry
    get((16, "cpu"))  # pushes out the least recently used: (8, "meta")
    assert len(cache) == 2 and (8, "cpu") in cache and (8, "meta") not in cache
    assert get((8, "cpu")) is a and made == [(8, "cpu"), (8, "meta"), (16, "cpu")]
    assert sum(c[0] == "record" for c in ops.calls) == 3  # one event per value made


def test_threads_racing_for_one_key_share_one_entry() -> None:
    ops = FakeOps()
    cache = SizeCache(maxsize=4, ops=ops)
    start = threading.Barrier(4)
    got: list[torch.Tensor] = []

    def work(i: int) -> None:
        ops.stream = f"s{i}"
        start.wait()
        got.append(cache.get("k", lambda: torch.tensor([i])))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(g is got[0] for g in got)  # one value kept; the losers' values were dropped
    waits = {c[1] for c in ops.calls if c[0] == "wait"}
    assert len(waits) == 3  # every stream but the winner's waited for the winner's event


def test_capture_reads_only_what_the_warm_up_pinned() -> None:
    ops = FakeOps()
    cache = SizeCache(maxsize=1, ops=ops)
    pins = Pins()
    with recording(pins):
        warm = cache.get("a", lambda: torch.zeros(1))
    assert len(pins) == 1
    cache.get("b", lambda: torch.ones(1))  # another thread's size evicts "a"
    assert "a" not in cache
    with capturing(pins):
        assert cache.get("a", lambda: pytest.fail("built during capture")) is warm  # from the pins
        with pytest.raises(CaptureMiss, match="refusing to build it inside the graph"):
            cache.get("b", lambda: pytest.fail("built during capture"))
    assert cache.get("c", lambda: torch.ones(1)) is not None  # outside the block: normal again


def test_capture_and_recording_are_per_thread() -> None:
    cache = SizeCache(maxsize=4, ops=FakeOps())
    pins = Pins()
    seen: list[torch.Tensor] = []
    with capturing(pins):
        other = threading.Thread(target=lambda: seen.append(cache.get("x", lambda: torch.zeros(1))))
        other.start()
        other.join()
    assert len(seen) == 1 and "x" in cache  # the other thread's eager call was not refused


def test_derived_cache_under_capture_and_recording() -> None:
    cache = DerivedCache()
    pins = Pins()
    with recording(pins):
        bias = cache.get("bias", (1, "float32"), lambda: torch.zeros(2))
    with capturing(pins):
        assert cache.get("bias", (1, "float32"), lambda: pytest.fail("built during capture")) is bias
        with pytest.raises(CaptureMiss):
            cache.get("bias", (2, "float32"), lambda: torch.ones(2))  # weights changed: not what was pinned
    assert cache.get("bias", (1, "float32"), lambda: torch.ones(2)) is bias


def test_a_forward_records_every_cached_index_and_a_capture_of_it_builds_nothing() -> None:
    """The network's own lookups go through the pins: a second forward under ``capturing`` needs nothing new."""
    config = HATConfig(
        embed_dim=16, depths=(2,), num_heads=(2,), window_size=8, upscale=2, num_feat=8, squeeze_factor=4
    )
    model = HAT(config).eval()
    x = torch.rand(1, 3, 24, 40)
    pins = Pins()
    with torch.inference_mode():
        with recording(pins):
            want = model(x)
        kinds = {str(key[1])[:40] for key in pins.entries}
        assert len(pins) >= 5, kinds  # window indices per size, biases, shifted masks, seam masks, the mean
        with capturing(pins):
            assert torch.equal(model(x), want)
        with capturing(pins), pytest.raises(CaptureMiss):
            model(torch.rand(1, 3, 32, 40))  # another size: its indices were not pinned


def test_a_capture_miss_is_found_behind_the_error_that_ended_the_capture() -> None:
    miss = CaptureMiss("needs (1, 'k')")
    try:
        try:
            raise miss
        except CaptureMiss:
            raise RuntimeError("operation not permitted when stream is capturing") from None
    except RuntimeError as ended:
        assert runners._capture_miss(ended) is miss
    assert runners._capture_miss(RuntimeError("other")) is None


def test_retired_graphs_are_kept_until_their_replays_are_done() -> None:
    done: set[str] = set()
    retired: Retired[str] = Retired(lambda g: g in done)
    retired.add(["g1", "g2"])
    assert len(retired) == 2
    done.add("g1")
    retired.sweep()
    assert len(retired) == 1
    done.add("g2")
    retired.add([])
    assert len(retired) == 0


def test_per_size_indices_are_kept_per_size() -> None:
    first = arch_module._overlap_windows(1, 8, 12, 16, 24, torch.device("cpu"))
    assert arch_module._overlap_windows(1, 8, 12, 16, 24, torch.device("cpu")) is first
