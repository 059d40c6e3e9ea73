"""Which precision ``auto`` means on this CPU: measured once per machine, remembered in the cache folder.

A reduced precision is only a candidate where this CPU has native instructions for it (PyTorch's oneDNN reports
bf16 on AVX-512 BF16 / AMX, fp16 on AVX-512 FP16 / AMX-FP16; elsewhere it is emulated, many times slower); int8
(Linear layers only, ``quantize.py``) wherever PyTorch has its quantized CPU kernels. Each candidate is then timed
against fp32 on a HAT-S-shaped network and its accuracy measured with the bundled trained ``hat-tiny-x4`` on a real
photograph (downscaled x4; PSNR-Y against the original). ``auto`` is the fastest precision that is at least
``MIN_SPEEDUP`` (``INT8_MIN_SPEEDUP`` for int8) faster than fp32 and loses at most ``MAX_LOSS_DB`` of PSNR-Y; fp32
otherwise. The decision is written to ``<cache>/.state/cpu-precision.json`` under a key naming the CPU, its
instruction sets, the PyTorch version and the thread count, so it is measured once per machine.

That choice is then checked for each network the engine runs (``auto_for_model``): its weights, in fp32 and in the
chosen precision, on a crop of the same photograph; a network that loses more than ``MAX_LOSS_DB`` there runs in
fp32. The result is remembered under a fingerprint of the weights.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import logging
import math
import platform
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import OptionError
from .options import env

__all__ = [
    "MAX_LOSS_DB",
    "INT8_MIN_SPEEDUP",
    "MIN_SPEEDUP",
    "Choice",
    "Trial",
    "auto_for_model",
    "cpu_auto_precision",
    "decide",
    "machine_key",
    "candidate_precisions",
    "native_half_precisions",
    "probe",
]

log = logging.getLogger(__name__)

MAX_LOSS_DB = 0.05
"""Largest PSNR-Y loss (dB, against fp32 on the probe photograph) a reduced precision may cost."""
MIN_SPEEDUP = 1.1
"""A reduced precision must be at least this much faster than fp32 to be worth its rounding."""
INT8_MIN_SPEEDUP = 1.15
"""int8's bar, stricter than the half types': its rounding follows each input's activation range, which the one
probe photograph only samples."""
RECORD_NAME = "cpu-precision.json"
ENV_PIN = "HAT_PLUGIN_CPU_PRECISION"
PROBE_PHOTO = Path(__file__).resolve().parent / "bundled" / "probe-coffee.png"
_ROUNDS = 3
_CANDIDATES_KEY = "bf16 fp16 int8"  # what the probe compares: a record made before int8 was a candidate is not used
_TIMING_SIZE = 64
_MODEL_CHECK_SIZE = 48  # input side of the photograph crop each network is checked on
_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Trial:
    """What one precision did in the probe: seconds per timing forward and PSNR-Y lost against fp32 (dB)."""

    precision: str
    seconds: float
    loss_db: float


@dataclasses.dataclass(frozen=True)
class Choice:
    """The precision ``auto`` runs on this CPU, why, and the trials it was decided from."""

    precision: str
    reason: str
    trials: tuple[Trial, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "reason": self.reason,
            "trials": [dataclasses.asdict(t) for t in self.trials],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Choice:
        trials = tuple(Trial(str(t["precision"]), float(t["seconds"]), float(t["loss_db"])) for t in data["trials"])
        return cls(str(data["precision"]), str(data["reason"]), trials)


def native_half_precisions() -> list[str]:
    """The reduced precisions this CPU runs with native instructions, as PyTorch's oneDNN reports them."""
    import torch

    found = []
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        found.append("bf16")
    if torch.ops.mkldnn._is_mkldnn_fp16_supported():
        found.append("fp16")
    return found


def candidate_precisions() -> list[str]:
    """The precisions worth measuring against fp32 here: native half types, and int8 where PyTorch has its kernels."""
    from .errors import DeviceError
    from .quantize import int8_engine

    found = native_half_precisions()
    try:
        int8_engine()
    except DeviceError:
        return found
    return [*found, "int8"]


def _min_speedup(precision: str) -> float:
    return INT8_MIN_SPEEDUP if precision == "int8" else MIN_SPEEDUP


def decide(trials: Sequence[Trial]) -> Choice:
    """The fastest trial within the accuracy bound and at least ``MIN_SPEEDUP`` (``INT8_MIN_SPEEDUP`` for int8)
    faster than fp32; else fp32.

    ``trials`` must include fp32 (the baseline, loss 0 by definition).
    """
    base = next(t for t in trials if t.precision == "fp32")
    good = [
        t
        for t in trials
        if t.precision != "fp32" and t.loss_db <= MAX_LOSS_DB and t.seconds * _min_speedup(t.precision) <= base.seconds
    ]
    if good:
        best = min(good, key=lambda t: t.seconds)
        reason = f"{best.precision} measured {base.seconds / best.seconds:.1f}x faster than fp32, {best.loss_db:.3f} dB"
        return Choice(best.precision, reason, tuple(trials))
    rejected = [
        f"{t.precision} {base.seconds / t.seconds:.2f}x the speed, {t.loss_db:.3f} dB" for t in trials if t is not base
    ]
    return Choice("fp32", "measured: " + "; ".join(rejected) + " (not worth it)", tuple(trials))


