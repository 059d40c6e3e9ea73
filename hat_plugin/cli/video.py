"""Video files on the command line: ``hat-upscale film.mkv -o film_x4.mkv --model NAME`` (and folders of videos).

The default command (``cli/upscale.py``) hands its command line here when the inputs include videos; the options are
the image command's (model, engine, ``-o``, ``--suffix``, ``--overwrite``, ...) plus the video group, all in
``cli/options.py``. The inputs are split by kind: the images among them (a folder holding both, say) go back to the
image command's ``run_images`` with the image options, the videos each become a ``hat_plugin.video.VideoJob``:
resumable chunks in ``OUT.hat-work/`` beside the output, the output written atomically. One summary, one exit code
for both kinds; Ctrl-C (130) keeps the finished chunks, and the same command continues from them.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hat_plugin.batch import Input, OutputOptions, Planned, find_files, plan_outputs
from hat_plugin.cli.base import PROG, UsageError, run_parsed
from hat_plugin.cli.options import VIDEO_FLAGS, build_parser, engine_options
from hat_plugin.cli.runs import GLOB_CHARS, Tally, collect_inputs, model_mean, model_source, report_plan
from hat_plugin.cli.wording import worded
from hat_plugin.errors import HATError, OptionError
from hat_plugin.images import is_image_name
from hat_plugin.progress import tqdm_progress
from hat_plugin.video.names import is_video_name, output_extension

if TYPE_CHECKING:
    from hat_plugin.engine import Upscaler
    from hat_plugin.options import EngineOptions
    from hat_plugin.video import EncoderSettings

__all__ = ["ImageRun", "claims", "run"]

ImageRun = Callable[[argparse.Namespace, list[Input], Tally], None]
"""The image command's part of a mixed run: upscale these image inputs, counting them in the tally."""
INTERRUPTED = "interrupted; the finished chunks are kept: run the same command again to continue"


