"""What a reduced precision (int8 by default) costs and gains against fp32 for given weights, on photographs.

For each model and HR image (LR made as ``tools.evaluate`` makes it): the fp32 and the reduced-precision outputs,
each scored against the HR image (PSNR-Y, ``scale`` border pixels cropped), and the two outputs against each other;
each forward timed (wall and CPU seconds), the two precisions alternating which goes first. Then the gate
``precision="auto"`` holds a reduced precision to (``precision_probe``: at least ``INT8_MIN_SPEEDUP`` /
``MIN_SPEEDUP`` faster, at most ``MAX_LOSS_DB`` lost) applied to these weights, and what ``auto`` runs here.

    python -m tools.precision_check build/runs/hat-s/model.safetensors --images DIR --crop 384 --degrade pil
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hat_plugin import HATError, Upscaler
from hat_plugin.files import atomic_path
from hat_plugin.metrics import psnr_y
from hat_plugin.precision_probe import INT8_MIN_SPEEDUP, MAX_LOSS_DB, MIN_SPEEDUP, cpu_auto_precision
from hat_plugin.precisions import precision_label
from hat_plugin.training.folders import image_files
from tools.evaluate import DEGRADATIONS, bicubic, hr_lr_pair

__all__ = ["Row", "check", "gate", "main"]


@dataclass(frozen=True)
class Row:
    """One image through one model at fp32 and at the reduced precision."""

    model: str
    image: str
    bicubic_psnr: float
    fp32_psnr: float
    reduced_psnr: float
    between: float
    """PSNR-Y of the reduced-precision output against the fp32 output (dB; inf where they are equal)."""
    fp32_s: float
    reduced_s: float
    fp32_cpu_s: float
    reduced_cpu_s: float

    @property
    def loss(self) -> float:
        return self.fp32_psnr - self.reduced_psnr


def _timed(up: Upscaler, lr: np.ndarray) -> tuple[np.ndarray, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    out = up.upscale(lr)
    return out, time.perf_counter() - start, time.process_time() - cpu


def check(model: str, files: list[Path], precision: str, *, crop: int, degrade: str) -> tuple[list[Row], list[str]]:
    """Score and time ``model`` at fp32 and ``precision`` on every file; the rows and one message per skipped
    file. Both engines run a warm-up forward on the first image first (not counted)."""
    base = Upscaler(model, device="cpu", precision="fp32")
    ups = {"fp32": base, precision: Upscaler(base.model, device="cpu", precision=precision)}
    s = base.scale
    rows, failures, warm = [], [], False
    for index, path in enumerate(files):
        try:
            hr, lr = hr_lr_pair(path, s, crop, degrade)
        except (HATError, ValueError) as exc:
            failures.append(f"{path}: skipped: {exc}")
            continue
        if not warm:
            for up in ups.values():
                up.upscale(lr)
            warm = True
        order = ["fp32", precision] if index % 2 == 0 else [precision, "fp32"]
        done = {p: _timed(ups[p], lr) for p in order}
        (a, a_s, a_cpu), (b, b_s, b_cpu) = done["fp32"], done[precision]
        rows.append(
            Row(
                model,
                path.name,
                psnr_y(bicubic(lr, s, degrade), hr, s),
                psnr_y(a, hr, s),
                psnr_y(b, hr, s),
                psnr_y(b, a, s),
                a_s,
                b_s,
                a_cpu,
                b_cpu,
            )
        )
    return rows, failures


def gate(rows: list[Row], precision: str) -> tuple[bool, str]:
    """Whether ``auto``'s bar would pass ``precision`` on these measurements: total wall time at least the bar's
    speed-up over fp32 and the mean PSNR-Y loss at most ``MAX_LOSS_DB``; with the figures, in words."""
    bar = INT8_MIN_SPEEDUP if precision == "int8" else MIN_SPEEDUP
    speed = sum(r.fp32_s for r in rows) / sum(r.reduced_s for r in rows)
    cpu = sum(r.fp32_cpu_s for r in rows) / sum(r.reduced_cpu_s for r in rows)
    loss = statistics.mean(r.loss for r in rows)
    passed = speed >= bar and loss <= MAX_LOSS_DB
    words = (
        f"{precision}: {speed:.2f}x the speed of fp32 (CPU time {cpu:.2f}x), {loss:+.4f} dB mean PSNR-Y loss; "
        f"gate (>= {bar}x, <= {MAX_LOSS_DB} dB): {'passes' if passed else 'fails'}"
    )
    return passed, words


def format_table(rows: list[Row], precision: str) -> str:
    """A Markdown table per image and the mean: PSNR-Y of both precisions, the loss, the outputs against each
    other, and the seconds of each forward."""
    lines = [
        f"| model | image | bicubic PSNR-Y | fp32 PSNR-Y | {precision} PSNR-Y | loss (dB) "
        f"| {precision} vs fp32 output (dB) "
        f"| fp32 s | {precision} s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model in dict.fromkeys(r.model for r in rows):
        picked = [r for r in rows if r.model == model]
        for r in picked:
            lines.append(
                f"| {model} | {r.image} | {r.bicubic_psnr:.2f} | {r.fp32_psnr:.4f} | {r.reduced_psnr:.4f} "
                f"| {r.loss:+.4f} | {r.between:.1f} "
                f"| {r.fp32_s:.2f} | {r.reduced_s:.2f} |"
            )
        finite = [r.between for r in picked if np.isfinite(r.between)]
        lines.append(
            f"| {model} | **mean** | {statistics.mean(r.bicubic_psnr for r in picked):.2f} "
            f"| {statistics.mean(r.fp32_psnr for r in picked):.4f} "
            f"| {statistics.mean(r.reduced_psnr for r in picked):.4f} | {statistics.mean(r.loss for r in picked):+.4f} "
            f"| {statistics.mean(finite) if finite else float('inf'):.1f} | {sum(r.fp32_s for r in picked):.2f} "
            f"| {sum(r.reduced_s for r in picked):.2f} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m tools.precision_check``."""
    p = argparse.ArgumentParser(prog="python -m tools.precision_check", description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="weights files or manifest names (e.g. hat-tiny-x4)")
    p.add_argument("--images", type=Path, required=True, help="folder of HR images (png, jpg, ...)")
    p.add_argument("--precision", default="int8", help="the precision to check against fp32 (default int8)")
    p.add_argument("--crop", type=int, default=0, help="score the centred N x N crop of each image (0: all of it)")
    p.add_argument("--degrade", choices=DEGRADATIONS, default="matlab", help="how LR is made")
    p.add_argument("--json", type=Path, help="also write every row to this JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit status 0 when every image was checked, 1 when some were skipped, 2 on a usage or model error."""
    args = build_parser().parse_args(argv)
    files = image_files(args.images) if args.images.is_dir() else []
    if not files:
        print(f"error: {args.images} is not a folder of HR images", file=sys.stderr)
        return 2
    rows: list[Row] = []
    failures: list[str] = []
    verdicts = []
    for model in args.models:
        try:
            found, missed = check(model, files, args.precision, crop=args.crop, degrade=args.degrade)
        except HATError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        rows += found
        failures += [f for f in missed if f not in failures]
        if found:
            verdicts.append(f"{model}: {gate(found, args.precision)[1]}")
    print(format_table(rows, args.precision))
    print("\n".join(verdicts))
    auto = Upscaler(args.models[0], device="cpu", precision="auto")
    print(f"precision='auto' runs {precision_label(auto.dtype)} here (auto: {cpu_auto_precision().reason})")
    for failure in failures:
        print(failure, file=sys.stderr)
    if args.json:
        with atomic_path(args.json) as tmp:
            records = [{**asdict(r), "loss": r.loss} for r in rows]
            for record in records:  # JSON has no infinity: equal outputs are written as null
                record["between"] = record["between"] if np.isfinite(record["between"]) else None
            tmp.write_text(json.dumps(records, indent=1))
    return 1 if failures or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
