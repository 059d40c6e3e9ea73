"""What the GPU check runs on: versions, the device, and its measured ceilings (one JSON object).

    python -m bench.gpu_env --json OUT.json [--device cuda|cpu]

On CUDA it measures the two ceilings the speed figures are compared with (docs/benchmarks.md, "GPU check"): dense
matrix products (8192^3 bf16 and fp16, 8192^3 with TF32, 4096^3 true fp32; random data, median of 10 after 3
warm-ups, timed with CUDA events) and device memory bandwidth (a 2 GiB device-to-device copy, bytes read plus
written), plus pinned host<->device copies. The datasheet peaks it reports are dense (no sparsity) figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

# Dense (no sparsity) peaks in TFLOP/s from NVIDIA's datasheets (SXM parts; the sparsity figures are twice these).
DATASHEET: dict[str, dict[str, float | str]] = {
    "H200": {
        "bf16": 989.4,
        "fp16": 989.4,
        "tf32": 494.7,
        "fp32": 66.9,
        "source": "NVIDIA H200 Tensor Core GPU datasheet (SXM): 1,979 TFLOPS bf16/fp16 and 989 TF32 with sparsity, "
        "halved for dense; 67 TFLOPS fp32",
    },
    "H100": {
        "bf16": 989.4,
        "fp16": 989.4,
        "tf32": 494.7,
        "fp32": 66.9,
        "source": "NVIDIA H100 Tensor Core GPU datasheet (SXM5), dense",
    },
}


def datasheet(name: str) -> dict[str, float | str] | None:
    """The datasheet peaks of a GPU whose name contains a known model (e.g. 'NVIDIA H200'), else None."""
    return next((v for k, v in DATASHEET.items() if k in name.upper()), None)


def _median_ms(fn: Callable[[], object], warmup: int = 3, runs: int = 10) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def ceilings(device: torch.device) -> dict[str, float]:
    """Measured dense matmul TFLOP/s per precision and memory/copy bandwidths in GB/s."""
    out: dict[str, float] = {}
    saved = torch.backends.cuda.matmul.allow_tf32
    try:
        for name, dtype, n, tf32 in (
            ("bf16", torch.bfloat16, 8192, False),
            ("fp16", torch.float16, 8192, False),
            ("tf32", torch.float32, 8192, True),
            ("fp32", torch.float32, 4096, False),
        ):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            a = torch.randn(n, n, device=device, dtype=dtype)
            b = torch.randn(n, n, device=device, dtype=dtype)
            ms = _median_ms(functools.partial(torch.matmul, a, b))
            out[f"matmul_{name}_tflops"] = 2 * n**3 / ms / 1e9
            del a, b
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    src = torch.empty(2 << 30, dtype=torch.uint8, device=device).random_()
    dst = torch.empty_like(src)
    ms = _median_ms(functools.partial(dst.copy_, src))
    out["device_copy_gbps"] = 2 * src.numel() / ms / 1e6  # read + write
    del src, dst
    host = torch.empty(256 << 20, dtype=torch.uint8, pin_memory=True)
    dev = torch.empty(host.shape, dtype=torch.uint8, device=device)
    out["h2d_pinned_gbps"] = host.numel() / _median_ms(lambda: dev.copy_(host, non_blocking=True)) / 1e6
    out["d2h_pinned_gbps"] = host.numel() / _median_ms(lambda: host.copy_(dev, non_blocking=True)) / 1e6
    torch.cuda.empty_cache()
    return out


def _nvidia_smi() -> str:
    if not shutil.which("nvidia-smi"):
        return "nvidia-smi not found"
    query = "name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit,temperature.gpu"
    result = subprocess.run(
        ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
    )
    return (result.stdout or result.stderr).strip()


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def describe(device_name: str) -> dict[str, object]:
    """Versions, the device and (on CUDA) its ceilings."""
    started = time.perf_counter()
    info: dict[str, object] = {
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "packages": {n: _version(n) for n in ("numpy", "vapoursynth", "spandrel", "platformdirs", "pypng", "triton")},
        "cc": shutil.which("cc") or shutil.which("gcc") or shutil.which("clang"),
        "cuda_available": torch.cuda.is_available(),
    }
    if device_name.startswith("cuda") and torch.cuda.is_available():
        device = torch.device(device_name)
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "l2_mib": round(getattr(props, "L2_cache_size", 0) / 2**20, 1),
            "nvidia_smi": _nvidia_smi(),
        }
        info["datasheet"] = datasheet(props.name)
        info["measured"] = ceilings(device)
    info["seconds"] = round(time.perf_counter() - started, 1)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_env", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    info = describe(args.device)
    args.json.write_text(json.dumps(info, indent=1), encoding="utf-8")
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
