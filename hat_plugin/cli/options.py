"""The options of the default command (``hat-upscale INPUT...``): images, and the video group that applies when the
inputs are videos. Both the image command (``cli/upscale.py``) and the video command (``cli/video.py``) parse with
this one parser, so the two share every option they have in common."""

from __future__ import annotations

import argparse

from hat_plugin.batch import DEFAULT_SUFFIX
from hat_plugin.cli.base import PROG, UsageError, add_talk_options
from hat_plugin.cli.wording import worded
from hat_plugin.errors import OptionError
from hat_plugin.options import EngineOptions

__all__ = ["CODEC_NAMES", "VIDEO_FLAGS", "add_video_arguments", "build_parser", "engine_options"]

CODEC_NAMES = ("x264", "x265", "av1", "ffv1", "prores")
VIDEO_FLAGS = frozenset(
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
        "--on-damage",
        "--deinterlace",
        "--deinterlace-rate",
    }
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the upscale command (the ``models``/``download`` subcommands have their own)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Upscale images with HAT (Hybrid Attention Transformer) super-resolution.",
        epilog=(
            f"other commands: '{PROG} models' lists the known models, '{PROG} download NAME' fetches one,\n"
            f"'{PROG} train --help' trains or fine-tunes a model on your images.\n"
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
    parser.add_argument(
        "--rgb-mean",
        type=rgb_mean_arg,
        metavar="MEAN",
        help="the RGB mean the model was trained with: official, 0.5 (neosr) or R,G,B "
        "(default: what its manifest entry or file says, else official)",
    )
    parser.add_argument("--list-models", action="store_true", help=f"same as '{PROG} models'")
    parser.add_argument(
        "-s", "--scale", type=int, help="fail unless the model upscales by this factor (the model sets the scale)"
    )
    engine = parser.add_argument_group("engine")
    engine.add_argument("-t", "--tile", type=_non_negative, help="tile side in input pixels (default 0 = auto)")
    engine.add_argument("--overlap", type=_non_negative, help="pixels shared by neighbouring tiles (default 16)")
    engine.add_argument("--batch", type=_non_negative, help="tiles per forward pass (default 0 = auto)")
    engine.add_argument("-d", "--device", help="auto (default), cpu, cuda, cuda:N or mps")
    engine.add_argument(
        "-p", "--precision", choices=("auto", "fp32", "fp16", "bf16", "int8"), help="default auto (int8: CPU only)"
    )
    engine.add_argument(
        "--max-pixels",
        type=_pixel_count,
        metavar="N",
        help="refuse inputs with more pixels (e.g. 50M; 0 = no limit); default: the largest RGB image the free "
        "memory can upscale at the model's scale",
    )
    engine.add_argument(
        "--max-memory",
        type=_memory_size,
        metavar="SIZE",
        help="on the CPU, the most memory to use with the auto tile (e.g. 4G; default 0 = from the free memory)",
    )
    engine.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="upscale on a Ray cluster (auto, or HOST:6379 / ray://HOST:10001): images in groups, videos in chunks, "
        "one task per GPU; every machine must see the inputs and outputs at the same paths",
    )
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
    add_talk_options(parser, short_quiet=False)  # -q is --quality
    add_video_arguments(parser)
    return parser


def rgb_mean_arg(text: str) -> str:
    """``--rgb-mean``: checked here so a typo is a usage error; the model reads the text."""
    from hat_plugin.rgb_mean import parse_rgb_mean

    try:
        parse_rgb_mean(text)
    except OptionError as exc:
        raise argparse.ArgumentTypeError(worded(exc)) from None
    return text


def engine_options(args: argparse.Namespace) -> EngineOptions:
    """The engine's options: the environment's, with the engine flags given on the command line applied."""
    given = {key: getattr(args, key) for key in ("device", "precision", "tile", "overlap", "batch", "max_memory")}
    try:
        return EngineOptions.from_environment(**{key: value for key, value in given.items() if value is not None})
    except OptionError as exc:
        raise UsageError(worded(exc)) from None


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _pixel_count(text: str) -> int:
    """A pixel count such as ``50000000``, ``50M`` or ``2.5G`` (decimal multiples)."""
    multiple = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text.strip()[-1:].upper(), 1)
    try:
        value = float(text.strip()[:-1] if multiple > 1 else text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a pixel count: {text!r} (e.g. 50000000 or 50M)") from None
    pixels = int(value * multiple) if value >= 0 and value != float("inf") else -1
    if pixels < 0 or (pixels == 0 and value > 0):
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or a whole number of pixels, not {text}")
    return pixels


def _memory_size(text: str) -> int:
    """A memory size such as ``4G`` or ``512M`` (binary multiples), 0 for no limit."""
    from hat_plugin.errors import OptionError
    from hat_plugin.limits import memory_size

    try:
        return memory_size(text)
    except OptionError:
        raise argparse.ArgumentTypeError(
            f"must be a size in bytes such as 4G or 512M (0: no limit), not {text!r}"
        ) from None


def _quality(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be from 1 to 100, not {value}")
    return value


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """The video options, added to the default command's parser (they apply to video inputs only)."""
    group = parser.add_argument_group(
        "video (for video inputs: .mkv .mp4 .mov .webm .avi .y4m ...; output container from -o, default .mkv)"
    )
    group.add_argument("--codec", choices=CODEC_NAMES, help="output codec (default x264)")
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
        "--deinterlace",
        choices=("auto", "off", "bwdif", "yadif"),
        default="auto",
        help="deinterlace before upscaling: auto (when the video says it is interlaced; bwdif), off, bwdif, yadif",
    )
    group.add_argument(
        "--deinterlace-rate",
        choices=("frame", "field"),
        default="frame",
        help="one frame per interlaced frame (default) or per field (twice the frame rate, smoother motion)",
    )
    group.add_argument(
        "--on-damage",
        choices=("conceal", "stop"),
        default="conceal",
        help="damaged or truncated video data: use the decoder's concealed pictures and warn, as a player does "
        "(default), or stop",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value
