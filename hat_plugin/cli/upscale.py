"""The command line (``hat-upscale`` / ``python -m hat_plugin``): upscale image files, folders and globs in one run.

Bad inputs are reported and skipped, never fatal to the batch; the exit code says how the run went:
0 every input upscaled (or skipped because its output exists), 1 an input or the model failed,
2 usage error, 130 interrupted (Ctrl-C; no half-written file is left behind).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from hat_plugin.batch import OutputClaims, find_images, output_path
from hat_plugin.cli.base import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PROG, Console, UsageError
from hat_plugin.errors import HATError, OutputError
from hat_plugin.images import is_image_name, output_format, read_image, write_image
from hat_plugin.progress import tqdm_progress

if TYPE_CHECKING:  # the engine (and PyTorch) load only when a model is needed: `models` and --help stay fast
    from tqdm import tqdm

    from hat_plugin.engine import Upscaler
    from hat_plugin.weights import ModelEntry

__all__ = ["build_parser", "run"]

DEFAULT_SUFFIX = "_x{scale}"
_GLOB_CHARS = frozenset("*?[")


@dataclass
class Job:
    """One input file and where its result goes."""

    source: Path
    subfolder: Path = Path()
    """Folder of ``source`` relative to the folder given on the command line (kept under ``-o``)."""
    explicit: bool = True
    """Named on the command line (as opposed to found in a folder or by a glob)."""
    output: Path | None = None


@dataclass
class Tally:
    """What happened to the inputs of a run."""

    written: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the upscale command (the ``models``/``download`` subcommands have their own)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Upscale images with HAT (Hybrid Attention Transformer) super-resolution.",
        epilog=(
            f"other commands: '{PROG} models' lists the known models, '{PROG} download NAME' fetches one.\n"
            "exit codes: 0 all inputs done or skipped, 1 some input or the model failed, 2 usage error, "
            "130 interrupted.\n"
            f"example: {PROG} photos/ -r -o upscaled/ --model NAME"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("-o", "--output", help="output file (one input only) or folder; default: beside each input")
    parser.add_argument("-r", "--recursive", action="store_true", help="include subfolders, keeping their structure")
    model = parser.add_argument_group("model").add_mutually_exclusive_group()
    model.add_argument("-m", "--model", metavar="NAME", help=f"a model from '{PROG} models' (fetched if needed)")
    model.add_argument("-w", "--weights", metavar="FILE", help="a HAT checkpoint (.pth or .safetensors)")
    parser.add_argument("--list-models", action="store_true", help=f"same as '{PROG} models'")
    parser.add_argument(
        "-s", "--scale", type=int, help="fail unless the model upscales by this factor (the model sets the scale)"
    )
    engine = parser.add_argument_group("engine")
    engine.add_argument("-t", "--tile", type=_non_negative, help="tile side in input pixels (default 0 = auto)")
    engine.add_argument("--overlap", type=_non_negative, help="pixels shared by neighbouring tiles (default 16)")
    engine.add_argument("--batch", type=_non_negative, help="tiles per forward pass (default 0 = auto)")
    engine.add_argument("-d", "--device", help="auto (default), cpu, cuda, cuda:N or mps")
    engine.add_argument("-p", "--precision", choices=("auto", "fp32", "fp16", "bf16"), help="default auto")
    output = parser.add_argument_group("output")
    output.add_argument("-f", "--format", help="png, jpg, webp, tif or bmp (default: the input's, else png)")
    output.add_argument(
        "-q", "--quality", type=_quality, help="JPEG/WebP quality 1-100 (default 95; WebP 100 = lossless)"
    )
    output.add_argument(
        "--suffix",
        default=DEFAULT_SUFFIX,
        help="added to each output name; {scale} and {model} are replaced (default %(default)s)",
    )
    output.add_argument("--overwrite", action="store_true", help="replace existing outputs (inputs never)")
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("--quiet", action="store_true", help="print errors only")
    talk.add_argument("-v", "--verbose", action="store_true", help="print details and tracebacks")
    return parser


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _quality(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be from 1 to 100, not {value}")
    return value


def run(argv: list[str]) -> int:
    """The upscale command (the default one) with ``argv``; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error or the help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.list_models:
        from hat_plugin.cli.models import run_models

        return run_models([])
    console = Console(quiet=args.quiet, verbose=args.verbose)
    try:
        _check_options(args)
        with console.capturing_warnings():
            return _run(args, console)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.error("interrupted; no partial output was kept")
        return EXIT_INTERRUPTED