def probe(measure: Callable[[Sequence[str]], list[Trial]], candidates: Sequence[str]) -> Choice:
    """Decide from ``measure`` (the timing and accuracy source: real, or a fake in tests) over fp32 + candidates."""
    if not candidates:
        return Choice("fp32", "this CPU has no native bf16/fp16 instructions and PyTorch no int8 kernels")
    return decide(measure(["fp32", *candidates]))


def machine_key(threads: int) -> str:
    """Names this machine for the record: CPU model, its instruction-set flags, PyTorch version and threads."""
    import torch

    model, flags = platform.processor() or platform.machine(), ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model in ("", platform.machine()):
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = value.strip()
    except OSError:
        pass
    digest = hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:12]
    return f"{model} | flags {digest} | torch {torch.__version__} | {threads} threads | {_CANDIDATES_KEY}"


def _record_path() -> Path:
    from .weights.cache import STATE_DIR, cache_dir

    return cache_dir() / STATE_DIR / RECORD_NAME


def _read_records(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(path: Path, key: str, choice: Choice) -> None:
    _remember_value(path, key, choice.to_json())


def _remember_value(path: Path, key: str, value: Any) -> None:
    from .errors import OutputError
    from .files import atomic_write

    records = _read_records(path)
    records[key] = value
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, (json.dumps(records, indent=1, sort_keys=True) + "\n").encode())
    except (OSError, OutputError) as exc:  # a read-only cache only costs a new probe next time
        log.warning("could not remember the CPU precision in %s: %s", path, exc)


def cpu_auto_precision(
    measure: Callable[[Sequence[str]], list[Trial]] | None = None, candidates: Sequence[str] | None = None
) -> Choice:
    """The precision ``auto`` means on this CPU: the remembered choice, or a probe now (then remembered).

    ``HAT_PLUGIN_CPU_PRECISION=fp32|bf16|fp16|int8`` pins it without a probe. ``measure`` and ``candidates`` replace
    the real timing source and the feature probe (tests).
    """
    import torch

    pinned = env(ENV_PIN).lower()
    if pinned:
        if pinned not in ("fp32", "bf16", "fp16", "int8"):
            raise OptionError(f"{ENV_PIN}={pinned!r} is not one of fp32, bf16, fp16, int8")
        return Choice(pinned, f"set by {ENV_PIN}")
    key = machine_key(torch.get_num_threads())
    with _lock:
        return _remembered_or_probed(key, measure, candidates)


@functools.cache
def _in_process(key: str) -> Choice | None:
    """Reads the record once per process and key (later lookups are free)."""
    found = _read_records(_record_path()).get(key)
    try:
        return Choice.from_json(found) if isinstance(found, dict) else None
    except (KeyError, TypeError, ValueError):
        return None


def _remembered_or_probed(
    key: str, measure: Callable[[Sequence[str]], list[Trial]] | None, candidates: Sequence[str] | None
) -> Choice:
    known = _in_process(key)
    if known is not None:
        return known
    candidates = candidate_precisions() if candidates is None else candidates
    if candidates:
        log.info("measuring which precision is fastest on this CPU (once; remembered in the cache)")
    choice = probe(measure or measure_on_this_cpu, candidates)
    _remember(_record_path(), key, choice)
    _in_process.cache_clear()
    return choice


def measure_on_this_cpu(precisions: Sequence[str]) -> list[Trial]:
    """Time each precision on a one-group HAT-S-shaped network (64x64 input, rounds alternated, medians) and
    measure its PSNR-Y loss with the bundled ``hat-tiny-x4`` on the probe photograph."""
    import torch

    from .arch import HAT
    from .config import PRESETS

    torch.manual_seed(0)
    net = HAT(dataclasses.replace(PRESETS["HAT-S_SRx4"], depths=(6,), num_heads=(6,))).eval()
    timing = {p: _converted(net, p) for p in precisions}
    x = torch.rand(1, 3, _TIMING_SIZE, _TIMING_SIZE)
    seconds: dict[str, list[float]] = {p: [] for p in precisions}
    with torch.inference_mode():
        for p in precisions:
            timing[p](x)  # warm-up
        for r in range(_ROUNDS):
            for p in precisions if r % 2 == 0 else list(reversed(precisions)):
                start = time.perf_counter()
                timing[p](x)
                seconds[p].append(time.perf_counter() - start)
    losses = _accuracy_losses(precisions)
    return [Trial(p, statistics.median(seconds[p]), losses[p]) for p in precisions]


