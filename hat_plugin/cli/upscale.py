"""The command line (``hat-upscale`` / ``python -m hat_plugin``): upscale image files, folders and globs in one run
(with videos among them, ``cli/video.py`` runs and hands the images back to ``run_images``).

Bad inputs are reported and skipped, never fatal to the batch; the exit code says how the run went:
0 every input upscaled (or skipped because its output exists), 1 an input or the model failed,
2 usage error, 130 interrupted (Ctrl-C or SIGTERM; no half-written file is left behind).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hat_plugin.batch import Input, OutputOptions, Planned, plan_outputs
from hat_plugin.cli import video as video_cli  # video inputs go to hat_plugin/cli/video.py
from hat_plugin.cli.base import PROG, Console, UsageError, run_parsed
from hat_plugin.cli.options import build_parser, engine_options
from hat_plugin.cli.runs import Tally, collect_inputs, load_network, model_mean, model_source, report_plan
from hat_plugin.cli.wording import worded
from hat_plugin.errors import HATError, OptionError, describe_exception
from hat_plugin.images import is_image_name, read_image, write_image
from hat_plugin.limits import default_max_pixels
from hat_plugin.progress import ProgressFn, tqdm_progress

if TYPE_CHECKING:  # the engine (and PyTorch) load only when a model is needed: `models` and --help stay fast
    from tqdm import tqdm

    from hat_plugin.engine import Upscaler

__all__ = ["run"]


def run(argv: list[str]) -> int:
    """The upscale command (the default one) with ``argv``; returns the exit code."""
    if video_cli.claims(argv):  # inputs that include videos: the video command, which hands the images back here
        return video_cli.run(argv, images=run_images)
    return run_parsed(build_parser(), argv, _start, interrupted="interrupted; no partial output was kept")


def _start(args: argparse.Namespace, console: Console) -> int:
    if args.list_models:
        from hat_plugin.cli.models import run_models

        return run_models([])
    return _run(args, _output_options(args), console)


def _output_options(args: argparse.Namespace) -> OutputOptions:
    """The run's output options, checked before any work is done (a bad combination is a usage error)."""
    if not args.inputs:
        raise UsageError("no input given: name image files, folders or glob patterns")
    if args.output is not None and not args.output.strip():
        raise UsageError("-o is empty: name an output folder or file, or leave -o out to write beside the inputs")
    if args.output == "-":
        raise UsageError("-o - (standard output) is not supported: name an output folder or file")
    for flag, value in (("--model", args.model), ("--weights", args.weights)):
        if value is not None and not value.strip():
            raise UsageError(f"{flag} is empty: name a model (see '{PROG} models') or a weights file")
    named_file = args.output is not None and _output_is_file(args.output)
    try:
        return OutputOptions(
            folder=Path(args.output) if args.output is not None and not named_file else None,
            file=Path(args.output) if named_file else None,
            suffix=args.suffix,
            format=args.format,
            overwrite=args.overwrite,
        )
    except OptionError as exc:
        raise UsageError(worded(exc)) from None


def _output_is_file(output: str) -> bool:
    """``-o`` names a file when it ends in an image extension and is not an existing folder."""
    path = Path(output)
    try:
        if output.endswith(("/", os.sep)) or path.is_dir():
            return False
        return path.is_file() or is_image_name(path)
    except OSError:  # e.g. a name too long to look up: the write reports it for each input
        return is_image_name(path)


# ------------------------------------------------------------------------------------------------ the run


def _run(args: argparse.Namespace, options: OutputOptions, console: Console) -> int:
    tally = Tally(console)
    inputs = collect_inputs(
        args.inputs, recursive=args.recursive, out_dir=options.folder, accepts=is_image_name, kind="image", tally=tally
    )
    if options.file is not None and (len(inputs) > 1 or any(not item.explicit for item in inputs)):
        raise UsageError(f"-o {args.output} names one file, but the inputs are several; give a folder instead")
    if inputs:
        _upscale_images(args, inputs, options, tally)
    return tally.finish()


