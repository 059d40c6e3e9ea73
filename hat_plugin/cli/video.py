"""Video files on the command line: ``hat-upscale film.mkv -o film_x4.mkv --model NAME`` (and folders of videos).

The default command (``cli/upscale.py``) hands its command line here when the inputs are videos; the options are
the image command's (model, engine, ``-o``, ``--suffix``, ``--overwrite``, ...) plus the video group added by
``add_arguments``. Each video is a ``hat_plugin.video.VideoJob``: resumable chunks in ``OUT.hat-work/`` beside
the output, the output written atomically. Exit codes as for images; Ctrl-C (130) keeps the finished chunks, and
the same command continues from them.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hat_plugin.cli.base import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PROG, Console, UsageError
from hat_plugin.errors import HATError
from hat_plugin.progress import tqdm_progress
from hat_plugin.video.names import WORK_SUFFIX, is_video_name

if TYPE_CHECKING:
    from tqdm import tqdm

    from hat_plugin.engine import Upscaler
    from hat_plugin.video import EncoderSettings, EngineOptions
    from hat_plugin.weights import ModelEntry

__all__ = ["add_arguments", "claims", "run"]

_CODEC_NAMES = ("x264", "x265", "av1", "ffv1", "prores")
_WRITABLE = (".mkv", ".mp4", ".m4v", ".mov", ".webm")
_GLOB_CHARS = frozenset("*?[")
_VIDEO_FLAGS = frozenset(
    {
        "--codec",
        "--crf",
        "--preset",
        "--bitrate",
        "--pix-fmt",
        "--start",
        "--end",
        "--chunk-frames",
        "--keep-work",
        "--streams",
        "--ray",
    }
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The video options, added to the default command's parser (they apply to video inputs only)."""
    group = parser.add_argument_group(
        "video (for video inputs: .mkv .mp4 .mov .webm .avi .y4m ...; output container from -o, default .mkv)"
    )
    group.add_argument("--codec", choices=_CODEC_NAMES, help="output codec (default x264)")
    group.add_argument("--crf", type=float, help="constant quality (x264 16, x265 18, av1 24 by default)")
    group.add_argument("--preset", help="encoder speed preset (x264/x265: slow; av1: 0-13, 6), ProRes profile (hq)")
    group.add_argument("--bitrate", help="average bit rate instead of --crf, e.g. 8M")
    group.add_argument("--pix-fmt", help="output pixel format, e.g. yuv420p10le (default: the source's)")
    group.add_argument("--start", help="first frame: a frame number, or a time such as 1:23.5 or 83.5s")
    group.add_argument("--end", help="stop before this frame (number or time); default: the end")
    group.add_argument(
        "--chunk-frames", type=_positive, default=240, help="frames per resumable chunk (default %(default)s)"
    )
    group.add_argument("--keep-work", action="store_true", help="keep the chunk folder OUT.hat-work after success")
    group.add_argument("--streams", type=_positive, default=1, help="frames upscaled at once (default 1)")
    group.add_argument(
        "--ray", metavar="ADDRESS", help="run the chunks on a Ray cluster: auto, or HOST:6379 / ray://HOST:10001"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def claims(argv: list[str]) -> bool:
    """Whether this command line is about videos: a video input, a folder holding videos, or a video option."""
    from hat_plugin.cli.upscale import build_parser

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            args, _ = build_parser().parse_known_args(argv)
    except SystemExit:
        return False  # --help or a usage error: the image command prints it
    if any(arg.split("=", 1)[0] in _VIDEO_FLAGS for arg in argv):
        return True
    for text in args.inputs:
        path = Path(text)
        if path.is_file() and is_video_name(path):
            return True
        if path.is_dir() and any(True for _ in _videos_in(path, args.recursive, None)):
            return True
        if _GLOB_CHARS & set(text) and any(is_video_name(m) for m in glob.glob(text, recursive=True)):
            return True
    return False


# ------------------------------------------------------------------------------------------------ the run


@dataclass
class _Video:
    source: Path
    subfolder: Path = Path()
    output: Path | None = None


@dataclass
class _Tally:
    written: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)


def run(argv: list[str]) -> int:
    """Upscale the video inputs of ``argv``; returns the exit code."""
    from hat_plugin.cli.upscale import build_parser

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    console = Console(quiet=args.quiet, verbose=args.verbose)
    tally = _Tally()
    try:
        encoder, engine = _settings(args)
        with console.capturing_warnings():
            return _run(args, encoder, engine, console, tally)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.error("interrupted; the finished chunks are kept: run the same command again to continue")
        return EXIT_INTERRUPTED