def _accuracy_losses(precisions: Sequence[str]) -> dict[str, float]:
    """PSNR-Y (dB) each precision loses against fp32 with the trained ``hat-tiny-x4`` on the probe photograph."""
    import numpy as np
    import torch
    from PIL import Image

    from .checkpoint import load_model
    from .weights import resolve

    with Image.open(PROBE_PHOTO) as im:
        hr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        lr_image = im.convert("RGB").resize((im.width // 4, im.height // 4), Image.Resampling.BICUBIC)
    lr = torch.from_numpy(np.asarray(lr_image, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    truth = torch.from_numpy(hr).permute(2, 0, 1).unsqueeze(0)
    net = load_model(resolve("hat-tiny-x4"))
    psnr = {}
    with torch.inference_mode():
        for p in precisions:
            model = net if p == "fp32" else _converted(net, p)
            psnr[p] = _psnr_y(model(lr).float().clamp(0, 1), truth)
    return {p: max(0.0, psnr["fp32"] - psnr[p]) for p in precisions}


def auto_for_model(net: Any, choice: Choice | None = None) -> Choice:
    """What ``auto`` runs ``net`` in on this CPU: the machine's choice (``choice``, else ``cpu_auto_precision``)
    if ``net``'s own output in it loses at most ``MAX_LOSS_DB`` of PSNR-Y against fp32 on the probe photograph,
    else fp32. A precision pinned by the environment is taken as it is."""
    choice = cpu_auto_precision() if choice is None else choice
    if choice.precision == "fp32" or choice.reason.startswith("set by"):
        return choice
    key = f"model {fingerprint(net)} | {choice.precision} | {machine_key(_threads())}"
    with _lock:
        loss = _in_process_loss(key)
        if loss is None:
            log.info("checking %s against fp32 on this network's weights (once; remembered)", choice.precision)
            loss = model_loss(net, choice.precision)
            _remember_value(_record_path(), key, loss)
            _in_process_loss.cache_clear()
    if loss > MAX_LOSS_DB:
        return Choice("fp32", f"{choice.precision} loses {loss:.3f} dB PSNR-Y with this model's weights", choice.trials)
    return Choice(choice.precision, f"{choice.reason}; this model loses {loss:.3f} dB in it", choice.trials)


def fingerprint(net: Any) -> str:
    """A short hash of a network's weights (names, shapes and values): which results belong to which model."""
    import torch

    digest = hashlib.blake2b(digest_size=12)
    for name, tensor in net.state_dict().items():
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_loss(net: Any, precision: str) -> float:
    """PSNR-Y (dB) ``net`` loses in ``precision`` against itself in fp32, each scored against the probe
    photograph's centre crop from which its input was made (Pillow bicubic down by the network's scale)."""
    import numpy as np
    import torch
    from PIL import Image

    scale = int(net.config.upscale)
    side = _MODEL_CHECK_SIZE * scale
    with Image.open(PROBE_PHOTO) as im:
        rgb = im.convert("RGB")
        left, top = max(0, (rgb.width - side) // 2), max(0, (rgb.height - side) // 2)
        hr_image = rgb.crop((left, top, left + side, top + side))
    lr_image = hr_image.resize((_MODEL_CHECK_SIZE, _MODEL_CHECK_SIZE), Image.Resampling.BICUBIC)
    truth = torch.from_numpy(np.asarray(hr_image, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    lr = torch.from_numpy(np.asarray(lr_image, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    reference = copy.deepcopy(net).float().cpu().eval()
    with torch.inference_mode():
        full = _psnr_y(reference(lr).float().clamp(0, 1), truth)
        reduced = _psnr_y(_converted(reference, precision)(lr).float().clamp(0, 1), truth)
    return max(0.0, full - reduced)


def _threads() -> int:
    import torch

    return torch.get_num_threads()


@functools.cache
def _in_process_loss(key: str) -> float | None:
    """A network's remembered loss, read once per process and key."""
    found = _read_records(_record_path()).get(key)
    return float(found) if isinstance(found, int | float) else None


def _converted(net: Any, precision: str) -> Any:
    """A copy of the fp32 ``net`` in ``precision`` (int8: its Linear layers quantized)."""
    from .precisions import PRECISIONS
    from .quantize import quantize_int8

    if precision == "int8":
        return quantize_int8(net)
    return copy.deepcopy(net).to(PRECISIONS[precision])


def _psnr_y(a: Any, b: Any) -> float:
    """PSNR (dB) of BT.601 luma between two ``(1, 3, H, W)`` images in [0, 1]."""
    import torch

    weights = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64).view(1, 3, 1, 1) / 255.0
    mse = ((a.double() - b.double()) * weights).sum(1).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)
