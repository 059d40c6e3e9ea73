"""The GPU speed figures of the GPU check, in one process: our engine against spandrel's HAT, the optional CUDA
runners against eager, and torch.compile. One JSON object per measured configuration is appended to ``--out``
as soon as it is known, so a run stopped at its time limit keeps what it measured.

    python -m bench.gpu_speed --part speed|runners|compile --out rows.jsonl [--device cuda] [--quick] [--budget S]

Method: seeded random weights with the official configs (speed does not depend on them); every configuration of a
case is loaded at once, warmed up (its peak memory is taken there), then timed in rounds that alternate the order
of the configurations; each call is timed with CUDA events (wall clock on the CPU) and the median is reported.
Inputs are ``rand`` images already on the device; ours is ``Upscaler.upscale_tensor`` with the engine's automatic
tile, spandrel is its module called on the whole image. Each row also has the largest difference of its output from
a reference configuration of the case (ours in fp32 where it is measured; outputs clamped to [0, 1] like ours), so
a fast but wrong configuration shows.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from hat_plugin import HAT, PRESETS, HATConfig, Upscaler, runners
from hat_plugin.options import EngineOptions
from hat_plugin.runners import RunnerFallback

from .__main__ import random_weights
from .gpu_env import datasheet

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "data" / "golden"
# Small networks for the CPU dry run (a full-size HAT takes minutes per forward on a loaded 2-core machine): a
# golden test case (weights spandrel loads too), and one with HAT's 30-channel heads for the padded-heads path.
SMALL = {"tiny-heads30": HATConfig(embed_dim=60, depths=(2,), num_heads=(2,), window_size=8, upscale=4, num_feat=16)}


def model_config(model: str) -> HATConfig:
    """The network of a case: an official preset, ``golden:<case>`` or a name in ``SMALL``."""
    if model in PRESETS:
        return PRESETS[model]
    if model.startswith("golden:"):
        config = json.loads((GOLDEN / model.removeprefix("golden:") / "config.json").read_text(encoding="utf-8"))
        return HATConfig.from_dict(config)
    return SMALL[model]


def model_state(model: str, folder: Path) -> dict[str, torch.Tensor]:
    """Weights for a case: seeded random ones with the official keys, or the golden case's own."""
    if model in PRESETS:
        return torch.load(random_weights(model, folder), weights_only=True)
    if model.startswith("golden:"):
        from safetensors.torch import load_file

        return load_file(GOLDEN / model.removeprefix("golden:") / "weights.safetensors")
    torch.manual_seed(0)
    return HAT(SMALL[model]).state_dict()


@dataclass(frozen=True)
class Config:
    """One way to run a case: whose implementation, which precision and (ours) which runner and switches."""

    impl: str  # "ours" or "spandrel"
    precision: str
    runner: str = "eager"
    pad_heads: bool = False
    cudnn_benchmark: bool = False

    @property
    def label(self) -> str:
        extras = [self.runner] if self.impl == "ours" else []
        extras += ["pad-heads"] * self.pad_heads + ["cudnn.benchmark"] * self.cudnn_benchmark
        return " ".join([self.impl, self.precision, *extras])


@dataclass(frozen=True)
class Case:
    model: str  # see model_config
    height: int
    width: int
    configs: tuple[Config, ...]
    rounds: int

    @property
    def name(self) -> str:
        s = model_config(self.model).upscale
        return f"{self.model} {self.width}x{self.height} -> {self.width * s}x{self.height * s}"


OURS = tuple(Config("ours", p) for p in ("fp32", "fp16", "bf16"))
PEER = (Config("spandrel", "fp32"), Config("spandrel", "bf16"))


def speed_cases(device: str, quick: bool) -> list[Case]:
    """Most important first: a run that is stopped at its limit has measured these."""
    if device == "cpu":  # the dry run: tiny, the same code paths
        tiny = "golden:tiny-x4-w16"
        cases = [Case(tiny, 32, 32, (OURS[0], PEER[0]), 2), Case(tiny, 27, 48, (OURS[0],), 2)]
        return cases[:1] if quick else cases
    if quick:
        return [
            Case("HAT-S_SRx4", 256, 256, (OURS[0], OURS[1], PEER[1]), 3),
            Case("HAT-S_SRx4", 270, 480, (OURS[1], PEER[1]), 3),
            Case("HAT_SRx4", 270, 480, (OURS[1],), 3),
        ]
    everything = OURS + PEER
    return [
        Case("HAT-S_SRx4", 256, 256, everything, 5),
        Case("HAT-S_SRx4", 270, 480, everything, 5),
        Case("HAT_SRx4", 270, 480, everything, 5),
        Case("HAT_SRx4", 256, 256, everything, 5),
        Case("HAT-L_SRx4", 256, 256, everything, 3),
        Case("HAT-S_SRx4", 540, 960, (*OURS, PEER[1]), 3),
        Case("HAT_SRx4", 540, 960, (*OURS, PEER[1]), 3),
    ]