def _settings(args: argparse.Namespace) -> tuple[EncoderSettings, EngineOptions]:
    """Encoder and engine settings from the options; ``UsageError`` for combinations that cannot work."""
    from hat_plugin.errors import OptionError
    from hat_plugin.video import EncoderSettings, EngineOptions
    from hat_plugin.video.codecs import choose_layout
    from hat_plugin.video.colour import PixelLayout

    if not args.inputs:
        raise UsageError("no input given: name video files or folders")
    if args.format is not None or args.quality is not None:
        raise UsageError("--format and --quality apply to images; for videos the output name sets the container")
    if os.sep in args.suffix or "/" in args.suffix:
        raise UsageError("--suffix must not contain a path separator; use -o to choose a folder")
    try:
        encoder = EncoderSettings(
            codec=args.codec or "x264", crf=args.crf, preset=args.preset, bitrate=args.bitrate, pix_fmt=args.pix_fmt
        ).checked()
        if encoder.pix_fmt is not None:
            choose_layout(encoder, PixelLayout("yuv", 8, 1, 1))  # checks the name against the codec now
    except OptionError as exc:
        raise UsageError(str(exc)) from None
    engine = EngineOptions(
        device=args.device or "auto",
        precision=args.precision or "auto",
        tile=args.tile or 0,
        overlap=16 if args.overlap is None else args.overlap,
        batch=args.batch or 0,
    )
    return encoder, engine


def _run(
    args: argparse.Namespace, encoder: EncoderSettings, engine: EngineOptions, console: Console, tally: _Tally
) -> int:
    out_file = args.output is not None and _names_file(args.output)
    out_dir = Path(args.output) if args.output is not None and not out_file else None
    videos = _collect(args, out_dir, console, tally)
    if out_file and (len(videos) != 1 or len(args.inputs) != 1):
        raise UsageError(f"-o {args.output} names one file, but the inputs are several; give a folder instead")
    if not videos:
        return _finish(console, tally)
    model = _model(args, console)
    if model is None:
        return EXIT_FAILED
    weights, label = model
    from hat_plugin.runtime import configure_process

    configure_process()
    upscaler = None if args.ray else _engine(weights, engine, console)
    if upscaler is None and not args.ray:
        return EXIT_FAILED
    try:
        scale = upscaler.scale if upscaler is not None else _scale_of(weights)
        if args.scale is not None and args.scale != scale:
            raise UsageError(f"the model {label} upscales x{scale}, not x{args.scale}; choose another model")
        suffix = args.suffix.format(scale=scale, model=label)
        for video in videos:
            video.output = Path(args.output) if out_file else _output_path(video, out_dir, suffix, encoder.codec)
            _process(video, weights, upscaler, encoder, engine, args, console, tally)
    finally:
        if upscaler is not None:
            upscaler.close()
    return _finish(console, tally)


def _names_file(output: str) -> bool:
    """``-o`` names a file when it has a video extension and is not an existing folder."""
    path = Path(output)
    return not (output.endswith(("/", os.sep)) or path.is_dir()) and is_video_name(path)


def _collect(args: argparse.Namespace, out_dir: Path | None, console: Console, tally: _Tally) -> list[_Video]:
    """The video inputs, in order, without duplicates; other files named or found are reported."""
    excluded = out_dir.resolve() if out_dir is not None else None
    videos: list[_Video] = []
    seen: set[Path] = set()
    for text in args.inputs:
        path = Path(text)
        if path.is_dir():
            found = []
            for file, sub in _files_in(path, args.recursive, excluded):
                if is_video_name(file):
                    found.append(_Video(file, sub))
                else:
                    console.info(f"skipped {file}: not a video file")
            if not found:
                _fail(console, tally, f"{path}: no video files in this folder")
        elif path.is_file():
            if not is_video_name(path):
                _fail(console, tally, f"{path}: not a video file (images and videos are upscaled in separate runs)")
                continue
            found = [_Video(path)]
        elif _GLOB_CHARS & set(text):
            found = [_Video(Path(m)) for m in sorted(glob.glob(text, recursive=True)) if is_video_name(m)]
            if not found:
                _fail(console, tally, f"{text}: no video files match this pattern")
        else:
            _fail(console, tally, f"{path}: no such file or folder")
            continue
        for video in found:
            key = video.source.resolve()
            if key not in seen:
                seen.add(key)
                videos.append(video)
    return videos


def _videos_in(root: Path, recursive: bool, excluded: Path | None) -> list[tuple[Path, Path]]:
    """Video files in ``root`` (and below when ``recursive``), with their subfolder."""
    return [(file, sub) for file, sub in _files_in(root, recursive, excluded) if is_video_name(file)]


def _files_in(root: Path, recursive: bool, excluded: Path | None) -> list[tuple[Path, Path]]:
    """Files in ``root`` (and below when ``recursive``), sorted; hidden entries, work folders and the output
    folder are left out."""
    found: list[tuple[Path, Path]] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and not d.endswith(WORK_SUFFIX) and (here / d).resolve() != excluded
        )
        if not recursive:
            dirs.clear()
        found.extend((here / n, here.relative_to(root)) for n in sorted(files) if not n.startswith("."))
    return found