def _check_options(args: argparse.Namespace) -> None:
    """Reject option combinations that cannot work, before any work is done."""
    if not args.inputs:
        raise UsageError("no input given: name image files, folders or glob patterns")
    if args.format is not None:
        try:
            args.format = output_format(None, args.format)
        except OutputError as exc:
            raise UsageError(str(exc)) from None
    if os.sep in args.suffix or "/" in args.suffix:
        raise UsageError("--suffix must not contain a path separator; use -o to choose a folder")
    try:
        args.suffix.format(scale=2, model="model")
    except (KeyError, IndexError, ValueError) as exc:
        raise UsageError(f"--suffix {args.suffix!r}: only {{scale}} and {{model}} can be replaced ({exc})") from None
    if args.output is not None and _output_is_file(args.output):
        try:
            file_format = output_format(args.output)
        except OutputError as exc:
            raise UsageError(f"-o {args.output}: {exc}") from None
        if args.format is not None and args.format != file_format:
            raise UsageError(f"--format {args.format.lower()} does not match the output file {args.output}")


def _output_is_file(output: str) -> bool:
    """``-o`` names a file when it ends in an image extension and is not an existing folder."""
    path = Path(output)
    if output.endswith(("/", os.sep)) or path.is_dir():
        return False
    return path.is_file() or is_image_name(path)


# ------------------------------------------------------------------------------------------------ the run


def _run(args: argparse.Namespace, console: Console) -> int:
    tally = Tally()
    out_dir = Path(args.output) if args.output is not None and not _output_is_file(args.output) else None
    jobs = list(_collect(args.inputs, args.recursive, out_dir, console, tally))
    if args.output is not None and out_dir is None and (len(jobs) > 1 or any(not job.explicit for job in jobs)):
        raise UsageError(f"-o {args.output} names one file, but the inputs are several; give a folder instead")
    if not jobs:
        return _finish(console, tally)
    upscaler, label = _load_upscaler(args, console)
    if upscaler is None:
        return EXIT_FAILED
    if args.scale is not None and args.scale != upscaler.scale:
        raise UsageError(f"the model {label} upscales x{upscaler.scale}, not x{args.scale}; choose another model")
    precision = str(upscaler.dtype).removeprefix("torch.")
    if args.precision in (None, "auto") and upscaler.device.type == "cpu":
        from hat_plugin.precision_probe import cpu_auto_precision

        precision += f" (auto: {cpu_auto_precision().reason})"
    console.info(f"model {label}: x{upscaler.scale} on {upscaler.device} in {precision}")
    suffix = args.suffix.format(scale=upscaler.scale, model=label)
    todo = _plan(jobs, args, out_dir, suffix, console, tally)
    with console.bar(total=len(todo), unit="image", desc="images") as images_bar:
        for job in todo:
            _process(job, upscaler, args, console, tally)
            images_bar.update(1)
    return _finish(console, tally)


def _collect(inputs: list[str], recursive: bool, out_dir: Path | None, console: Console, tally: Tally) -> Iterator[Job]:
    """Expand the command line's inputs into jobs; missing inputs count as failures, junk is reported."""
    seen: set[Path] = set()
    excluded = out_dir.resolve() if out_dir is not None else None
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            found = list(_walk(path, recursive, excluded, console))
            if not found:
                _fail(console, tally, f"{path}: no image files in this folder")
        elif path.is_file():
            found = [Job(path)]
        elif _GLOB_CHARS & set(text):
            found = _expand_glob(text, console)
            if not found:
                _fail(console, tally, f"{text}: no image files match this pattern")
        else:
            _fail(console, tally, f"{path}: no such file or folder")
            continue
        for job in found:
            key = job.source.resolve()
            if key not in seen:
                seen.add(key)
                yield job


