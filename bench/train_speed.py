"""``python -m bench.train_speed``: training steps per second with and without data worker processes.

    python -m bench.train_speed --data build/sr-data/train              # tiny x2, batch 8 of 32x32 LR patches
    python -m bench.train_speed --data DIR --scale 4 --rounds 3 --steps 80

Runs ``hat_plugin.training.Trainer`` (the code behind ``hat-upscale train``) for a few steps per setting: images
held in memory or decoded from disk per patch, each with 0, 1, ... data workers. The settings alternate within each
round and the medians of the rounds are reported, because the shared machines this runs on are noisy; compare
ratios within one run, not absolute figures across runs. Speed is read from the run's log, leaving out the first
logging interval (worker start-up, first allocations).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import torch

from hat_plugin.training import Trainer, create_run, plan_run

from .machine import describe


def measure(
    data: Path, scale: int, workers: int, cache: bool, steps: int, threads: int, batch: int, patch: int
) -> float:
    """Steps per second of one short run."""
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(scratch) / "run"
        settings = plan_run(
            "tiny",
            scale,
            data,
            steps=steps,
            batch=batch,
            patch=patch,
            threads=threads,
            log_every=steps // 5,
            save_every=steps,
            val_every=steps,
            cache_mb=2048 if cache else 0,
            init="bicubic",
        )
        create_run(run_dir, settings)
        trainer = Trainer(run_dir, workers=workers)
        trainer.run()
        rates = [r["steps_per_s"] for r in trainer.log.records if r["kind"] == "train"][1:]
        return statistics.mean(rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("build/sr-data/train"))
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    settings = [(cache, w) for cache in (True, False) for w in args.workers]
    results: dict[tuple[bool, int], list[float]] = {s: [] for s in settings}
    for round_index in range(args.rounds):
        order = settings if round_index % 2 == 0 else settings[::-1]
        for cache, workers in order:
            rate = measure(args.data, args.scale, workers, cache, args.steps, args.threads, args.batch, args.patch)
            results[(cache, workers)].append(rate)
            print(f"round {round_index + 1}: {'memory' if cache else 'disk'}, {workers} workers: {rate:.2f} steps/s")
    machine = describe(args.threads)
    print(f"\n{machine.cpu}, {machine.cores} thread(s) of {os.cpu_count()} cores, PyTorch {torch.__version__}")
    print(f"tiny x{args.scale}, batch {args.batch} of {args.patch}x{args.patch} LR patches, {args.threads} thread(s)")
    print("| images | workers | steps/s (median) | vs 0 workers |\n|---|---|---|---|")
    for cache, workers in settings:
        median = statistics.median(results[(cache, workers)])
        base = statistics.median(results[(cache, args.workers[0])])
        print(f"| {'in memory' if cache else 'from disk'} | {workers} | {median:.2f} | {median / base:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
