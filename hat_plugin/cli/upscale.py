"""The command line (``hat-upscale`` / ``python -m hat_plugin``): upscale image files, folders and globs in one run
(with videos among them, ``cli/video.py`` runs and hands the images back to ``run_images``).

Bad inputs are reported and skipped, never fatal to the batch; the exit code says how the run went:
0 every input upscaled (or skipped because its output exists), 1 an input or the model failed,
2 usage error, 130 interrupted (Ctrl-C or SIGTERM; no half-written file is left behind).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hat_plugin.batch import Input, OutputOptions, plan_outputs
from hat_plugin.cli import video as video_cli  # video inputs go to hat_plugin/cli/video.py
from hat_plugin.cli.base import PROG, Console, UsageError, run_parsed
from hat_plugin.cli.options import build_parser, engine_options
from hat_plugin.cli.runs import Tally, collect_inputs, load_network, model_mean, model_source, report_plan
from hat_plugin.cli.wording import worded
from hat_plugin.errors import ClusterError, HATError, OptionError, describe_exception
from hat_plugin.files import sha256_file
from hat_plugin.image_work import ImageOutcome, ImageWatch, ImageWork, upscale_images
from hat_plugin.images import is_image_name
from hat_plugin.limits import default_max_pixels
from hat_plugin.progress import ProgressFn, tqdm_progress
from hat_plugin.workers import Model, RayRunner

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
    """Load the model, plan and upscale ``inputs`` (here, or on the Ray cluster of ``--ray``), counting each in
    ``tally``."""
    console = tally.console
    model, label, scale = _load_model(args, tally)
    if model is None:
        return
    try:
        if args.scale is not None and args.scale != scale:
            raise UsageError(f"the model {label} upscales x{scale}, not x{args.scale}; choose another model")
        plan = plan_outputs(inputs, options, scale=scale, model=label)
        report_plan(plan, tally)
        work = ImageWork(options.format, args.quality, options.overwrite, args.max_pixels, watch=_TileBars(console))
        with console.bar(total=len(plan.todo), unit="image", desc="images") as images_bar:
            upscale_images(
                plan.todo,
                work,
                RayRunner(args.ray) if args.ray else None,
                model,
                on_outcome=lambda outcome: _report(outcome, args, tally),
                on_lost=lambda lost: _report_lost(lost, tally),
                progress=lambda done: tqdm_progress(images_bar)(done, len(plan.todo)),
            )
    except ClusterError as exc:  # the cluster cannot be reached: none of the images can be done
        tally.break_off(worded(exc), exc)
    finally:
        if model.upscaler is not None:
            model.upscaler.close()


def _load_model(args: argparse.Namespace, tally: Tally) -> tuple[Model | None, str, int]:
    """The run's model, its label and scale: an engine loaded once for the whole run, or (``--ray``) the network
    whose weights the cluster's workers load; None (after reporting) when it cannot be loaded."""
    options = engine_options(args)
    from hat_plugin.runtime import configure_process

    configure_process()  # before the engine imports PyTorch (the OpenMP thread policy is read when it loads)
    console = tally.console
    try:
        source, label = model_source(args, console)
        console.info(f"loading model {label}…")
        if args.ray:
            from hat_plugin.checkpoint import load_model

            net = load_model(source, rgb_mean=args.rgb_mean)
            console.info(f"model {label}: x{net.config.upscale}, {model_mean(net.config)}, on the cluster {args.ray}")
            key = f"{sha256_file(source)[:32]}:{net.config.rgb_mean}"
            return Model(net, options, key), label, net.config.upscale
        from hat_plugin.engine import Upscaler

        upscaler = Upscaler(load_network(source, args.rgb_mean), options)
    except UsageError:
        raise
    except HATError as exc:
        tally.break_off(worded(exc), exc)
        return None, "", 0
    except Exception as exc:  # a bug, not bad input: one line unless --verbose
        tally.break_off(f"cannot load the model: {describe_exception(exc)}", exc)
        return None, "", 0
    _describe_engine(upscaler, label, args, console)
    return Model(None, options, label, upscaler), label, upscaler.scale


def _describe_engine(upscaler: Upscaler, label: str, args: argparse.Namespace, console: Console) -> None:
    """The model line of a local run, and the pixel limit from the free memory when none is given."""
    from hat_plugin.precisions import precision_label

    precision = precision_label(upscaler.dtype)
    if upscaler.precision_reason:
        precision += f" (auto: {upscaler.precision_reason})"
    console.info(
        f"model {label}: x{upscaler.scale}, {model_mean(upscaler.config)}, on {upscaler.device} in {precision}"
    )
    if args.max_pixels is None:
        args.max_pixels = default_max_pixels(upscaler.scale)
        console.detail(f"inputs over {args.max_pixels:,} pixels are refused (the free memory); see --max-pixels")


def _report(outcome: ImageOutcome, args: argparse.Namespace, tally: Tally) -> None:
    """Count one image's outcome and say it."""
    if outcome.error is not None:
        tally.input_failed(outcome.source, outcome.error)
        return
    tally.written += 1
    if outcome.size is None:
        tally.console.info(f"wrote {outcome.output} (by an earlier attempt of its cluster task)")
        return
    width, height = outcome.size
    detail = f" in {outcome.seconds:.1f} s" if args.verbose else ""
    tally.console.info(f"wrote {outcome.output} ({width}x{height}){detail}")


def _report_lost(lost: Sequence[ImageOutcome], tally: Tally) -> None:
    """Count the images of a cluster task lost for good, and say it once for them all."""
    error = lost[0].error
    assert error is not None, "a lost image has the reason"
    tally.inputs_failed([outcome.source for outcome in lost], error)


class _TileBars(ImageWatch):
    """Each image's tile bar, for the length of its upscaling."""

    def __init__(self, console: Console) -> None:
        self.console = console

    @contextlib.contextmanager
    def upscaling(self, source: Path, output: Path) -> Iterator[ProgressFn]:
        bar = self.console.bar(total=None, unit="tile", desc=source.name, leave=False, bar_format=FIRST_TILE)
        with bar as tiles:
            yield tile_progress(tiles)


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