def _walk(root: Path, recursive: bool, excluded: Path | None, console: Console) -> Iterator[Job]:
    """Image files in ``root`` (and below when ``recursive``), sorted; hidden files and ``excluded`` are left out."""
    for path, subfolder in find_images(
        root, recursive, excluded, lambda p: console.info(f"skipped {p}: not an image file")
    ):
        yield Job(path, subfolder, explicit=False)
    if not recursive:
        subfolders = sum(1 for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if subfolders:
            console.info(f"skipped {subfolders} subfolder(s) of {root}; use -r to include them")


def _expand_glob(pattern: str, console: Console) -> list[Job]:
    jobs = []
    for match in sorted(glob.glob(pattern, recursive=True)):
        path = Path(match)
        if not path.is_file():
            continue
        if is_image_name(path):
            jobs.append(Job(path, explicit=False))
        else:
            console.info(f"skipped {path}: not an image file")
    return jobs


def _load_upscaler(args: argparse.Namespace, console: Console) -> tuple[Upscaler | None, str]:
    """Load the model once for the whole run; None (after reporting) when it cannot be loaded."""
    options = {
        key: getattr(args, key)
        for key in ("device", "precision", "tile", "overlap", "batch")
        if getattr(args, key) is not None
    }
    from hat_plugin.runtime import configure_process

    configure_process()  # before the engine imports PyTorch (the OpenMP thread policy is read when it loads)
    from hat_plugin.engine import Upscaler

    try:
        source, label = _model_source(args, console)
        return Upscaler(source, **options), label
    except UsageError:
        raise
    except HATError as exc:
        console.error(str(exc), exc)
    except Exception as exc:  # a bug, not bad input: one line unless --verbose
        console.error(f"cannot load the model: {type(exc).__name__}: {exc}", exc)
    return None, ""


class _DownloadBar:
    """A byte progress bar opened only when a download really starts (never for a cached or bundled model)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: tqdm | None = None

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


def _model_source(args: argparse.Namespace, console: Console) -> tuple[Path, str]:
    """The weights file to load and its label; a manifest model is fetched (with a progress bar) when needed."""
    from hat_plugin import weights

    spec = args.weights if args.weights is not None else args.model
    if spec is None:
        entry, why = weights.default_model(args.scale)
        console.info(f"no --model given: using {why}; see '{PROG} models'")
        spec = entry.name
    bar = _DownloadBar(console)
    try:
        path = weights.resolve(spec, announce=bar.announce, progress=bar.progress)
    finally:
        bar.close()
    return path, weights.model_label(spec)


def _plan(
    jobs: list[Job], args: argparse.Namespace, out_dir: Path | None, suffix: str, console: Console, tally: Tally
) -> list[Job]:
    """Give each job its output path; drop those whose output exists (unless --overwrite) or would clobber."""
    for job in jobs:
        job.output = _output_path(job, args, out_dir, suffix)
    producer = {job.output.resolve(): job.source.resolve() for job in jobs}
    kept = []
    for job in jobs:
        source = job.source.resolve()
        if not job.explicit and producer.get(source, source) != source:
            console.detail(f"left out {job.source}: it is the output of another input")
        else:
            kept.append(job)
    claims = OutputClaims([job.source for job in kept])
    todo = []
    for job in kept:
        conflict = claims.conflict(job.source, job.output)
        if conflict:
            _fail(console, tally, f"{job.source}: {conflict} (use --suffix or -o)")
        elif job.output.exists() and not args.overwrite:
            tally.skipped += 1
            console.info(f"skipped {job.source}: {job.output} exists (use --overwrite to replace it)")
        else:
            todo.append(job)
    return todo


def _output_path(job: Job, args: argparse.Namespace, out_dir: Path | None, suffix: str) -> Path:
    if args.output is not None and out_dir is None:
        return Path(args.output)
    return output_path(job.source, job.subfolder, out_dir, suffix, args.format)


def _process(job: Job, upscaler: Upscaler, args: argparse.Namespace, console: Console, tally: Tally) -> None:
    """Read, upscale and write one image; every failure is reported and counted, the batch goes on."""
    started = time.perf_counter()
    try:
        image = read_image(job.source)
        with console.bar(total=None, unit="tile", desc=job.source.name, leave=False) as tiles_bar:
            pixels = upscaler.upscale(image.pixels, progress=tqdm_progress(tiles_bar))
        write_image(job.output, replace(image, pixels=pixels), format=args.format, quality=args.quality)
    except HATError as exc:
        message = str(exc)
        _fail(console, tally, message if str(job.source) in message else f"{job.source}: {message}", exc)
        return
    except Exception as exc:  # a bug or a resource error must not end the batch
        _fail(console, tally, f"{job.source}: unexpected {type(exc).__name__}: {exc}", exc)
        return
    tally.written += 1
    height, width = pixels.shape[:2]
    detail = f" in {time.perf_counter() - started:.1f} s" if args.verbose else ""
    console.info(f"wrote {job.output} ({width}x{height}){detail}")


def _fail(console: Console, tally: Tally, message: str, exc: BaseException | None = None) -> None:
    tally.failed.append(message)
    console.error(message, exc)


def _finish(console: Console, tally: Tally) -> int:
    parts = [f"{tally.written} written"]
    if tally.skipped:
        parts.append(f"{tally.skipped} skipped")
    if tally.failed:
        parts.append(f"{len(tally.failed)} failed")
    console.info(", ".join(parts))
    return EXIT_FAILED if tally.failed or tally.written + tally.skipped == 0 else EXIT_OK
