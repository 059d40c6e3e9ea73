"""``hat-upscale export``: write a model as ONNX with a static tile shape, for OpenVINO, ONNX Runtime, TensorRT or
vs-mlrt users who tile the image themselves."""

from __future__ import annotations

import argparse

from hat_plugin.cli.base import EXIT_FAILED, EXIT_OK, PROG, Console, add_talk_options, run_parsed
from hat_plugin.cli.wording import worded
from hat_plugin.errors import HATError
from hat_plugin.files import refuse_inputs

__all__ = ["run"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} export",
        description="Export a HAT model to ONNX for one tile size: input (batch, 3, N, N) float32 RGB in [0, 1], "
        "output (batch, 3, N*scale, N*scale), not clamped. Takes a minute or more for the big models.",
    )
    parser.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the file to write")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-m", "--model", help=f"a model name (see '{PROG} models') or a weights file")
    source.add_argument("-w", "--weights", help="a weights file (.pth or .safetensors)")
    parser.add_argument("-t", "--tile", type=int, required=True, metavar="N", help="input tile side in pixels")
    parser.add_argument("--batch", type=int, default=1, help="tiles per call (default 1)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset, 17 or newer (default 18)")
    parser.add_argument("--check", action="store_true", help="run the file with onnxruntime and compare outputs")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT.onnx if it exists")
    add_talk_options(parser)
    return parser


def run(argv: list[str]) -> int:
    """Export one model; exit 0 when the file was written (and, with --check, matches the network)."""
    interrupted = "interrupted; no partial ONNX file was kept"
    return run_parsed(build_parser(), argv, _export, interrupted=interrupted, name=f"{PROG} export")


def _export(args: argparse.Namespace, console: Console) -> int:
    from hat_plugin.runtime import configure_process

    configure_process()  # before PyTorch is imported
    from hat_plugin import weights
    from hat_plugin.checkpoint import load_model
    from hat_plugin.onnx_export import check_onnx, export_onnx

    spec = args.weights if args.weights is not None else args.model
    try:
        source = weights.resolve(spec)
        refuse_inputs(args.onnx, (source,))
        model = load_model(source)
        cfg = model.config
        if args.tile % cfg.window_size:
            console.warning(
                f"tile {args.tile} is not a multiple of the window size {cfg.window_size}: the graph pads every "
                "tile, wasting work"
            )
        console.info(f"exporting {weights.model_label(spec)} (x{cfg.upscale}) for {args.tile}x{args.tile} tiles...")
        path = export_onnx(
            model, args.onnx, args.tile, batch=args.batch, opset=args.opset, overwrite=args.overwrite, inputs=(source,)
        )
        side = args.tile * cfg.upscale
        console.info(
            f"wrote {path}: input 'input' ({args.batch}, {cfg.in_chans}, {args.tile}, {args.tile}) float32 in [0, 1], "
            f"output 'output' ({args.batch}, {cfg.in_chans}, {side}, {side}); opset {args.opset}"
        )
        if args.check:
            check = check_onnx(model, path)
            console.info(f"checked with {check.runtime}: max abs difference {check.max_abs_diff:.1e} from PyTorch")
            if check.max_abs_diff > 1e-3:
                console.error(f"{path} does not compute what the network does (difference {check.max_abs_diff:.1e})")
                return EXIT_FAILED
    except HATError as exc:
        console.error(worded(exc), exc)
        return EXIT_FAILED
    return EXIT_OK