def run_images(args: argparse.Namespace, inputs: list[Input], tally: Tally) -> None:
    """The images of a run that also holds videos (``cli/video.py``): upscaled with the image options."""
    _upscale_images(args, inputs, _output_options(args), tally)


def _upscale_images(args: argparse.Namespace, inputs: list[Input], options: OutputOptions, tally: Tally) -> None:
    """Load the model, plan and upscale ``inputs``, counting each in ``tally``."""
    console = tally.console
    upscaler, label = _load_upscaler(args, tally)
    if upscaler is None:
        return
    if args.scale is not None and args.scale != upscaler.scale:
        raise UsageError(f"the model {label} upscales x{upscaler.scale}, not x{args.scale}; choose another model")
    from hat_plugin.precisions import precision_label

    precision = precision_label(upscaler.dtype)
    if args.precision in (None, "auto") and upscaler.device.type == "cpu":
        from hat_plugin.precision_probe import cpu_auto_precision

        precision += f" (auto: {cpu_auto_precision().reason})"
    console.info(
        f"model {label}: x{upscaler.scale}, {model_mean(upscaler.config)}, on {upscaler.device} in {precision}"
    )
    if args.max_pixels is None:
        args.max_pixels = default_max_pixels(upscaler.scale)
        console.detail(f"inputs over {args.max_pixels:,} pixels are refused (the free memory); see --max-pixels")
    plan = plan_outputs(inputs, options, scale=upscaler.scale, model=label)
    report_plan(plan, tally)
    with console.bar(total=len(plan.todo), unit="image", desc="images") as images_bar:
        for job in plan.todo:
            _process(job, upscaler, args, options, console, tally)
            images_bar.update(1)


def _load_upscaler(args: argparse.Namespace, tally: Tally) -> tuple[Upscaler | None, str]:
    """Load the model once for the whole run; None (after reporting) when it cannot be loaded."""
    options = engine_options(args)
    from hat_plugin.runtime import configure_process

    configure_process()  # before the engine imports PyTorch (the OpenMP thread policy is read when it loads)
    from hat_plugin.engine import Upscaler

    console = tally.console
    try:
        source, label = model_source(args, console)
        console.info(f"loading model {label}…")
        return Upscaler(load_network(source, args.rgb_mean), options), label
    except UsageError:
        raise
    except HATError as exc:
        tally.break_off(worded(exc), exc)
    except Exception as exc:  # a bug, not bad input: one line unless --verbose
        tally.break_off(f"cannot load the model: {describe_exception(exc)}", exc)
    return None, ""


def _process(
    job: Planned, upscaler: Upscaler, args: argparse.Namespace, options: OutputOptions, console: Console, tally: Tally
) -> None:
    """Read, upscale and write one image; every failure is reported and counted, the batch goes on."""
    started = time.perf_counter()
    source = job.input.source
    try:
        image = read_image(source, max_pixels=args.max_pixels)
        with console.bar(total=None, unit="tile", desc=source.name, leave=False, bar_format=FIRST_TILE) as tiles_bar:
            pixels = upscaler.upscale(image.pixels, progress=tile_progress(tiles_bar))
        write_image(
            job.output,
            replace(image, pixels=pixels),
            format=options.format,
            quality=args.quality,
            overwrite=options.overwrite,
            inputs=(source,),
        )
    except Exception as exc:
        tally.input_failed(source, exc)
        return
    tally.written += 1
    height, width = pixels.shape[:2]
    detail = f" in {time.perf_counter() - started:.1f} s" if args.verbose else ""
    console.info(f"wrote {job.output} ({width}x{height}){detail}")


FIRST_TILE = "{desc}: working on the first tile…"
"""What an image's bar shows until the first tile is done (the engine gives the tile count only then)."""


def tile_progress(bar: tqdm[Any]) -> ProgressFn:
    """The per-image progress callback: says the first tile is being computed, then counts tiles."""
    update = tqdm_progress(bar)

    def progress(done: int, total: int | None) -> None:
        if getattr(bar, "bar_format", None) is not None:  # a disabled bar (not a terminal) has none
            bar.bar_format = None  # the tile count is known now: tqdm's usual bar
        update(done, total)

    return progress