def _output_path(video: _Video, out_dir: Path | None, suffix: str, codec: str) -> Path:
    """Beside the input (or under ``-o`` keeping subfolders), named with the suffix; the input's container when
    it can be written (WebM only holds AV1 here), else MKV."""
    extension = video.source.suffix.lower()
    if extension not in _WRITABLE or (extension == ".webm" and codec != "av1"):
        extension = ".mkv"
    name = f"{video.source.stem}{suffix}{extension}"
    return video.source.with_name(name) if out_dir is None else out_dir / video.subfolder / name


def _model(args: argparse.Namespace, console: Console) -> tuple[Path, str] | None:
    """The weights file for the whole run (fetched once if it is a manifest model) and its short name; None after
    reporting when it cannot be had."""
    from hat_plugin import weights

    spec = args.weights if args.weights is not None else args.model
    if spec is None:
        entry, why = weights.default_model(args.scale)
        console.info(f"no --model given: using {why}; see '{PROG} models'")
        spec = entry.name
    bar = _DownloadBar(console)
    try:
        path = weights.resolve(spec, announce=bar.announce, progress=bar.progress)
    except HATError as exc:
        console.error(str(exc), exc)
        return None
    finally:
        bar.close()
    return path, weights.model_label(spec)


def _engine(weights: Path, engine: EngineOptions, console: Console) -> Upscaler | None:
    """One engine for all the videos of a local run (None after reporting when it cannot be made)."""
    from hat_plugin.engine import Upscaler
    from hat_plugin.video.model import load_job_model

    try:
        upscaler = Upscaler(load_job_model(weights), **engine.as_kwargs())
    except HATError as exc:
        console.error(str(exc), exc)
        return None
    precision = str(upscaler.dtype).removeprefix("torch.")
    console.info(f"model {weights.name}: x{upscaler.scale} on {upscaler.device} in {precision}")
    return upscaler


def _scale_of(weights: Path) -> int:
    from hat_plugin.checkpoint import load_model

    return int(load_model(weights).config.upscale)


def _process(
    video: _Video,
    weights: Path,
    upscaler: Upscaler | None,
    encoder: EncoderSettings,
    engine: EngineOptions,
    args: argparse.Namespace,
    console: Console,
    tally: _Tally,
) -> None:
    """One video: skip it if its output exists, else upscale it; failures are reported and counted."""
    from hat_plugin.video import VideoJob

    assert video.output is not None
    if video.output.exists() and not args.overwrite:
        tally.skipped += 1
        console.info(f"skipped {video.source}: {video.output} exists (use --overwrite to replace it)")
        return
    started = time.perf_counter()
    job = VideoJob(
        video.source,
        video.output,
        weights,
        encoder=encoder,
        start=args.start,
        end=args.end,
        chunk_frames=args.chunk_frames,
        engine=engine,
        upscaler=upscaler,
        streams=args.streams,
        ray=args.ray,
        keep_work=args.keep_work,
        overwrite=args.overwrite,
        notify=console.info,
    )
    try:
        plan = job.prepare()
        console.detail(
            f"{video.source}: {plan.info.describe()} -> {plan.fmt.width}x{plan.fmt.height} "
            f"{plan.fmt.layout.pix_fmt}, {encoder.describe()}, {len(plan.chunks)} chunks"
        )
        with console.bar(total=plan.frames, unit="frame", desc=video.source.name, leave=False) as bar:
            result = job.run(progress=tqdm_progress(bar))
    except KeyboardInterrupt:
        raise
    except HATError as exc:
        message = str(exc)
        _fail(console, tally, message if str(video.source) in message else f"{video.source}: {message}", exc)
        return
    except Exception as exc:  # a bug or a resource error must not end the batch
        _fail(console, tally, f"{video.source}: unexpected {type(exc).__name__}: {exc}", exc)
        return
    tally.written += 1
    seconds = time.perf_counter() - started
    reused = f", {result.reused} chunks reused" if result.reused else ""
    kept = f"; chunks kept in {result.work_folder}" if result.work_folder else ""
    console.info(
        f"wrote {result.output} ({plan.fmt.width}x{plan.fmt.height}, {result.frames} frames, "
        f"{encoder.describe()}{reused}) in {seconds:.1f} s{kept}"
    )


class _DownloadBar:
    """A byte progress bar opened only when a download really starts."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: tqdm[None] | None = None

    def announce(self, entry: ModelEntry) -> None:
        self.console.info(f"downloading {entry.name} (once; it is cached for later runs)")
        self.bar = self.console.bar(
            total=entry.size, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.name, leave=False
        )

    def progress(self, done: int, total: int | None) -> None:
        if self.bar is not None:
            tqdm_progress(self.bar)(done, total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _fail(console: Console, tally: _Tally, message: str, exc: BaseException | None = None) -> None:
    tally.failed.append(message)
    console.error(message, exc)


def _finish(console: Console, tally: _Tally) -> int:
    parts = [f"{tally.written} written"]
    if tally.skipped:
        parts.append(f"{tally.skipped} skipped")
    if tally.failed:
        parts.append(f"{len(tally.failed)} failed")
    console.info(", ".join(parts))
    return EXIT_FAILED if tally.failed or tally.written + tally.skipped == 0 else EXIT_OK
