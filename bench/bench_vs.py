"""Frames per second of core.hat.Upscale on a small clip: serial requests vs parallel ones with 1..N streams.

    python bench/bench_vs.py                                  # golden tiny x2 model, 64x48 frames, CPU
    python bench/bench_vs.py --model HAT-S_SRx4 --width 480 --height 270 --precision fp16 fp32 --streams 1 2
    python bench/bench_vs.py --write docs/benchmarks.md       # also replace the "## VapourSynth filter" section
    python bench/bench_vs.py --random-preset HAT-S_SRx4 ...   # seeded random weights of an official config (offline)

"serial" asks for one frame at a time (what a preview does); "parallel" keeps as many requests in flight as
VapourSynth has threads (what vspipe does), so ``num_streams`` inferences can overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import vapoursynth as vs
from PIL import Image

from vs_filter import build

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "data" / "golden" / "tiny-x2-w8" / "weights.safetensors"
SAMPLE = REPO / "samples" / "astronaut.png"
SECTION = "## VapourSynth filter"


@dataclass
class Row:
    mode: str
    precision: str
    streams: int
    fps: float


def load_shim(core: vs.Core) -> None:
    """Use the installed shim, or build one into a temporary folder."""
    if not hasattr(core, "hat"):
        folder = Path(tempfile.mkdtemp(prefix="hat-shim-"))
        core.std.LoadPlugin(str(build.build(folder)))


def source_clip(core: vs.Core, width: int, height: int, frames: int) -> vs.VideoNode:
    """The sample photo scaled to ``width`` x ``height``, ``frames`` long, RGBS."""
    with Image.open(SAMPLE) as im:
        photo = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    blank = core.std.BlankClip(format=vs.RGBS, width=photo.shape[1], height=photo.shape[0], length=1)

    def paint(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for plane in range(3):
            np.copyto(np.asarray(out[plane]), photo[..., plane])
        return out

    still = blank.std.ModifyFrame(clips=blank, selector=paint).resize.Bicubic(width, height)
    return still.std.Loop(frames)


def measure(clip: vs.VideoNode, parallel: bool) -> float:
    """Frames per second for the whole clip after one warm-up frame."""
    clip.get_frame(0)
    start = time.perf_counter()
    if parallel:
        for request in [clip.get_frame_async(n) for n in range(1, clip.num_frames)]:
            request.result()
    else:
        for n in range(1, clip.num_frames):
            clip.get_frame(n)
    return (clip.num_frames - 1) / (time.perf_counter() - start)


def machine(device: str) -> str:
    """A one-line description of where the numbers come from."""
    if device.startswith("cuda"):
        where = torch.cuda.get_device_name(torch.device(device))
    else:
        where = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
                where = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        where += f", {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start"
    return f"{where}; torch {torch.__version__}, VapourSynth R{vs.core.core_version.release_major}"


def run(args: argparse.Namespace) -> list[Row]:
    core = vs.core
    load_shim(core)
    if args.threads:
        core.num_threads = args.threads
    src = source_clip(core, args.width, args.height, args.frames + 1)
    model = {"model": args.model} if args.model else {"weights": str(args.weights)}
    configs = []
    for precision in args.precision:
        fp16 = int(precision == "fp16")
        clip = src.resize.Point(format=vs.RGBH) if fp16 else src
        options = dict(model, device=args.device, fp16=fp16, tile=args.tile)
        configs.append(("serial", precision, 1, clip, options))
        configs += [(f"parallel ({core.num_threads} threads)", precision, n, clip, options) for n in args.streams]
    samples: list[list[float]] = [[] for _ in configs]
    for _ in range(args.repeat):  # alternate the configurations: this machine's load drifts
        for fps, (mode, _precision, streams, clip, options) in zip(samples, configs, strict=True):
            out = core.hat.Upscale(clip, num_streams=streams, **options)  # a fresh node: nothing cached
            fps.append(measure(out, parallel=mode != "serial"))
    rows = [
        Row(mode, precision, streams, statistics.median(fps))
        for fps, (mode, precision, streams, _clip, _options) in zip(samples, configs, strict=True)
    ]
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| requests | precision | num_streams | frames/s |", "|---|---|---|---|"]
    lines += [f"| {r.mode} | {r.precision} | {r.streams} | {r.fps:.2f} |" for r in rows]
    return "\n".join(lines)


def section(args: argparse.Namespace, rows: list[Row]) -> str:
    """Our markdown section: the command, the machine, the table."""
    model = args.model or (
        f"{args.random_preset} (seeded random weights)"
        if args.random_preset
        else f"golden tiny HAT x2 (`{args.weights.relative_to(REPO)}`)"
    )
    command = " ".join(["python bench/bench_vs.py", *args.argv])
    details = (
        f"Machine: {args.machine}. Model: {model}; clip: {args.frames} frames of "
        f"{args.width}x{args.height} (RGBS for fp32, RGBH for fp16), tile={args.tile}; median of {args.repeat} "
        "alternated runs."
    )
    lines = [SECTION, "", f"`{command}`", "", details, "", table(rows), ""]
    if not args.machine_has_gpu:
        lines += [
            "On a CPU, torch already spreads one frame over all cores, so extra streams can only overlap the "
            "per-frame Python work; they are meant for GPUs. No GPU was available for this run; on one, run "
            "`python bench/bench_vs.py --model HAT-S_SRx4 --width 480 --height 270 --precision fp16 fp32 "
            "--streams 1 2 --write docs/benchmarks.md`.",
            "",
        ]
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Replace (or append) our section of a shared markdown file, atomically."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: text + "\n", old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="manifest name (default: the golden tiny model from tests/data)")
    parser.add_argument("--weights", type=Path, default=GOLDEN)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--tile", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="VapourSynth threads (default: all CPUs)")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--precision", nargs="+", choices=["fp32", "fp16"], default=["fp32"])
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration; the median is shown")
    parser.add_argument("--write", type=Path, help="markdown file whose VapourSynth section to replace")
    parser.add_argument("--random-preset", help="seeded random weights of this official config (no download)")
    parser.add_argument("--json", type=Path, help="also write the rows and the machine as JSON here")
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    if args.random_preset:
        sys.path.insert(0, str(REPO))
        from bench.__main__ import random_weights

        args.weights = random_weights(args.random_preset, Path(tempfile.mkdtemp(prefix="hat-bench-vs-")))
    from hat_plugin.device import resolve_device

    device = resolve_device(args.device)
    args.machine = machine(str(device))
    args.machine_has_gpu = device.type != "cpu"
    rows = run(args)
    text = section(args, rows)
    print(text)
    if args.write:
        write_section(args.write, text)
    if args.json:
        rows_json = [{"mode": r.mode, "precision": r.precision, "streams": r.streams, "fps": r.fps} for r in rows]
        summary = {"machine": args.machine, "model": args.model or args.random_preset or str(args.weights)}
        summary |= {"width": args.width, "height": args.height, "frames": args.frames, "repeat": args.repeat}
        args.json.write_text(json.dumps({**summary, "rows": rows_json}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
