"""``python -m bench.bench_lam``: how long a LAM takes (one path image per pass vs batched) and what a crop costs.

    python -m bench.bench_lam --timing            # hat-tiny-x4 and HAT-S x4 (random weights), 64x64, 50 steps
    python -m bench.bench_lam --timing --models HAT-S_SRx4 --batches 1 2 0
    python -m bench.bench_lam --crop-study        # hat-tiny-x4 on samples/astronaut.png: whole image vs crops
    python -m bench.bench_lam --crop-study --crop-model HAT-S_SRx4 --crop-size 64 --crop-steps 5 --margins 8 16
    python -m bench.bench_lam --steps-study      # the app's Quick (10 steps) against LAM's 50, hat-tiny-x4

Timing: in one process, the batch sizes compared (default 1 and automatic) take turns, in every round in rotated
order, after one warm-up LAM; medians are reported, because the shared machines this runs on are noisy: compare
the columns of one run, not runs. Prints Markdown for docs/benchmarks.md (LAM section) and docs/attribution.md
(crop cost).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hat_plugin import load_model
from hat_plugin.arch import HAT
from hat_plugin.attribution import lam
from hat_plugin.checkpoint import build_model
from hat_plugin.config import PRESETS

from .machine import describe

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "astronaut.png"


def _model(name: str) -> HAT:
    if name in PRESETS:
        torch.manual_seed(0)
        return build_model(PRESETS[name]).eval().requires_grad_(False)
    return load_model(name)


def _image(size: int) -> np.ndarray:
    picture = Image.open(SAMPLE).convert("RGB")
    return np.asarray(picture.resize((size, size), Image.Resampling.BICUBIC))


def timing(models: list[str], size: int, steps: int, rounds: int, batches: list[int]) -> None:
    """Seconds per LAM with each batch size (0 = automatic), the sizes taking turns within every round."""
    image = _image(size)
    labels = ["auto" if b == 0 else str(b) for b in batches]
    print(f"| model | input | steps | {' | '.join(f'batch {label} (s)' for label in labels)} | auto batch chose |")
    print("|---|---|---|" + "---|" * len(batches) + "---|")
    for name in models:
        net = _model(name)
        x = y = (size * net.config.upscale) // 2 - 8
        lam(net, image, x, y, steps=2)  # warm-up
        times: dict[int, list[float]] = {b: [] for b in batches}
        chosen = 0
        for index in range(rounds):
            shift = index % len(batches)
            for batch in batches[shift:] + batches[:shift]:
                started = time.perf_counter()
                res = lam(net, image, x, y, steps=steps, batch=batch)
                times[batch].append(time.perf_counter() - started)
                if batch == 0:
                    chosen = res.batch
        cells = " | ".join(f"{statistics.median(times[b]):.1f}" for b in batches)
        print(f"| {name} | {size}x{size} | {steps} | {cells} | {chosen or '-'} |", flush=True)


def crop_study(name: str, steps: int, margins: list[int], size: int) -> None:
    image = _image(size)
    net = _model(name)
    scale = net.config.upscale
    print("| model | input | window (x, y) | crop | input seen | DI | DI error | map correlation | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for x, y in ((size * scale * 15 // 32, size * scale * 15 // 32), (size * scale * 5 // 32, size * scale * 45 // 64)):
        started = time.perf_counter()
        full = lam(net, image, x, y, steps=steps, crop="full")
        seconds = time.perf_counter() - started
        shape = f"{image.shape[1]}x{image.shape[0]}"
        print(f"| {name} | {shape} | {x}, {y} | whole | {shape} | {full.di:.3f} | - | 1 | {seconds:.0f} |", flush=True)
        for margin in margins:
            started = time.perf_counter()
            part = lam(net, image, x, y, steps=steps, crop=margin)
            seconds = time.perf_counter() - started
            corr = float(np.corrcoef(part.map.ravel(), full.map.ravel())[0, 1])
            error = abs(part.di - full.di) / full.di * 100
            seen = f"{part.crop.width}x{part.crop.height}"
            print(
                f"| {name} | {size} | {x}, {y} | margin {margin} | {seen} | {part.di:.3f} | {error:.2f} % | "
                f"{corr:.5f} | {seconds:.0f} |",
                flush=True,
            )


def steps_study(name: str, size: int, full_steps: int, quick_steps: int) -> None:
    """What fewer blur-path steps change: the DI and the map against LAM's default, at a few windows."""
    image = _image(size)
    net = _model(name)
    side = size * net.config.upscale
    print(
        f"| model | input | window (x, y) | DI {full_steps} steps | DI {quick_steps} steps | DI difference | "
        "map correlation | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for x, y in ((side // 2 - 8, side // 2 - 8), (side // 4, side * 3 // 4 - 16), (side * 3 // 4 - 16, side // 4)):
        started = time.perf_counter()
        full = lam(net, image, x, y, steps=full_steps)
        full_seconds = time.perf_counter() - started
        started = time.perf_counter()
        quick = lam(net, image, x, y, steps=quick_steps)
        quick_seconds = time.perf_counter() - started
        corr = float(np.corrcoef(quick.map.ravel(), full.map.ravel())[0, 1])
        change = (quick.di - full.di) / full.di * 100
        print(
            f"| {name} | {size}x{size} | {x}, {y} | {full.di:.2f} | {quick.di:.2f} | {change:+.1f} % | {corr:.4f} | "
            f"{full_seconds:.0f} / {quick_seconds:.0f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--crop-study", action="store_true")
    parser.add_argument("--models", nargs="+", default=["hat-tiny-x4", "HAT-S_SRx4"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 0], help="batch sizes to compare (0 = auto)")
    parser.add_argument("--crop-model", default="hat-tiny-x4")
    parser.add_argument("--crop-steps", type=int, default=20)
    parser.add_argument("--crop-size", type=int, default=128, help="input side (samples/astronaut.png resized)")
    parser.add_argument("--margins", type=int, nargs="+", default=[8, 16, 24, 32, 48])
    parser.add_argument("--steps-study", action="store_true")
    parser.add_argument("--quick-steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    machine = describe(args.threads)
    print(f"Machine: {machine.cpu}, {machine.cores} threads; torch {torch.__version__}\n")
    if args.timing:
        timing(args.models, args.size, args.steps, args.rounds, args.batches)
    if args.crop_study:
        crop_study(args.crop_model, args.crop_steps, args.margins, args.crop_size)
    if args.steps_study:
        steps_study(args.crop_model, args.size, args.steps, args.quick_steps)


if __name__ == "__main__":
    main()