def runner_cases(device: str, quick: bool) -> list[Case]:
    """Eager against the optional runners and switches, at video-frame size where launch overhead shows."""
    if device == "cpu":  # graphs need CUDA: only the switches that run anywhere
        return [Case("tiny-heads30", 24, 32, (Config("ours", "fp32"), Config("ours", "fp32", pad_heads=True)), 2)]
    plain = (Config("ours", "fp16"), Config("ours", "fp16", "graphs"), Config("ours", "fp16", cudnn_benchmark=True))
    padded = (Config("ours", "fp16", pad_heads=True), Config("ours", "fp16", "graphs", pad_heads=True))
    if quick:
        return [Case("HAT-S_SRx4", 270, 480, plain[:2], 3)]
    return [Case("HAT-S_SRx4", 270, 480, plain, 5), Case("HAT_SRx4", 270, 480, plain + padded, 5)]


def compile_cases(device: str, mode: str) -> list[Case]:
    if device == "cpu":
        return []
    return [Case("HAT-S_SRx4", 270, 480, (Config("ours", "fp16"), Config("ours", "fp16", f"compile:{mode}")), 5)]


# ---- loading -----------------------------------------------------------------------------------------------------


def gflop_per_pixel(model: str, probe: int = 32) -> float:
    """Forward GFLOP (2 per multiply-add, attention products included) per input pixel, counted on the meta device
    (shapes only: instant) with the math attention backend, whose products the counter can see."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        net = HAT(model_config(model)).eval()
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        net(torch.empty(1, 3, probe, probe, device="meta"))
    return counter.get_total_flops() / 1e9 / probe**2


class Loaded:
    """A configuration ready to run: its forward, its weights' size, and the switches applied around each call."""

    def __init__(self, config: Config, state: dict[str, torch.Tensor], model: str, device: torch.device) -> None:
        self.config = config
        dtype = DTYPES[config.precision]
        if config.impl == "ours":
            runner, _, mode = config.runner.partition(":")
            net = HAT(model_config(model))
            net.load_state_dict(state, strict=True)
            options = EngineOptions(
                device=str(device),
                precision=config.precision,
                runner=runner,
                compile_mode=mode or "max-autotune",
                pad_heads=config.pad_heads,
            )
            self.engine = Upscaler(net, options)
            self.weights = sum(p.numel() * p.element_size() for p in self.engine.model.parameters())
            self._forward: Callable[[torch.Tensor], torch.Tensor] = self.engine.upscale_tensor
        else:
            import spandrel  # the peer, for comparison only

            module = spandrel.ModelLoader(device=device).load_from_state_dict(state).model.eval().to(device, dtype)
            self.weights = sum(p.numel() * p.element_size() for p in module.parameters())
            self._forward = lambda x: module(x.to(dtype)).float().clamp_(0, 1)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        torch.backends.cudnn.benchmark = self.config.cudnn_benchmark
        try:
            return self._forward(x)
        finally:
            torch.backends.cudnn.benchmark = False