def claims(argv: list[str]) -> bool:
    """Whether this command line is about videos: a video input, a folder holding videos, or a video option."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            args, _ = build_parser().parse_known_intermixed_args(argv)
    except SystemExit:
        return False  # --help or a usage error: the image command prints it
    if any(arg.split("=", 1)[0] in VIDEO_FLAGS for arg in argv):
        return True
    for text in args.inputs:
        path = Path(text)
        try:
            is_dir, is_file = path.is_dir(), path.is_file()
        except OSError:  # a name too long to look up, a loop: the image command reports it
            continue
        if is_file and is_video_name(path):
            return True
        if is_dir and any(True for _ in find_files(path, args.recursive, is_video_name, kind="video")):
            return True
        if GLOB_CHARS & set(text) and any(is_video_name(m) for m in glob.glob(text, recursive=True)):
            return True
    return False


# ------------------------------------------------------------------------------------------------ the run


def run(argv: list[str], images: ImageRun | None = None) -> int:
    """Upscale the video inputs of ``argv``, and its image inputs through ``images``; returns the exit code."""
    return run_parsed(
        build_parser(),
        argv,
        lambda args, console: _run(args, *_settings(args), Tally(console), images),
        interrupted=INTERRUPTED,
    )


def _is_media_name(name: str | os.PathLike[str]) -> bool:
    return is_image_name(name) or is_video_name(name)


def _settings(args: argparse.Namespace) -> tuple[EncoderSettings, EngineOptions, OutputOptions]:
    """Encoder, engine and output settings from the options; ``UsageError`` for combinations that cannot work."""
    from hat_plugin.video import EncoderSettings
    from hat_plugin.video.codecs import choose_layout
    from hat_plugin.video.colour import PixelLayout

    if not args.inputs:
        raise UsageError("no input given: name video files or folders")
    if args.output is not None and not args.output.strip():
        raise UsageError("-o is empty: name an output folder or file, or leave -o out to write beside the inputs")
    named_file = args.output is not None and _names_file(args.output)
    try:
        options = OutputOptions(
            folder=Path(args.output) if args.output is not None and not named_file else None,
            file=Path(args.output) if named_file else None,
            suffix=args.suffix,
            overwrite=args.overwrite,
            kind="video",
        )
    except OptionError as exc:
        raise UsageError(worded(exc)) from None
    try:
        encoder = EncoderSettings(
            codec=args.codec or "x264", crf=args.crf, preset=args.preset, bitrate=args.bitrate, pix_fmt=args.pix_fmt
        ).checked()
        if encoder.pix_fmt is not None:
            choose_layout(encoder, PixelLayout("yuv", 8, 1, 1))  # checks the name against the codec now
    except OptionError as exc:
        raise UsageError(worded(exc)) from None
    return encoder, engine_options(args), options


def _run(
    args: argparse.Namespace,
    encoder: EncoderSettings,
    engine: EngineOptions,
    options: OutputOptions,
    tally: Tally,
    images: ImageRun | None = None,
) -> int:
    media = collect_inputs(
        args.inputs,
        recursive=args.recursive,
        out_dir=options.folder,
        accepts=_is_media_name if images is not None else is_video_name,
        kind="image or video" if images is not None else "video",
        tally=tally,
        explicit_accepts=_is_media_name if images is not None else is_video_name,
        refusal="not an image or video file" if images is not None else "not a video file",
    )
    videos = [item for item in media if is_video_name(item.source)]
    stills = [item for item in media if not is_video_name(item.source)]
    if options.file is not None and (len(media) != 1 or len(args.inputs) != 1):
        raise UsageError(f"-o {args.output} names one file, but the inputs are several; give a folder instead")
    if not stills and (args.format is not None or args.quality is not None):
        raise UsageError("--format and --quality apply to images; for videos the output name sets the container")
    if stills and images is not None:
        images(args, stills, tally)
    if videos:
        _run_videos(args, videos, encoder, engine, options, tally)
    return tally.finish()


def _run_videos(
    args: argparse.Namespace,
    videos: list[Input],
    encoder: EncoderSettings,
    engine: EngineOptions,
    options: OutputOptions,
    tally: Tally,
) -> None:
    """Upscale the video inputs (one model for all of them), counting each in ``tally``."""
    console = tally.console
    try:
        weights, label = model_source(args, console)
    except HATError as exc:
        tally.break_off(worded(exc), exc)
        return
    from hat_plugin.runtime import configure_process

    configure_process()
    if args.ray and args.rgb_mean is not None:
        raise UsageError(
            "--rgb-mean does not reach the Ray workers; record the mean with the model instead "
            f"('{PROG} models add FILE --name NAME --rgb-mean MEAN', then --model NAME)"
        )
    upscaler = None if args.ray else _engine(weights, args.rgb_mean, engine, tally)
    if upscaler is None and not args.ray:
        return
    try:
        scale = upscaler.scale if upscaler is not None else _scale_of(weights)
        if args.scale is not None and args.scale != scale:
            raise UsageError(f"the model {label} upscales x{scale}, not x{args.scale}; choose another model")
        plan = plan_outputs(
            videos, options, scale=scale, model=label, extension=lambda source: output_extension(source, encoder.codec)
        )
        report_plan(plan, tally)
        for planned in plan.todo:
            _process(planned, weights, upscaler, encoder, engine, args, tally)
    finally:
        if upscaler is not None:
            upscaler.close()


def _names_file(output: str) -> bool:
    """``-o`` names a file when it has a video extension and is not an existing folder."""
    path = Path(output)
    return not (output.endswith(("/", os.sep)) or path.is_dir()) and is_video_name(path)


def _engine(weights: Path, rgb_mean: str | None, engine: EngineOptions, tally: Tally) -> Upscaler | None:
    """One engine for all the videos of a local run (None after counting the failure when it cannot be made)."""
    from hat_plugin.checkpoint import load_model
    from hat_plugin.engine import Upscaler

    console = tally.console
    try:
        upscaler = Upscaler(load_model(weights, rgb_mean=rgb_mean), engine)
    except HATError as exc:
        tally.break_off(worded(exc), exc)
        return None
    from hat_plugin.precisions import precision_label

    precision = precision_label(upscaler.dtype)
    mean = model_mean(upscaler.config)
    console.info(f"model {weights.name}: x{upscaler.scale}, {mean}, on {upscaler.device} in {precision}")
    return upscaler


def _scale_of(weights: Path) -> int:
    from hat_plugin.checkpoint import load_model

    return int(load_model(weights).config.upscale)


def _process(
    planned: Planned,
    weights: Path,
    upscaler: Upscaler | None,
    encoder: EncoderSettings,
    engine: EngineOptions,
    args: argparse.Namespace,
    tally: Tally,
) -> None:
    """One video (its output does not exist, or may be replaced); failures are reported and counted."""
    from hat_plugin.video import VideoJob

    console = tally.console
    source = planned.input.source
    started = time.perf_counter()
    job = VideoJob(
        source,
        planned.output,
        weights,
        encoder=encoder,
        start=args.start,
        end=args.end,
        chunk_frames=args.chunk_frames,
        engine=engine,
        upscaler=upscaler,
        streams=args.streams,
        ray=args.ray,
        on_damage=args.on_damage,
        deinterlace=args.deinterlace,
        deinterlace_rate=args.deinterlace_rate,
        keep_work=args.keep_work,
        overwrite=args.overwrite,
        notify=console.info,
    )
    try:
        plan = job.prepare()
        console.detail(
            f"{source}: {plan.info.describe()} -> {plan.fmt.width}x{plan.fmt.height} "
            f"{plan.fmt.layout.pix_fmt}, {encoder.describe()}, {len(plan.chunks)} chunks"
        )
        with console.bar(total=plan.frames, unit="frame", desc=source.name, leave=False) as bar:
            result = job.run(progress=tqdm_progress(bar))
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        tally.input_failed(source, exc)
        return
    tally.written += 1
    seconds = time.perf_counter() - started
    reused = f", {result.reused} chunks reused" if result.reused else ""
    kept = f"; chunks kept in {result.work_folder}" if result.work_folder else ""
    console.info(
        f"wrote {result.output} ({plan.fmt.width}x{plan.fmt.height}, {result.frames} frames, "
        f"{encoder.describe()}{reused}) in {seconds:.1f} s{kept}"
    )
