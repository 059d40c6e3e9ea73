"""Shared fixtures: the golden reference cases (copied from ../shared/golden so the suite runs without it)."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
from pathlib import Path

import pytest

# A test run started in the background by a non-interactive shell (`make test &`, nohup) inherits SIGINT ignored,
# and so would every process the tests start: Python then installs no KeyboardInterrupt handler and the Ctrl-C
# tests would see their SIGINT vanish. Give this process (and through it, its children) the default back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# `precision="auto"` on the CPU is measured once per machine (hat_plugin.precision_probe); the suite pins it so
# its results do not depend on the machine and it never writes into the user's cache. test_precision_probe.py
# unsets it to test the probe itself.
os.environ["HAT_PLUGIN_CPU_PRECISION"] = "fp32"
# The user's own models (`hat-upscale models add`) go to a file of this run, never the user's config folder; the
# tests of the user manifest point it (or XDG_CONFIG_HOME) at their own folder.
os.environ["HAT_PLUGIN_USER_MANIFEST"] = str(Path(tempfile.mkdtemp(prefix="hat-user-models-")) / "models.json")

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden"
GOLDEN_CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "config.json").is_file())


def golden_weights(case: str = "tiny-x2-w8") -> Path:
    """Path of a golden case's weights (a small random-weights HAT)."""
    return GOLDEN / case / "weights.safetensors"


def golden_config(case: str) -> dict:
    return json.loads((GOLDEN / case / "config.json").read_text())


@pytest.fixture(scope="module")
def engine():
    """The golden tiny x2 model on the CPU in fp32, one engine per test module (the video and frame tests)."""
    from hat_plugin.engine import Upscaler

    with Upscaler(golden_weights("tiny-x2-w8"), device="cpu", precision="fp32") as up:
        yield up


def on_threads(call, items: list, timeout: float = 120) -> list:
    """``call(item)`` for every item, each on a thread of its own, all started at once; the results in order."""
    results: dict[int, object] = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, call(items[n]))) for n in range(len(items))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return [results[n] for n in range(len(items))]


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


HAS_CUDA = _cuda_available()


def needs_cuda(what: str) -> None:
    """Skip the rest of a CUDA test where there is no CUDA GPU: what ran before the call ran on the CPU
    (bench/gpu_check.py expects exactly this reason on a CPU dry run)."""
    if not HAS_CUDA:
        pytest.skip(f"{what}: needs a CUDA GPU (torch.cuda.is_available() is False)")


@pytest.fixture(params=GOLDEN_CASES)
def golden_case(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def tiny_weights() -> Path:
    return golden_weights("tiny-x2-w8")


@pytest.fixture
def one_torch_thread():
    """PyTorch on one thread for the test, the previous count restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def strict_runners(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CUDA runner that cannot run as asked raises instead of warning and running eagerly, so a passing "graphs"
    or "compile" test ran graphs or compiled code. Tests of the fallback itself set ``runners.STRICT`` back."""
    from hat_plugin import runners

    monkeypatch.setattr(runners, "STRICT", True)