class Clock:
    """Times one call: CUDA events on a GPU, the wall clock on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def time(self, fn: Callable[[], object]) -> float:
        """Milliseconds ``fn`` took (the device finished its work)."""
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        begin = time.perf_counter()
        fn()
        return (time.perf_counter() - begin) * 1000


# ---- measuring ---------------------------------------------------------------------------------------------------


def run_case(
    case: Case, part: str, device: torch.device, state: dict, gflop_px: float, seconds: float, out: Path
) -> None:
    """Load, warm up, time ``case`` and append one row per configuration to ``out``."""
    clock = Clock(device)
    x = torch.rand(1, 3, case.height, case.width, generator=torch.Generator().manual_seed(0)).to(device)
    started = time.perf_counter()
    loaded, rows = [], []
    for config in case.configs:
        print(f"  loading {config.label}", flush=True)
        try:
            loaded.append(Loaded(config, state, case.model, device))
        except Exception as exc:  # e.g. spandrel missing: record it, measure the rest
            write(
                out, {"part": part, "case": case.name, "config": config.label, "error": f"{type(exc).__name__}: {exc}"}
            )
    if not loaded:
        return
    reference: torch.Tensor | None = None
    reference_label = loaded[0].config.label
    warm: dict[Config, dict] = {}
    for item in list(loaded):
        print(f"  warming up {item.config.label}", flush=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        try:
            first = clock.time(functools.partial(item, x))
            if item.config.runner != "eager" or item.config.cudnn_benchmark:
                first += clock.time(functools.partial(item, x))  # graphs capture on the second sighting
            result = item(x)
        except RunnerFallback as exc:  # strict: a runner that did not run as asked is not measured as if it had
            write(out, {"part": part, "case": case.name, "config": item.config.label, "error": str(exc)})
            loaded.remove(item)
            continue
        peak = torch.cuda.max_memory_allocated(device) - base if device.type == "cuda" else None
        if reference is None and item.config.impl == "ours" and item.config.precision == "fp32":
            reference, reference_label = result.float(), item.config.label
        warm[item.config] = {"warmup_ms": first, "peak_mb": None if peak is None else peak / 2**20, "output": result}
    if not loaded:
        return
    if reference is None:
        reference = warm[loaded[0].config]["output"].float()
    per_round = sum(v["warmup_ms"] for v in warm.values()) / 1000
    rounds = max(2, min(case.rounds, int((seconds - (time.perf_counter() - started)) / max(per_round, 1e-3))))
    times: dict[Config, list[float]] = {item.config: [] for item in loaded}
    for r in range(rounds):
        for item in loaded if r % 2 == 0 else reversed(loaded):
            times[item.config].append(clock.time(functools.partial(item, x)))
    pixels = case.height * case.width
    peaks = _peaks(device)
    for item in loaded:
        config, w = item.config, warm[item.config]
        ms = statistics.median(times[config])
        tflops = gflop_px * pixels / ms  # GFLOP per call / ms = TFLOP/s
        peak_key = "fp32" if config.precision == "fp32" else config.precision
        row = {
            "part": part,
            "case": case.name,
            "model": case.model,
            "input": f"{case.width}x{case.height}",
            "config": config.label,
            "impl": config.impl,
            "precision": config.precision,
            "runner": config.runner,
            "pad_heads": config.pad_heads,
            "cudnn_benchmark": config.cudnn_benchmark,
            "median_ms": ms,
            "fps": 1000 / ms,
            "runs": len(times[config]),
            "warmup_s": w["warmup_ms"] / 1000,
            "tflops": tflops,
            "pct_datasheet": 100 * tflops / peaks["datasheet"][peak_key] if peaks["datasheet"] else None,
            "peak_mb": w["peak_mb"],
            "weights_mb": item.weights / 2**20,
            "reference": reference_label,
            "max_diff": (w["output"] - reference).abs().max().item(),
        }
        rows.append(row)
        write(out, row)
    print_rows(rows)


def _peaks(device: torch.device) -> dict[str, dict[str, float] | None]:
    sheet = datasheet(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    return {"datasheet": {k: float(v) for k, v in sheet.items() if k != "source"} if sheet else None}


def write(out: Path, row: dict) -> None:
    with out.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def print_rows(rows: list[dict]) -> None:
    for r in rows:
        print(
            f"  {r['case']:<40} {r['config']:<34} {r['median_ms']:9.2f} ms {r['fps']:8.2f} fps "
            f"{r['tflops']:7.2f} TFLOP/s, max diff {r['max_diff']:.1e} vs {r['reference']}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("speed", "runners", "compile"), required=True)
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, appended")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds for the whole part")
    parser.add_argument("--compile-mode", default="max-autotune")
    args = parser.parse_args(argv)
    deadline = time.perf_counter() + args.budget
    device = torch.device(args.device)
    runners.STRICT = True  # a runner that falls back to eager is reported, not timed as itself
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    cases = {
        "speed": speed_cases(device.type, args.quick),
        "runners": runner_cases(device.type, args.quick),
        "compile": compile_cases(device.type, args.compile_mode),
    }[args.part]
    folder = Path(tempfile.mkdtemp(prefix="hat-gpu-speed-"))
    states: dict[str, dict] = {}
    flops: dict[str, float] = {}
    for i, case in enumerate(cases):
        left = deadline - time.perf_counter()
        if left < 5:
            write(args.out, {"part": args.part, "case": case.name, "skipped": "no time left in this part's budget"})
            continue
        if case.model not in states:
            states[case.model] = model_state(case.model, folder)
            flops[case.model] = gflop_per_pixel(case.model)
        print(f"{args.part}: {case.name}", flush=True)
        run_case(case, args.part, device, states[case.model], flops[case.model], left / (len(cases) - i), args.out)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
