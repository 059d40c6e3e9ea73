"""The ``explain`` command of ``hat-upscale``: LAM attribution maps of an output window, as a figure and numbers.

    hat-upscale explain photo.png --at 120,80 -o lam.png
    hat-upscale explain photo.png --at 120,80 --model HAT-S_SRx4 --model hat-tiny-x4 --model bicubic --json

One row per model, on the same window (``--model``/``--weights``, in the order given; ``bicubic`` is bicubic
interpolation at the models' scale). Exit codes as the rest of the CLI: 0 every model explained, 1 the image, a
model or the output failed, 2 usage error (also a window outside the output), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hat_plugin.cli.base import EXIT_FAILED, EXIT_OK, PROG, Console, UsageError, add_talk_options, run_parsed
from hat_plugin.cli.wording import worded
from hat_plugin.errors import HATError, describe_exception
from hat_plugin.files import refuse_inputs
from hat_plugin.images import output_format, read_image, write_image
from hat_plugin.progress import tqdm_progress

if TYPE_CHECKING:  # PyTorch loads only when a model is needed: --help stays fast
    import torch
    from torch import nn

    from hat_plugin.arch import HAT
    from hat_plugin.attribution import LAMResult

__all__ = ["build_parser", "run"]

BICUBIC = "bicubic"
DEFAULT_SCALE = 4


@dataclass
class Row:
    """One model of the comparison and what became of it."""

    kind: str  # "model" or "weights"
    spec: str
    label: str = ""
    result: LAMResult | None = None
    error: str | None = None


def _point(text: str) -> tuple[int, int]:
    parts = text.replace(" ", "").split(",")
    try:
        x, y = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y (two whole numbers, output pixels), not {text!r}") from None
    if x < 0 or y < 0:
        raise argparse.ArgumentTypeError(f"X and Y must be 0 or more, not {text!r}")
    return x, y


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _sigma(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def _crop(text: str) -> str | int:
    if text in ("auto", "full"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, full or a margin in input pixels, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a margin must be 0 or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the explain command."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} explain",
        description=(
            "Explain what a model looks at: the LAM attribution map (Gu & Dong, CVPR 2021) of a window of the "
            "upscaled output, drawn over the input, and its Diffusion Index (DI: the share of the input used, 0-100)."
        ),
        epilog=(
            f"example: {PROG} explain photo.png --at 120,80 --model hat-tiny-x4 --model bicubic -o lam.png\n"
            "exit codes: 0 done, 1 the image, a model or the output failed, 2 usage error, 130 interrupted."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("image", metavar="IMAGE", help="the input image (the low-resolution picture)")
    parser.add_argument(
        "--at", required=True, type=_point, metavar="X,Y", help="top-left corner of the window in OUTPUT pixels"
    )
    parser.add_argument("--window", type=_positive, default=16, help="window side in output pixels (default 16)")
    models = parser.add_argument_group("models (repeat for one row each; default: the best model available)")
    models.add_argument(
        "-m",
        "--model",
        dest="rows",
        action="append",
        type=lambda s: Row("model", s),
        metavar="NAME",
        help=f"a model from '{PROG} models', or '{BICUBIC}'",
    )
    models.add_argument(
        "-w", "--weights", dest="rows", action="append", type=lambda s: Row("weights", s), metavar="FILE"
    )
    parser.add_argument("-o", "--output", help="figure file (default: IMAGE_lam.png beside the input)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON on stdout")
    lam = parser.add_argument_group("LAM settings (defaults: the paper's)")
    lam.add_argument("--steps", type=_positive, default=50, help="blur path steps (default 50)")
    lam.add_argument("--sigma", type=_sigma, default=1.2, help="blur sigma at the path's start (default 1.2)")
    lam.add_argument("--kernel-size", type=_positive, default=9, help="blur kernel side (default 9)")
    lam.add_argument("--crop", type=_crop, default="auto", help="auto (default), full, or a margin in input pixels")
    lam.add_argument("-d", "--device", help="auto (default), cpu, cuda, cuda:N or mps")
    lam.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="default float32")
    lam.add_argument(
        "--batch", type=_non_negative, default=0, help="path images per pass (default 0 = from free memory)"
    )
    add_talk_options(parser)
    return parser


def run(argv: list[str]) -> int:
    """The explain command with ``argv``; returns the exit code."""
    return run_parsed(
        build_parser(), argv, _run, interrupted="interrupted; no figure was written", name=f"{PROG} explain"
    )


def _figure_path(args: argparse.Namespace) -> Path:
    image = Path(args.image)
    path = Path(args.output) if args.output else image.with_name(f"{image.stem}_lam.png")
    try:
        output_format(path)
    except HATError as exc:
        raise UsageError(f"-o {path}: {worded(exc)}") from None
    try:
        refuse_inputs(path, (image,))
    except HATError:
        same = "" if path.absolute() == image.absolute() else f" ({image} through another path)"
        raise UsageError(f"-o {path} is the input image{same}; choose another file for the figure") from None
    return path


def _run(args: argparse.Namespace, console: Console) -> int:
    figure_path = _figure_path(args)
    try:
        picture = read_image(args.image)
    except HATError as exc:
        console.error(worded(exc), exc)
        return EXIT_FAILED
    height, width = picture.pixels.shape[:2]
    rows: list[Row] = args.rows or [Row("model", _default_model(console))]
    from hat_plugin.runtime import configure_process

    configure_process()
    from hat_plugin.device import resolve_device

    try:
        device = resolve_device(args.device or "auto")
    except HATError as exc:
        console.error(worded(exc), exc)
        return EXIT_FAILED
    nets = _load_models(rows, device, console)
    if all(row.error for row in rows):
        _report(args, rows, None, (width, height))
        return EXIT_FAILED
    scales = sorted({net.config.upscale for net in nets.values()})
    if len(scales) > 1:
        found = ", ".join(f"{rows[i].label} x{net.config.upscale}" for i, net in nets.items())
        raise UsageError(f"the models upscale by different factors ({found}); compare models of one scale")
    scale = scales[0] if scales else DEFAULT_SCALE
    x, y = args.at
    out_w, out_h = width * scale, height * scale
    if not (x < out_w - 1 and y < out_h - 1):
        raise UsageError(
            f"--at {x},{y} is outside the x{scale} output ({out_w}x{out_h}): x must be 0..{out_w - 2} and "
            f"y 0..{out_h - 2} (output pixels; x = column)"
        )
    for index, row in enumerate(rows):
        if row.error is None:
            _explain(row, nets.get(index) or _bicubic(scale), picture.pixels, args, console)
    done = [(row.label, row.result) for row in rows if row.result is not None]
    written = _write_figure(figure_path, Path(args.image), picture.pixels, done, console) if done else False
    _report(args, rows, figure_path if written else None, (width, height))
    failed = any(row.error for row in rows) or not written
    return EXIT_FAILED if failed else EXIT_OK


def _default_model(console: Console) -> str:
    from hat_plugin import weights

    entry, why = weights.default_model()
    console.info(f"no --model given: using {why}")
    return entry.name


def _bicubic(scale: int) -> nn.Module:
    from hat_plugin.attribution import Bicubic

    return Bicubic(scale)


def _load_models(rows: list[Row], device: torch.device, console: Console) -> dict[int, HAT]:
    """The network of each row that names a HAT model, by row index; bicubic rows are made later, at the models'
    scale; a row whose model cannot be loaded gets its error and no network."""
    from hat_plugin import weights
    from hat_plugin.checkpoint import load_model

    nets: dict[int, HAT] = {}
    for index, row in enumerate(rows):
        if row.kind == "model" and row.spec.strip().lower() == BICUBIC:
            row.label = BICUBIC
            continue
        try:
            row.label = weights.model_label(row.spec)
            path = weights.resolve(row.spec, announce=lambda e: console.info(f"downloading {e.name} (once)"))
            nets[index] = load_model(path, device=device)
        except HATError as exc:
            row.error = worded(exc)
            console.error(worded(exc), exc)
            continue
        console.info(f"model {row.label}: x{nets[index].config.upscale} on {device}")
    return nets


def _explain(row: Row, net: nn.Module, pixels: np.ndarray, args: argparse.Namespace, console: Console) -> None:
    from hat_plugin.attribution import lam

    x, y = args.at
    try:
        with console.bar(total=args.steps, unit="step", desc=f"LAM {row.label}", leave=False) as bar:
            row.result = lam(
                net,
                pixels,
                x,
                y,
                window=args.window,
                steps=args.steps,
                sigma=args.sigma,
                kernel_size=args.kernel_size,
                device=args.device,
                dtype=args.dtype,
                batch=args.batch,
                crop=args.crop,
                progress=tqdm_progress(bar),
            )
    except HATError as exc:
        row.error = worded(exc)
        console.error(f"{row.label}: {worded(exc)}", exc)
        return
    except Exception as exc:  # a bug or a resource error must not cost the other models' rows
        row.error = f"unexpected {describe_exception(exc)}"
        console.error(f"{row.label}: {row.error}", exc)
        return
    res = row.result
    where = "" if res.exact else f" (input crop {res.crop.width}x{res.crop.height} at {res.crop.left},{res.crop.top})"
    console.detail(f"{row.label}: {res.seconds:.1f} s, batch {res.batch}{where}")
    if not args.json:
        print(f"{row.label}: DI {res.di:.2f}", flush=True)


def _write_figure(
    path: Path, image: Path, pixels: np.ndarray, done: list[tuple[str, LAMResult]], console: Console
) -> bool:
    from hat_plugin.attribution import lam_figure
    from hat_plugin.images import Image

    try:
        write_image(path, Image(pixels=lam_figure(pixels, done)), inputs=(image,))
    except HATError as exc:
        console.error(worded(exc), exc)
        return False
    console.info(f"wrote {path}")
    return True


def _report(args: argparse.Namespace, rows: list[Row], figure: Path | None, size: tuple[int, int]) -> None:
    if not args.json:
        return
    x, y = args.at
    results: list[dict[str, Any]] = []
    for row in rows:
        entry: dict[str, Any] = {"model": row.label or row.spec}
        if row.result is not None:
            res = row.result
            crop = res.crop
            entry |= {
                "scale": res.scale,
                "di": res.di,
                "gini": res.gini,
                "exact": res.exact,
                "crop": {"left": crop.left, "top": crop.top, "width": crop.width, "height": crop.height},
                "device": res.device,
                "seconds": round(res.seconds, 3),
            }
        else:
            entry["error"] = row.error
        results.append(entry)
    document = {
        "image": str(args.image),
        "width": size[0],
        "height": size[1],
        "x": x,
        "y": y,
        "window": args.window,
        "steps": args.steps,
        "sigma": args.sigma,
        "kernel_size": args.kernel_size,
        "figure": str(figure) if figure is not None else None,
        "results": results,
    }
    json.dump(document, sys.stdout, indent=2)
    print()
