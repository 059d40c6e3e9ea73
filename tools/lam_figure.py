"""LAM of the bundled tiny models and of bicubic interpolation on the held-out crops: a figure and a DI table.

    python -m tools.lam_figure                       # docs/lam_heldout.png + a Markdown table on stdout
    python -m tools.lam_figure --steps 10 --out /tmp/lam.png

The held-out crops (``tests/data/quality``, never trained on) are the HR pictures; the LR input is made by
MATLAB-style bicubic downsampling, as in ``docs/quality.md``. The window is the 16x16 output window at the
centre of the output; settings are the paper's (50 steps, sigma 1.2, kernel 9), the whole image is seen (exact).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from hat_plugin import load_model
from hat_plugin.attribution import Bicubic, LAMResult, lam, lam_figure
from hat_plugin.images import Image, write_image
from hat_plugin.training.degrade import make_lr

REPO = Path(__file__).resolve().parent.parent
CROPS = REPO / "tests" / "data" / "quality"
NAMES = ("camera", "chelsea", "coffee", "rocket")
FIGURE_IMAGES = ("chelsea", "coffee")
WINDOW = 16


def _centre(size: int) -> int:
    return size // 2 - WINDOW // 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "lam_heldout.png")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    figures: dict[str, list[tuple[str, LAMResult]]] = {}
    lows: dict[str, np.ndarray] = {}
    for scale in (2, 4):
        model = load_model(f"hat-tiny-x{scale}")
        for name in NAMES:
            hr = np.asarray(PILImage.open(CROPS / f"{name}.png").convert("RGB"))
            lr = make_lr(hr, scale)
            x = y = _centre(hr.shape[0])
            tiny = lam(model, lr, x, y, window=WINDOW, steps=args.steps)
            cubic = lam(Bicubic(scale), lr, x, y, window=WINDOW, steps=args.steps)
            rows.append((name, scale, lr.shape, x, tiny.di, cubic.di))
            print(f"{name} x{scale}: hat-tiny DI {tiny.di:.3f}, bicubic DI {cubic.di:.3f}", flush=True)
            if scale == 4 and name in FIGURE_IMAGES:
                figures[name] = [(f"{name}: hat-tiny-x4", tiny), (f"{name}: bicubic", cubic)]
                lows[name] = lr
    parts = [lam_figure(lows[name], figures[name]) for name in FIGURE_IMAGES]
    width = max(p.shape[1] for p in parts)
    stacked = np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in parts])
    write_image(args.out, Image(pixels=stacked))
    print(f"\nwrote {args.out}\n")
    print("| image | scale | LR input | window (x, y) | hat-tiny DI | bicubic DI |")
    print("|---|---|---|---|---|---|")
    for name, scale, shape, x, tiny_di, cubic_di in rows:
        print(f"| {name} | x{scale} | {shape[1]}x{shape[0]} | {x}, {x} | {tiny_di:.3f} | {cubic_di:.3f} |")
    for scale in (2, 4):
        mine = [r for r in rows if r[1] == scale]
        tiny_mean = statistics.mean(r[4] for r in mine)
        cubic_mean = statistics.mean(r[5] for r in mine)
        print(f"| **mean** | x{scale} | | | {tiny_mean:.3f} | {cubic_mean:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
